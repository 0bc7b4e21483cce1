package consentstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
)

// followerEnv is a consent and an erasure topic of one test, on the test
// broker, deleted when the test ends.
type followerEnv struct {
	brokers            []string
	consent, erasures  string
	reg                *prometheus.Registry
	store              *Store
	log                *slog.Logger
	consentPartitions  int32
	erasuresPartitions int32
}

func newFollowerEnv(t *testing.T, consentPartitions int32) *followerEnv {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	e := &followerEnv{
		brokers:  brokers,
		consent:  testenv.Name(t, "consent"),
		erasures: testenv.Name(t, "erasures"),
		reg:      prometheus.NewRegistry(),
		store:    New(4, testKeys),
		log:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),

		consentPartitions:  consentPartitions,
		erasuresPartitions: 2,
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := testenv.Context(t, 30*time.Second)
	testenv.DeleteTopicsAfter(t, brokers, e.consent, e.erasures)
	for _, tc := range []struct {
		name       string
		partitions int32
		configs    map[string]*string
	}{
		{e.consent, consentPartitions, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}},
		{e.erasures, e.erasuresPartitions, nil},
	} {
		resp, err := adm.CreateTopic(ctx, tc.partitions, 1, tc.configs, tc.name)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create topic %s: %v", tc.name, err)
		}
	}
	return e
}

func (e *followerEnv) newFollower(t *testing.T) *Follower {
	t.Helper()
	f, err := NewFollower(&kafkax.Config{Brokers: e.brokers}, e.consent, e.erasures, e.store, e.reg, "enricher", e.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Shutdown(context.Background()) })
	return f
}

// consentRecord is a privacy.consent record: subject's consent from at on.
func (e *followerEnv) consentRecord(t *testing.T, subject string, at time.Time, granted ...string) *kgo.Record {
	t.Helper()
	purposes := map[string]bool{}
	for _, p := range event.Purposes {
		purposes[p] = false
	}
	for _, p := range granted {
		if _, ok := purposes[p]; !ok {
			t.Fatalf("unknown purpose %q", p)
		}
		purposes[p] = true
	}
	st := event.ConsentState{SchemaVersion: event.SchemaVersion, Subject: subject, UserID: subject,
		Purposes: purposes, UpdatedAt: at.UTC(), ReceivedAt: at.UTC().Add(time.Second), SourceID: "src-test", Region: "eu"}
	value, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: e.consent, Key: []byte(subject), Value: value}
}

func (e *followerEnv) tombstone(subject string) *kgo.Record {
	return &kgo.Record{Topic: e.consent, Key: []byte(subject)} // nil Value: null
}

func (e *followerEnv) erasure(subject string) *kgo.Record {
	return &kgo.Record{Topic: e.erasures, Key: []byte(subject), Value: []byte(`{"subject":"` + subject + `"}`)}
}

func (e *followerEnv) produce(t *testing.T, ctx context.Context, records ...*kgo.Record) {
	t.Helper()
	testenv.Produce(t, ctx, e.brokers, records...)
}

// checkRecords compares enricher_consent_records_total by kind.
func (e *followerEnv) checkRecords(t *testing.T, f *Follower, want map[string]float64) {
	t.Helper()
	for _, kind := range []string{"consent", "tombstone", "erasure", "invalid"} {
		if got := testutil.ToFloat64(f.metrics.records.WithLabelValues(kind)); got != want[kind] {
			t.Errorf("enricher_consent_records_total{kind=%q}: got %v, want %v", kind, got, want[kind])
		}
	}
}

func checkConsent(t *testing.T, s *Store, subject string, when time.Time, want policy.Consent) {
	t.Helper()
	if got := s.At(KindUser, subject, when); got != want {
		t.Errorf("At(%q, %s): got %+v, want %+v", subject, when.Format(time.RFC3339), got, want)
	}
}

func granted(p policy.Purposes) policy.Consent { return policy.Consent{Known: true, Purposes: p} }

