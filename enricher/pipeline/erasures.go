package pipeline

// The erasure notifier passes each erasure request on to every region and
// destination, as that destination's pseudonyms: no raw identifier crosses
// a border.
//
// For each erasure request (topics.erasure_requests, keyed by the raw
// identifier, which the collector writes beside the subject's suppression
// record; a consumer group, so instances share the work) it writes, in
// one produce:
//   - the subject's suppression records under the enricher's keys (the
//     collector's may differ by misconfiguration);
//   - for an erased userId, the suppression records (privacy.erasures,
//     keyed by pseudonyms) of each anonymousId linked to it
//     (privacy.identities), marked linked, and tombstones of their consent
//     records: those devices are suppressed for good as well;
//   - a notice to topics.erasure_notices and to export.erasure_notices,
//     with the pseudonyms of the userId and its linked anonymousIds (or of
//     the anonymousId) under every key of that destination's keyring;
//   - tombstones of the subject's identity links;
//   - a receipt (stage enricher, status notified) to privacy.receipts.
//
// Delivery: at least once. The offsets are committed after Kafka
// acknowledged all of it; a crash in between sends it all again, and each
// part is harmless twice (erasing twice leaves the subject erased).
// Suppression itself does not wait for this: the pipeline's consent store
// reads privacy.erasures directly. A request is read once: the topic is
// deleted after its retention, so the raw identifier is not kept.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/identity"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/retry"
)

// reasonInvalidErasure: a privacy.erasures record that does not decode.
const reasonInvalidErasure = "invalid_erasure_record"

// noticeDestination is a region or export destination erasures are sent to.
type noticeDestination struct {
	name, topic string
	keys        *policy.Keyring
}

// notifier is the erasure notifier (see the top of this file).
type notifier struct {
	cfg          *Config
	log          *slog.Logger
	metrics      *metrics
	client       *kgo.Client
	links        *identity.Links
	linksTail    *kafkax.Tail
	destinations []noticeDestination
	now          func() time.Time
	// passed are the userIds whose erasure this notifier passed on lately
	// (eraseLateLinks), hashed by subject.
	passed *passedUsers
	// store keys the suppression records and knows which consent records
	// are a linked device's own.
	store *consentstore.Store
}

// passedUsers remembers, for keep, the users whose erasure was passed on.
// A link to one of them that the links tail reads afterwards was written
// after the notifier looked at the user's links: its transaction was open
// then, so it commits within a transaction timeout, and keep covers that.
type passedUsers struct {
	mu   sync.Mutex
	keep time.Duration
	at   map[consentstore.Subject]time.Time
}

func newPassedUsers(keep time.Duration) *passedUsers {
	return &passedUsers{keep: keep, at: map[consentstore.Subject]time.Time{}}
}

func (u *passedUsers) add(s consentstore.Subject, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for old, at := range u.at { // erasures are few: a sweep per one costs nothing
		if now.Sub(at) >= u.keep {
			delete(u.at, old)
		}
	}
	u.at[s] = now
}

// rechecks runs functions after a delay, until stopped; stop waits for
// those running.
type rechecks struct {
	mu      sync.Mutex
	next    int
	pending map[int]*time.Timer
	stopped bool
	running sync.WaitGroup
}

func (r *rechecks) after(d time.Duration, f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if r.pending == nil {
		r.pending = map[int]*time.Timer{}
	}
	id := r.next
	r.next++
	// The timer's function takes the lock, so it sees itself pending.
	r.pending[id] = time.AfterFunc(d, func() {
		r.mu.Lock()
		_, due := r.pending[id]
		delete(r.pending, id)
		if due {
			r.running.Add(1)
		}
		r.mu.Unlock()
		if due {
			defer r.running.Done()
			f()
		}
	})
}

func (r *rechecks) stop() {
	r.mu.Lock()
	r.stopped = true
	for id, t := range r.pending {
		t.Stop()
		delete(r.pending, id)
	}
	r.mu.Unlock()
	r.running.Wait()
}

func (u *passedUsers) has(s consentstore.Subject, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	at, ok := u.at[s]
	return ok && now.Sub(at) < u.keep
}

func (n *notifier) run(ctx context.Context) error {
	kafkax.PollWork(ctx, n.client, 1000, retry.Default, n.log, "passing erasures on", n.notify)
	return nil
}

// notify passes a poll's erasure records on. Links written before it was
// called are known, those of transactions still open then included (it
// waits for them to end): an identify just before the erasure counts. A
// link judged before the erasure and written after is the links tail's
// to erase (eraseLateLinks).
func (n *notifier) notify(ctx context.Context, records []*kgo.Record) error {
	if err := n.linksTail.WaitSettled(ctx); err != nil {
		return err
	}
	var out []*kgo.Record
	notified := 0
	for _, r := range records {
		rec, err := event.DecodeErasureRecord(r.Value)
		if err != nil {
			out = append(out, kafkax.DeadLetter(r, n.cfg.Topics.DLQ.Name, stage, reasonInvalidErasure, fmt.Errorf("decode erasure record: %w", err)))
			continue
		}
		if !n.sameKey(rec.KeyCheck) {
			n.metrics.erasureKeyMismatches.Inc()
			n.log.Error("an erasure request was written under a pseudonym key other than this enricher's: give the collector's privacy.pseudonym the enricher's keys, or its exports and receipts miss the subject's rows",
				"request_id", rec.RequestID, "collector_key_id", strings.SplitN(rec.KeyCheck, ".", 2)[0])
		}
		recs, err := n.pass(string(r.Key), rec)
		if err != nil {
			return err
		}
		out = append(out, recs...)
		notified++
	}
	if err := n.client.ProduceSync(ctx, out...).FirstErr(); err != nil {
		return fmt.Errorf("produce erasure notices: %w", err)
	}
	n.metrics.erasuresNotified.Add(float64(notified))
	return nil
}

