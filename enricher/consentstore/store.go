// Package consentstore is the enricher's local copy of every subject's
// consent and of the suppression list: it materializes the compacted
// privacy.consent topic and the privacy.erasures log (a global table: every
// instance holds every subject) and answers "what consent was in force for
// this subject at this time" without I/O.
//
// Data contract: a privacy.consent record is an event.ConsentState keyed by
// subject id; a null value (tombstone) forgets the subject. A
// privacy.erasures record suppresses its key's subject for good, whatever
// its value. Subjects are held as 128-bit hashes, never as raw ids.
//
// Memory: a subject with one consent change costs one map entry of a
// 16-byte key and an 8-byte value (about 40-60 bytes with the map's
// overhead); older changes of a subject, up to Store's history limit, cost
// 8 bytes each in a second map. The maps hold no pointers, so the garbage
// collector does not scan them.
package consentstore

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/consentflow/consentflow/internal/policy"
)

// key is a subject id hashed with two per-process seeds: 128 bits make a
// collision (one subject judged by another's consent) out of reach.
type key [2]uint64

// change is one consent change packed into 8 bytes: the flags in the low
// byte, the time in milliseconds since 1970 above them.
type change uint64

const (
	flagCrossBorder = 1 << (4 + iota)
	flagMinor
	flagGuardian
)

// maxMillis is the largest time a change holds: 56 bits of milliseconds.
const maxMillis = 1<<56 - 1

func pack(at time.Time, c policy.Consent) change {
	v := uint64(c.Purposes) & 0x0f
	if c.CrossBorder {
		v |= flagCrossBorder
	}
	if c.Minor {
		v |= flagMinor
	}
	if c.GuardianConsent {
		v |= flagGuardian
	}
	// Times outside 1970..2100 are refused upstream; clamping keeps one
	// that slipped through from wrapping into the far future.
	ms := min(max(at.UnixMilli(), 0), maxMillis)
	return change(uint64(ms)<<8 | v)
}

func (c change) at() int64 { return int64(c >> 8) }

func (c change) consent() policy.Consent {
	return policy.Consent{Known: true, Purposes: policy.Purposes(c & 0x0f),
		CrossBorder: c&flagCrossBorder != 0, Minor: c&flagMinor != 0, GuardianConsent: c&flagGuardian != 0}
}

// Store holds consent and suppression by subject. Safe for concurrent use.
type Store struct {
	seeds      [2]maphash.Seed
	maxHistory int

	mu         sync.RWMutex
	latest     map[key]change
	older      map[key][]change // ascending by time; only subjects with several changes
	suppressed map[key]struct{}
}

// New returns an empty store that remembers, per subject, the latest
// change and up to maxHistory-1 older ones (the consent in force before an
// event older than all of them is unknown: fail closed).
func New(maxHistory int) *Store {
	return &Store{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, maxHistory: max(maxHistory, 1),
		latest: map[key]change{}, older: map[key][]change{}, suppressed: map[key]struct{}{}}
}

func (s *Store) key(subject string) key {
	return key{maphash.String(s.seeds[0], subject), maphash.String(s.seeds[1], subject)}
}

// Apply records that the subject's consent is c from at on. Applying the
// same change twice changes nothing, so replays are harmless. A suppressed
// subject's consent is not kept, whichever of the two came first (the
// follower reads the consent and erasure topics independently).
func (s *Store) Apply(subject string, at time.Time, c policy.Consent) {
	k, ch := s.key(subject), pack(at, c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, gone := s.suppressed[k]; gone {
		return
	}
	cur, ok := s.latest[k]
	switch {
	case !ok:
		s.latest[k] = ch
		return
	case cur.at() == ch.at():
		s.latest[k] = ch
		return
	case cur.at() < ch.at():
		s.latest[k] = ch
		s.addOlder(k, cur)
	default:
		s.addOlder(k, ch)
	}
}

// addOlder inserts a change that is not the latest, keeping the history
// sorted and within its bound.
func (s *Store) addOlder(k key, ch change) {
	if s.maxHistory == 1 {
		return
	}
	h := s.older[k]
	i, found := slices.BinarySearchFunc(h, ch, func(a, b change) int { return int(a.at() - b.at()) })
	if found {
		h[i] = ch
		return
	}
	h = slices.Insert(h, i, ch)
	if len(h) > s.maxHistory-1 {
		h = slices.Delete(h, 0, len(h)-(s.maxHistory-1))
	}
	s.older[k] = h
}

// Forget drops everything known of the subject's consent (a tombstone).
func (s *Store) Forget(subject string) {
	k := s.key(subject)
	s.mu.Lock()
	delete(s.latest, k)
	delete(s.older, k)
	s.mu.Unlock()
}

// Suppress marks the subject erased, for good.
func (s *Store) Suppress(subject string) {
	k := s.key(subject)
	s.mu.Lock()
	s.suppressed[k] = struct{}{}
	delete(s.latest, k)
	delete(s.older, k)
	s.mu.Unlock()
}

// Suppressed reports whether the subject was erased.
func (s *Store) Suppressed(subject string) bool {
	if subject == "" {
		return false
	}
	k := s.key(subject)
	s.mu.RLock()
	_, ok := s.suppressed[k]
	s.mu.RUnlock()
	return ok
}

// At returns the subject's consent in force at t; Known is false when
// nothing is known of the subject at t.
func (s *Store) At(subject string, t time.Time) policy.Consent {
	if subject == "" {
		return policy.Consent{}
	}
	k, ms := s.key(subject), t.UnixMilli()
	s.mu.RLock()
	defer s.mu.RUnlock()
	cur, ok := s.latest[k]
	if !ok {
		return policy.Consent{}
	}
	if cur.at() <= ms {
		return cur.consent()
	}
	h := s.older[k]
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].at() <= ms {
			return h[i].consent()
		}
	}
	return policy.Consent{}
}

// Size returns the subjects with consent and the suppressed subjects.
func (s *Store) Size() (subjects, suppressed int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.latest), len(s.suppressed)
}
