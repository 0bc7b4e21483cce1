// Package identity holds the identity links of privacy.identities in memory:
// which userId each anonymousId (or alias previousId) belongs to. Erasure
// and export follow them to a person's every device. A record's key is the
// linked id, its value an event.IdentityLink; a tombstone forgets the link.
package identity

import (
	"log/slog"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
)

// Links are the identity links of privacy.identities: which userId each
// anonymousId (or alias previousId) belongs to, and the reverse.
type Links struct {
	mu     sync.RWMutex
	owner  map[string]string              // linked id -> userId
	linked map[string]map[string]struct{} // userId -> linked ids
	// aliased holds the linked ids that may be userIds (IdentityLink.Aliased).
	aliased map[string]struct{}
}

func New() *Links {
	return &Links{owner: map[string]string{}, linked: map[string]map[string]struct{}{}, aliased: map[string]struct{}{}}
}

// Apply folds privacy.identities records in, in offset order. A link that
// does not decode is skipped: the erasure then covers fewer devices, which
// the log says.
func (l *Links) Apply(log *slog.Logger) func([]*kgo.Record) {
	return func(records []*kgo.Record) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, r := range records {
			from := string(r.Key)
			l.forget(from)
			if r.Value == nil {
				continue
			}
			link, err := event.DecodeIdentityLink(r.Value)
			if err != nil {
				log.Warn("skipping an unreadable identity link", "partition", r.Partition, "offset", r.Offset, "err", err)
				continue
			}
			l.owner[from] = link.UserID
			if link.Aliased() {
				l.aliased[from] = struct{}{}
			}
			if l.linked[link.UserID] == nil {
				l.linked[link.UserID] = map[string]struct{}{}
			}
			l.linked[link.UserID][from] = struct{}{}
		}
	}
}

// forget drops from's link; the caller holds the lock.
func (l *Links) forget(from string) {
	user, ok := l.owner[from]
	if !ok {
		return
	}
	delete(l.owner, from)
	delete(l.aliased, from)
	delete(l.linked[user], from)
	if len(l.linked[user]) == 0 {
		delete(l.linked, user)
	}
}

// Of lists the ids linked to userID, sorted.
func (l *Links) Of(userID string) []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]string, 0, len(l.linked[userID]))
	for id := range l.linked[userID] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Size is how many ids are linked.
func (l *Links) Size() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.owner)
}

// Aliased reports whether id's link may make it a userId (an alias's
// previousId): erasure and export then take its userId rows too. An
// identify links an anonymousId only, whatever it is spelt like.
func (l *Links) Aliased(id string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.aliased[id]
	return ok
}

// Owner returns the userId id is linked to, or "".
func (l *Links) Owner(id string) string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.owner[id]
}