// sameKey reports whether a request's key check (event.ErasureRecord) is
// this enricher's in-region key's of that id; a request without one (the
// enricher's own) is.
func (n *notifier) sameKey(check string) bool {
	if check == "" {
		return true
	}
	id, _, _ := strings.Cut(check, ".")
	key := n.destinations[0].keys.ByID(id)
	return key != nil && key.Check() == check
}

// pass is what one erasure of id writes (see the top of this file).
func (n *notifier) pass(id string, rec event.ErasureRecord) ([]*kgo.Record, error) {
	// aliased are the ids that may be userIds too: an alias's previousId.
	var users, anonymous, aliased []string
	var out []*kgo.Record
	if rec.SubjectKind == event.SubjectUserID {
		users = []string{id}
		// Passed before its links are read: a link applied after this is
		// the links tail's to erase, one applied before is in this notice
		// (or both, harmless).
		n.passed.add(n.store.Subject(consentstore.KindUser, id), n.now())
		anonymous = n.links.Of(id)
		for _, a := range anonymous {
			linked := rec
			linked.SubjectKind, linked.Linked = event.SubjectAnonymousID, true
			if n.links.Aliased(a) {
				linked.SubjectKind = event.SubjectPreviousID
				aliased = append(aliased, a)
			}
			out = append(out, n.store.SuppressionRecords(n.cfg.Topics.Erasures.Name, a, linked)...)
			// The device's consent goes with it; not a record under its key
			// that is a user's spelt alike (KeyTaken), unless the device is
			// an alias's previousId, erased as a user too.
			if linked.SubjectKind == event.SubjectPreviousID || !n.store.KeyTaken(a) {
				out = append(out, &kgo.Record{Topic: n.cfg.Topics.Consent.Name, Key: []byte(a)})
			}
		}
	} else {
		anonymous = []string{id}
		if rec.SubjectKind == event.SubjectPreviousID {
			aliased = anonymous
		}
	}
	// The subject's own suppression records, under this enricher's keys:
	// the collector wrote them under its own, which suppress nothing here
	// if the two were ever configured apart.
	out = append(out, n.store.SuppressionRecords(n.cfg.Topics.Erasures.Name, id, rec)...)
	now := n.now().UTC()
	subjectKind := policy.KindAnonymous
	if len(users) > 0 {
		subjectKind = policy.KindUser
	}
	names := make([]string, 0, len(n.destinations))
	for _, d := range n.destinations {
		notice := event.ErasureNotice{SchemaVersion: event.SchemaVersion, RequestID: rec.RequestID, Reason: rec.Reason,
			RequestedAt: rec.RequestedAt, Destination: d.name}
		for _, u := range users {
			notice.Users = append(notice.Users, d.keys.Pseudonyms(policy.KindUser, u)...)
		}
		for _, a := range anonymous {
			notice.AnonymousIDs = append(notice.AnonymousIDs, d.keys.Pseudonyms(policy.KindAnonymous, a)...)
		}
		// An alias's previousId may have been a userId; an identify's
		// anonymousId is one, whatever it is spelt like.
		for _, a := range aliased {
			notice.Users = append(notice.Users, d.keys.Pseudonyms(policy.KindUser, a)...)
		}
		value, err := json.Marshal(notice)
		if err != nil {
			return nil, err
		}
		key := d.keys.At(now).Pseudonym(subjectKind, id)
		out = append(out, &kgo.Record{Topic: d.topic, Key: []byte(key), Value: value})
		names = append(names, d.name)
	}
	// Forget the links: the erasure records keep the devices suppressed.
	for _, a := range anonymous {
		out = append(out, &kgo.Record{Topic: n.cfg.Topics.Identities.Name, Key: []byte(a)})
	}
	receipt := event.Receipt{SchemaVersion: event.SchemaVersion, RequestID: rec.RequestID, Kind: event.ReceiptErasure,
		Stage: event.StageEnricher, Status: event.StatusNotified, Operator: rec.Operator, Reason: rec.Reason,
		Subject: n.destinations[0].keys.At(now).Pseudonym(subjectKind, id), RequestedAt: rec.RequestedAt, At: now,
		Destinations: names}
	if len(users) > 0 {
		receipt.LinkedAnonymousIDs = len(anonymous)
	}
	value, err := event.EncodeReceipt(&receipt)
	if err != nil {
		return nil, err
	}
	return append(out, &kgo.Record{Topic: n.cfg.Topics.Receipts.Name, Key: []byte(receipt.Key()), Value: value}), nil
}