func TestFollowerRebuildsAndFollows(t *testing.T) {
	e := newFollowerEnv(t, 3)
	ctx := testenv.Context(t, 90*time.Second)
	base := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

	// What the topics hold before the follower starts: a subject with a
	// history, one forgotten by a tombstone, two unreadable records, a
	// grant followed by an unreadable record, one who consented and was
	// then erased, and one erased without consent.
	e.produce(t, ctx,
		e.consentRecord(t, "alice", base, "analytics"),
		e.consentRecord(t, "alice", base.Add(time.Hour), "analytics", "marketing"),
		e.consentRecord(t, "bob", base, "analytics"),
		e.tombstone("bob"),
		&kgo.Record{Topic: e.consent, Key: []byte("carol"), Value: []byte(`{"schemaVersion":1,"subject":"carol",`)},
		e.consentRecord(t, "dave-in-the-value", base, "analytics"), // keyed below as dave: subject differs
		e.consentRecord(t, "erin", base, "analytics", "personalization"),
		e.consentRecord(t, "gina", base, "analytics", "marketing"),
		&kgo.Record{Topic: e.consent, Key: []byte("gina"), Value: []byte(`{"schemaVersion":1,"subject":"gina","purposes":{"analytics":false},"minor":"no"}`)},
		e.erasure("erin"),
		e.erasure("frank"),
	)
	// The mismatched record: value of one subject under another's key.
	mismatched := e.consentRecord(t, "mallory", base, "analytics", "third_party_sharing")
	mismatched.Key = []byte("dave")
	e.produce(t, ctx, mismatched)

	f := e.newFollower(t)
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}

	checkConsent(t, e.store, "alice", base.Add(-time.Second), policy.Consent{})
	checkConsent(t, e.store, "alice", base.Add(30*time.Minute), granted(policy.Analytics))
	checkConsent(t, e.store, "alice", base.Add(time.Hour), granted(policy.Analytics|policy.Marketing))
	checkConsent(t, e.store, "bob", base.Add(time.Hour), policy.Consent{})
	// Unreadable records fail closed: known, nothing granted, a minor
	// (so that no update leaving minor out clears one), at any time.
	for _, subject := range []string{"carol", "dave", "gina"} {
		checkConsent(t, e.store, subject, base.Add(-time.Hour), policy.Consent{Known: true, Minor: true})
		checkConsent(t, e.store, subject, base.Add(time.Hour), policy.Consent{Known: true, Minor: true})
	}
	checkConsent(t, e.store, "mallory", base.Add(time.Hour), policy.Consent{})
	checkConsent(t, e.store, "dave-in-the-value", base.Add(time.Hour), granted(policy.Analytics))
	checkConsent(t, e.store, "erin", base.Add(time.Hour), policy.Consent{})
	for subject, want := range map[string]bool{"alice": false, "bob": false, "erin": true, "frank": true, "mallory": false} {
		if got := e.store.Suppressed(KindUser, subject); got != want {
			t.Errorf("Suppressed(%q): got %v, want %v", subject, got, want)
		}
	}
	// An unreadable record, whose kind is unknown, counts as a userId and
	// as an anonymousId.
	if subjects, suppressed := e.store.Size(); subjects != 8 || suppressed != 4 {
		t.Errorf("Size after rebuild: got %d, %d, want 8 (alice, dave-in-the-value, carol, dave and gina twice), 4 (erin, frank twice)", subjects, suppressed)
	}
	e.checkRecords(t, f, map[string]float64{"consent": 6, "tombstone": 1, "erasure": 2, "invalid": 3})
	if got := testutil.ToFloat64(f.metrics.rebuild); got <= 0 {
		t.Errorf("enricher_consent_store_rebuild_seconds: got %v, want > 0", got)
	}
	testenv.LintMetrics(t, e.reg)

	// While it runs: whatever was committed before WaitCaughtUp is in force
	// as soon as it returns, record after record, across partitions.
	for i := range 20 {
		subject := fmt.Sprintf("grace-%02d", i)
		e.produce(t, ctx, e.consentRecord(t, subject, base.Add(2*time.Hour), "personalization"))
		if err := f.WaitCaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		checkConsent(t, e.store, subject, base.Add(2*time.Hour), granted(policy.Personalization))
	}
	e.produce(t, ctx,
		e.consentRecord(t, "alice", base.Add(3*time.Hour), "third_party_sharing"),
		e.tombstone("dave-in-the-value"),
		e.erasure("grace-00"),
	)
	if err := f.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	checkConsent(t, e.store, "alice", base.Add(30*time.Minute), granted(policy.Analytics))
	checkConsent(t, e.store, "alice", base.Add(3*time.Hour), granted(policy.ThirdPartySharing))
	checkConsent(t, e.store, "dave-in-the-value", base.Add(3*time.Hour), policy.Consent{})
	checkConsent(t, e.store, "grace-00", base.Add(3*time.Hour), policy.Consent{})
	if !e.store.Suppressed(KindUser, "grace-00") {
		t.Error("grace-00 erased while following but not suppressed")
	}
	if subjects, suppressed := e.store.Size(); subjects != 26 || suppressed != 6 {
		t.Errorf("Size while following: got %d, %d, want 26, 6", subjects, suppressed)
	}
	e.checkRecords(t, f, map[string]float64{"consent": 27, "tombstone": 2, "erasure": 3, "invalid": 3})
	// The size gauges are set just after the records are applied, so
	// they may trail WaitCaughtUp by a moment.
	eventually(t, 5*time.Second, func() string {
		subjects, suppressed := testutil.ToFloat64(f.metrics.subjects), testutil.ToFloat64(f.metrics.suppressed)
		if subjects != 26 || suppressed != 6 {
			return fmt.Sprintf("enricher_consent_store_subjects %v, _suppressed_subjects %v, want 26, 6", subjects, suppressed)
		}
		return ""
	})

	// Shutdown is idempotent, and a WaitCaughtUp after it fails instead of
	// waiting for records that will never be read.
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.WaitCaughtUp(waitCtx); err == nil {
		t.Error("WaitCaughtUp after Shutdown: got nil error")
	} else if waitCtx.Err() != nil {
		t.Errorf("WaitCaughtUp after Shutdown waited for its context: %v", err)
	}
}

