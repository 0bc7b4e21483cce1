package consentstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/par"
	"github.com/consentflow/consentflow/internal/policy"
)

// Follower keeps a Store current from privacy.consent and privacy.erasures:
// it reads both from the beginning at start-up (the rebuild) and follows
// them while running (kafkax.Tail).
type Follower struct {
	store    *Store
	tail     *kafkax.Tail
	consent  string
	erasures string
	log      *slog.Logger
	metrics  *metrics
}

// NewFollower builds a follower of the two topics into store; its
// metrics are named after service (<service>_consent_...).
func NewFollower(cfg *kafkax.Config, consentTopic, erasuresTopic string, store *Store, reg prometheus.Registerer, service string, log *slog.Logger) (*Follower, error) {
	f := &Follower{store: store, consent: consentTopic, erasures: erasuresTopic, log: log, metrics: newMetrics(reg, service, store)}
	tail, err := kafkax.NewTail(cfg, reg, service+"_consent", log, []string{consentTopic, erasuresTopic}, f.applyAll)
	if err != nil {
		return nil, err
	}
	f.tail = tail
	return f, nil
}

// Client is the follower's Kafka client.
func (f *Follower) Client() *kgo.Client { return f.tail.Client() }

// Start follows the topics in the background and returns once the store
// holds everything the topics held when it was called (the rebuild), or
// ctx ends.
func (f *Follower) Start(ctx context.Context) error {
	start := time.Now()
	if err := f.tail.Start(ctx); err != nil {
		return fmt.Errorf("rebuild consent store: %w", err)
	}
	subjects, suppressed := f.store.Size()
	f.metrics.rebuild.Set(time.Since(start).Seconds())
	f.log.Info("consent store rebuilt", "subjects", subjects, "suppressed", suppressed, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// applyAll folds a poll's records into the store, in offset order.
func (f *Follower) applyAll(records []*kgo.Record) {
	for i, d := range decodeAll(records, f.consent) {
		f.apply(records[i], d)
	}
	f.metrics.observeSize()
}

// decoded is a consent record's value, decoded.
type decoded struct {
	state event.ConsentState
	err   error
}

// decodeAll decodes the consent values among records on every core: JSON
// decoding is most of a rebuild's time. Applying stays sequential, in
// offset order.
func decodeAll(records []*kgo.Record, consentTopic string) []decoded {
	out := make([]decoded, len(records))
	decodeRange := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r := records[i]
			if r.Topic != consentTopic || r.Value == nil || r.Attrs.IsControl() {
				continue
			}
			st, err := event.DecodeConsentState(r.Value)
			if err == nil && st.Subject != string(r.Key) {
				err = errors.New("subject differs from the record key")
			}
			out[i] = decoded{st, err}
		}
	}
	par.Range(len(records), 256, decodeRange)
	return out
}

// apply folds one record into the store. A consent record that does not
// decode makes its subject's consent known to grant nothing, a minor's (fail
// closed): the state before it, possibly a grant it withdrew, must not
// stay in force. It is counted and logged without its value.
func (f *Follower) apply(r *kgo.Record, d decoded) {
	switch {
	case r.Attrs.IsControl():
		return
	case r.Topic == f.erasures && r.Value == nil:
		// A raw key rekeyed (RawKeyed): its pseudonym records came first.
	case r.Topic == f.erasures:
		// The suppression holds whatever the value; its time serves only
		// to tell links made before the erasure from later ones.
		rec, _ := event.DecodeErasureRecord(r.Value)
		if !f.store.SuppressRecord(string(r.Key), rec) {
			f.metrics.unknownKey.Inc()
			keyID, _, _ := strings.Cut(string(r.Key), ".")
			f.log.Error("an erased subject's pseudonym is under a key this service does not hold: add the key to the keyring's retired keys, or the subject's events pass",
				"key_id", keyID, "partition", r.Partition, "offset", r.Offset)
		}
		f.metrics.erasures.Inc()
	case r.Value == nil:
		f.store.Forget(string(r.Key))
		f.metrics.tombstones.Inc()
	case d.err != nil:
		f.store.Invalidate(string(r.Key))
		f.metrics.invalid.Inc()
		f.log.Warn("unreadable consent record: its subject's consent is now unknown, and its events dropped until a readable record",
			"partition", r.Partition, "offset", r.Offset, "field", fieldOf(d.err))
	default:
		f.store.Apply(KindOf(d.state), d.state.Subject, d.state.UpdatedAt, policy.ConsentOf(d.state))
		f.store.NoteRecorded(KindOf(d.state), d.state.Subject, d.state.ReceivedAt)
		f.metrics.consent.Inc()
	}
}

// KindOf is which identifier a privacy.consent record is about: its
// userId when it names one, else its anonymousId.
func KindOf(st event.ConsentState) Kind {
	if st.UserID != "" && st.UserID == st.Subject {
		return KindUser
	}
	return KindAnonymous
}

// KeyTaken reports whether anonymousID is spelt like a userId with consent
// recorded, or erased: privacy.consent keys both kinds by the id alone, so
// a record of the device would take that user's record's place once the
// topic is compacted.
func (s *Store) KeyTaken(anonymousID string) bool {
	c, _ := s.Latest(KindUser, anonymousID)
	return c.Known || s.Suppressed(KindUser, anonymousID)
}

// erasedKinds are the kinds of identifier an erasure record of kind
// erases: both for an alias's previousId, which may have been either, and
// for a record that does not say (unreadable).
func erasedKinds(kind string) []Kind {
	switch kind {
	case event.SubjectUserID:
		return []Kind{KindUser}
	case event.SubjectAnonymousID:
		return []Kind{KindAnonymous}
	}
	return []Kind{KindUser, KindAnonymous}
}

// fieldOf names what was wrong with a record without quoting it: decoding
// errors may hold the value's bytes.
func fieldOf(err error) string {
	var fe *event.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return "value (not a consent state)"
}

// WaitCaughtUp returns once the store has applied every record committed to
// both topics before the call. The enricher calls it before judging a
// batch, so consent recorded before an event was sent is in force for it.
func (f *Follower) WaitCaughtUp(ctx context.Context) error {
	if err := f.tail.WaitCaughtUp(ctx); err != nil {
		return fmt.Errorf("consent store: %w", err)
	}
	return nil
}

// WaitSettled is WaitCaughtUp that also waits for the transactions open
// at the call to end (applying their records if they commit). A record
// written outside a transaction (the collector's, a withdrawal say) after
// another writer's transaction opened on its partition is committed, but
// a read_committed reader reaches it only once that transaction ends; the
// enricher, whose instances write carried consent in transactions, calls
// this so such a record is in force for the events sent after it.
func (f *Follower) WaitSettled(ctx context.Context) error {
	if err := f.tail.WaitSettled(ctx); err != nil {
		return fmt.Errorf("consent store: %w", err)
	}
	return nil
}

// Shutdown stops following and closes the client. Idempotent, safe
// without Start.
func (f *Follower) Shutdown(ctx context.Context) error { return f.tail.Shutdown(ctx) }