// TestFollowerWaitsOutShutdown: a WaitCaughtUp that is waiting when the
// follower shuts down returns at once, however the two interleave.
func TestFollowerWaitsOutShutdown(t *testing.T) {
	e := newFollowerEnv(t, 1)
	ctx := testenv.Context(t, 90*time.Second)
	for i := range 5 {
		f := e.newFollower(t)
		if err := f.Start(ctx); err != nil {
			t.Fatal(err)
		}
		// Records the follower cannot read: it is paused on the only
		// consent partition, so the waiter below stays behind until
		// Shutdown ends it.
		f.Client().PauseFetchTopics(e.consent)
		e.produce(t, ctx, e.consentRecord(t, fmt.Sprintf("late-%d", i), time.Now(), "analytics"))
		done := make(chan error, 1)
		go func() { done <- f.WaitCaughtUp(ctx) }()
		time.Sleep(time.Duration(i*50) * time.Millisecond)
		if err := f.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err == nil {
				t.Error("WaitCaughtUp returned nil with the follower paused and shut down")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("WaitCaughtUp still waiting 10 s after Shutdown")
		}
		e.reg = prometheus.NewRegistry() // the next follower registers afresh
	}
}

func TestFollowerStartsOnEmptyTopics(t *testing.T) {
	e := newFollowerEnv(t, 3)
	ctx := testenv.Context(t, 60*time.Second)
	f := e.newFollower(t)
	startCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := f.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	if subjects, suppressed := e.store.Size(); subjects != 0 || suppressed != 0 {
		t.Errorf("Size: got %d, %d, want 0, 0", subjects, suppressed)
	}
	if err := f.WaitCaughtUp(startCtx); err != nil {
		t.Fatal(err)
	}
}

// TestFollowerTransactions: the consent topic is written in transactions,
// so its end offset sits after a commit or abort marker. WaitCaughtUp must
// still return (the markers are read as control records), aborted records
// are never applied, and a transaction still open is not waited for.
func TestFollowerTransactions(t *testing.T) {
	// One partition, so where its end offset lies is known exactly.
	e := newFollowerEnv(t, 1)
	ctx := testenv.Context(t, 120*time.Second)
	base := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

	txn, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.TransactionalID(testenv.Name(t, "txn")),
		kgo.TransactionTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(txn.Close)
	transact := func(commit kgo.TransactionEndTry, records ...*kgo.Record) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, records...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
		e.waitMarkers(t, ctx)
	}

	// Offsets 0-1 committed data, 2 commit marker, 3-4 aborted data, 5
	// abort marker: the end offset, 6, lies after a control record.
	transact(kgo.TryCommit,
		e.consentRecord(t, "committed-1", base, "analytics"),
		e.consentRecord(t, "committed-2", base, "marketing"))
	transact(kgo.TryAbort,
		e.consentRecord(t, "aborted-1", base, "analytics"),
		e.consentRecord(t, "committed-1", base.Add(time.Hour), "analytics", "marketing", "personalization"))
	if got := testenv.EndOffsets(t, ctx, e.brokers, e.consent)[0]; got != 6 {
		t.Fatalf("consent end offset: got %d, want 6 (4 records, 2 markers)", got)
	}

	f := e.newFollower(t)
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := f.Start(startCtx); err != nil {
		t.Fatalf("rebuild over transaction markers: %v", err)
	}
	checkConsent(t, e.store, "committed-1", base.Add(2*time.Hour), granted(policy.Analytics))
	checkConsent(t, e.store, "committed-2", base, granted(policy.Marketing))
	checkConsent(t, e.store, "aborted-1", base.Add(2*time.Hour), policy.Consent{})
	e.checkRecords(t, f, map[string]float64{"consent": 2})

	// While following: an aborted, then a committed transaction; the
	// partition again ends in a marker.
	transact(kgo.TryAbort, e.consentRecord(t, "aborted-2", base, "analytics"))
	transact(kgo.TryCommit,
		e.consentRecord(t, "committed-3", base, "personalization"),
		e.tombstone("committed-2"))
	waitCtx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	if err := f.WaitCaughtUp(waitCtx); err != nil {
		t.Fatalf("WaitCaughtUp after a committed transaction: %v", err)
	}
	checkConsent(t, e.store, "committed-3", base, granted(policy.Personalization))
	checkConsent(t, e.store, "committed-2", base, policy.Consent{})
	checkConsent(t, e.store, "aborted-2", base, policy.Consent{})

	// Ending in an abort marker while following.
	transact(kgo.TryAbort, e.consentRecord(t, "aborted-3", base, "analytics"))
	if err := f.WaitCaughtUp(waitCtx); err != nil {
		t.Fatalf("WaitCaughtUp after an aborted transaction: %v", err)
	}
	checkConsent(t, e.store, "aborted-3", base, policy.Consent{})

	// A transaction still open is not committed before the call: the
	// wait does not block on it, and its record is not applied until it
	// commits.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, e.consentRecord(t, "pending", base, "analytics")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	openCtx, cancel3 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel3()
	if err := f.WaitCaughtUp(openCtx); err != nil {
		t.Fatalf("WaitCaughtUp with a transaction open: %v", err)
	}
	checkConsent(t, e.store, "pending", base, policy.Consent{})
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	e.waitMarkers(t, ctx)
	if err := f.WaitCaughtUp(waitCtx); err != nil {
		t.Fatalf("WaitCaughtUp after the open transaction committed: %v", err)
	}
	checkConsent(t, e.store, "pending", base, granted(policy.Analytics))

	e.checkRecords(t, f, map[string]float64{"consent": 4, "tombstone": 1})
	if subjects, _ := e.store.Size(); subjects != 3 {
		t.Errorf("Size: got %d subjects, want 3 (committed-1, committed-3, pending)", subjects)
	}

	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// waitMarkers waits until the consent topic holds no open transaction: its
// last stable offset (what read_committed readers, and WaitCaughtUp, see as
// the end) has reached the high watermark. EndTransaction returns once the
// coordinator has logged the decision; it writes the commit or abort
// markers to the partitions just after, so until then the transaction is
// not yet committed for a reader.
func (e *followerEnv) waitMarkers(t *testing.T, ctx context.Context) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	eventually(t, 10*time.Second, func() string {
		stable, err1 := adm.ListCommittedOffsets(ctx, e.consent)
		ends, err2 := adm.ListEndOffsets(ctx, e.consent)
		if err1 != nil || err2 != nil {
			return fmt.Sprintf("list offsets: %v, %v", err1, err2)
		}
		open := ""
		ends.Each(func(o kadm.ListedOffset) {
			if s, ok := stable.Lookup(o.Topic, o.Partition); !ok || s.Offset != o.Offset {
				open = fmt.Sprintf("partition %d: last stable offset %d, high watermark %d", o.Partition, s.Offset, o.Offset)
			}
		})
		return open
	})
}

// TestShutdownWithoutStart: Shutdown is safe on a follower never started.
func TestShutdownWithoutStart(t *testing.T) {
	e := newFollowerEnv(t, 1)
	f := e.newFollower(t)
	ctx := testenv.Context(t, 10*time.Second)
	for range 2 {
		if err := f.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitCaughtUp(ctx); err == nil {
		t.Error("WaitCaughtUp on a closed, never started follower: got nil, want an error")
	}
}

// eventually retries check until it returns "" or timeout passes.
func eventually(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Error(msg)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
