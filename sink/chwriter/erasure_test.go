package chwriter

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/testenv"
)

// cleanOf is a clean event of the given pseudonyms.
func (f *fixture) cleanOf(id, user, anonymous string) *kgo.Record {
	subject := user
	if subject == "" {
		subject = anonymous
	}
	v, _ := json.Marshal(event.Clean{
		SchemaVersion: event.SchemaVersion, MessageID: id, Type: "track", Event: "Viewed",
		Timestamp: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), ReceivedAt: time.Now().UTC(),
		SourceID: "web", Region: "cn", Subject: subject, UserID: user, AnonymousID: anonymous,
	})
	return &kgo.Record{Topic: f.cfg.Topics.Clean.Name, Key: []byte(subject), Value: v}
}

func (f *fixture) notice(requestID string, users, anonymous []string) *kgo.Record {
	v, _ := json.Marshal(event.ErasureNotice{SchemaVersion: event.SchemaVersion, RequestID: requestID, Reason: "user_request",
		RequestedAt: time.Now().UTC(), Destination: f.cfg.Region, Users: users, AnonymousIDs: anonymous})
	key := append(users, anonymous...)[0]
	return &kgo.Record{Topic: f.cfg.Topics.Erasures.Name, Key: []byte(key), Value: v}
}

// receipts reads the receipts topic until it holds one receipt per id.
func (f *fixture) receipts(t *testing.T, ctx context.Context, ids ...string) map[string]event.Receipt {
	t.Helper()
	got := map[string]event.Receipt{}
	for len(got) < len(ids) {
		got = map[string]event.Receipt{}
		for _, r := range testenv.ReadAll(t, ctx, f.brokers, f.cfg.Topics.Receipts.Name) {
			rc, err := event.DecodeReceipt(r.Value)
			if err != nil {
				t.Fatalf("receipt %s: %v", r.Value, err)
			}
			if string(r.Key) != rc.Key() {
				t.Errorf("receipt key %q, want %q", r.Key, rc.Key())
			}
			got[rc.RequestID] = rc
		}
		if ctx.Err() != nil {
			t.Fatalf("receipts: %d of %d", len(got), len(ids))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return got
}

func (f *fixture) count(t *testing.T, ctx context.Context, where string) uint64 {
	t.Helper()
	var n uint64
	if err := f.conn.QueryRow(ctx, "SELECT count() FROM "+f.cfg.Database+".events WHERE "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestErasureDeletesVerifiesAndKeepsDeleted erases a subject (its userId and
// a linked anonymousId) through a notice: its rows go, another subject's
// stay, the receipt counts what was there, a replay of its events is not
// loaded again, and a bad notice goes to the DLQ without holding up the
// good ones.
func TestErasureDeletesVerifiesAndKeepsDeleted(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, 2*time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Produce(t, ctx, f.brokers,
		f.cleanOf("a-1", "k1.user-a", "k1.anon-a"), f.cleanOf("a-2", "k1.user-a", ""),
		f.cleanOf("a-3", "", "k1.anon-linked"), // before login, on a device linked to a
		f.cleanOf("b-1", "k1.user-b", "k1.anon-b"), f.cleanOf("b-2", "", "k1.anon-b"))
	f.waitRows(t, ctx, 5)

	bad := &kgo.Record{Topic: f.cfg.Topics.Erasures.Name, Key: []byte("x"), Value: []byte(`{"schemaVersion":1}`)}
	testenv.Produce(t, ctx, f.brokers, bad, f.notice("req-a", []string{"k1.user-a"}, []string{"k1.anon-linked"}))

	got := f.receipts(t, ctx, "req-a")["req-a"]
	if got.Status != event.StatusDeleted || got.Rows != 3 || got.Stage != event.StageSink || got.Destination != f.cfg.Region ||
		got.Subject != "k1.user-a" || got.Mutations != 1 {
		t.Errorf("receipt %+v, want deleted, 3 rows, 1 mutation", got)
	}
	if n := f.count(t, ctx, "1"); n != 2 {
		t.Errorf("%d rows left, want subject b's 2", n)
	}
	if n := f.count(t, ctx, "user_pseudonym = 'k1.user-a' OR anonymous_pseudonym IN ('k1.anon-a', 'k1.anon-linked')"); n != 0 {
		t.Errorf("%d rows of the erased subject remain", n)
	}
	dead := testenv.ReadTopic(t, ctx, f.brokers, f.cfg.Topics.DLQ.Name, 1)
	if kafkax.Header(dead[0], kafkax.HeaderReason) != reasonInvalidNotice || !strings.Contains(kafkax.Header(dead[0], kafkax.HeaderError), "requestId") {
		t.Errorf("dead letter headers %+v", dead[0].Headers)
	}

	// A replay of the erased subject's events (and a new one of b's).
	testenv.Produce(t, ctx, f.brokers, f.cleanOf("a-1", "k1.user-a", "k1.anon-a"), f.cleanOf("a-3", "", "k1.anon-linked"), f.cleanOf("b-3", "k1.user-b", ""))
	f.waitRows(t, ctx, 3)
	waitCommitted(t, ctx, f, 8)
	if n := f.count(t, ctx, "user_pseudonym = 'k1.user-a' OR anonymous_pseudonym = 'k1.anon-linked'"); n != 0 {
		t.Errorf("a replay brought %d erased rows back", n)
	}
	if n := testutil.ToFloat64(f.w.erasureMetrics.suppressed); n != 2 {
		t.Errorf("sink_rows_suppressed_total = %v, want 2", n)
	}
	if n := testutil.ToFloat64(f.w.erasureMetrics.rowsDeleted); n != 3 {
		t.Errorf("privacy_erasure_rows_deleted_total = %v, want 3", n)
	}

	// The audit table holds the receipt.
	for {
		var status string
		var rows int64
		err := f.conn.QueryRow(ctx, "SELECT status, rows FROM "+f.cfg.Database+".privacy_audit FINAL WHERE request_id = 'req-a' AND stage = 'sink'").Scan(&status, &rows)
		if err == nil && status == event.StatusDeleted && rows == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("audit row: %s %d %v", status, rows, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestErasuresShareMutations sends many notices at once: they are deleted
// by a few mutations, not one each, and every one gets its own receipt.
func TestErasuresShareMutations(t *testing.T) {
	f := newFixture(t)
	f.w.cfg.Erasure.Window = time.Second // the worker reads the sink's own copy
	ctx := testenv.Context(t, 2*time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const subjects = 200
	var recs, notices []*kgo.Record
	var ids []string
	for i := range subjects {
		user := fmt.Sprintf("k1.user-%d", i)
		recs = append(recs, f.cleanOf(fmt.Sprintf("m-%d-1", i), user, ""), f.cleanOf(fmt.Sprintf("m-%d-2", i), user, ""))
		ids = append(ids, fmt.Sprintf("req-%d", i))
		notices = append(notices, f.notice(ids[i], []string{user}, nil))
	}
	recs = append(recs, f.cleanOf("kept", "k1.kept", ""))
	testenv.Produce(t, ctx, f.brokers, recs...)
	f.waitRows(t, ctx, len(recs))
	testenv.Produce(t, ctx, f.brokers, notices...)

	got := f.receipts(t, ctx, ids...)
	for _, id := range ids {
		if got[id].Rows != 2 || got[id].Status != event.StatusDeleted {
			t.Errorf("receipt %s: %+v, want 2 rows deleted", id, got[id])
		}
	}
	if n := f.count(t, ctx, "1"); n != 1 {
		t.Errorf("%d rows left, want 1", n)
	}
	// 200 notices produced at once arrive in a window or two (a fetch may
	// split them); one mutation each would be 200.
	if n := testutil.ToFloat64(f.w.erasureMetrics.mutations); n < 1 || n > 3 {
		t.Errorf("%v mutations for %d notices, want 1 to 3", n, subjects)
	}
}

// TestReapplyAfterRestore puts deleted rows back, as restoring a backup
// taken before the erasure would, and checks Reapply deletes them again
// and only them.
func TestReapplyAfterRestore(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, 2*time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Produce(t, ctx, f.brokers, f.notice("req-1", []string{"k1.gone"}, []string{"k1.gone-device"}), f.notice("req-2", nil, []string{"k1.gone-too"}))
	f.receipts(t, ctx, "req-1", "req-2")
	if err := f.w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	restored := []struct{ id, user, anonymous string }{
		{"r-1", "k1.gone", ""}, {"r-2", "", "k1.gone-device"}, {"r-3", "", "k1.gone-too"}, {"r-4", "k1.kept", "k1.kept-device"},
	}
	batch, err := f.conn.PrepareBatch(ctx, "INSERT INTO "+f.cfg.Database+".events (message_id, subject, user_pseudonym, anonymous_pseudonym, event_time, received_at)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range restored {
		if err := batch.Append(r.id, r.user+r.anonymous, r.user, r.anonymous, time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	report, err := Reapply(ctx, f.cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if report.Notices != 2 || report.Rows != 3 || report.Mutations != 1 {
		t.Errorf("report %+v, want 2 notices, 3 rows, 1 mutation", report)
	}
	if got := f.rows(t, ctx); len(got) != 1 || got["r-4"] != 1 {
		t.Errorf("rows after reapply: %v, want only r-4", got)
	}
	// Nothing left to do: a second run deletes nothing and mutates nothing.
	if report, err := Reapply(ctx, f.cfg, quiet); err != nil || report.Rows != 0 || report.Mutations != 0 {
		t.Errorf("second reapply: %+v, %v", report, err)
	}
}

// TestErasedSet checks the set's membership and that an empty pseudonym is
// never erased (most rows have no user pseudonym).
func TestErasedSet(t *testing.T) {
	s := newErasedSet()
	s.add("k1.a", "k2.a")
	for p, want := range map[string]bool{"k1.a": true, "k2.a": true, "k1.b": false, "": false} {
		if got := s.has(p); got != want {
			t.Errorf("has(%q) = %v", p, got)
		}
	}
	if !s.erasedRow(&event.Clean{AnonymousID: "k2.a"}) || s.erasedRow(&event.Clean{UserID: "k1.b"}) {
		t.Error("erasedRow")
	}
}

// TestErasureCountsEachRowOnce erases a userId and its device's
// anonymousId in one request, whose two notices both match the device's
// rows: the request's receipts add up to the rows there were.
func TestErasureCountsEachRowOnce(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Produce(t, ctx, f.brokers, f.cleanOf("b-1", "k1.user-b", "k1.anon-b"), f.cleanOf("b-2", "", "k1.anon-b"), f.cleanOf("c-1", "k1.user-c", ""))
	f.waitRows(t, ctx, 3)
	user := f.notice("req-b", []string{"k1.user-b"}, []string{"k1.anon-b"})
	device := f.notice("req-b", nil, []string{"k1.anon-b"})
	testenv.Produce(t, ctx, f.brokers, user, device)

	var total int64
	for got := 0; got < 2; {
		got, total = 0, 0
		for _, r := range testenv.ReadAll(t, ctx, f.brokers, f.cfg.Topics.Receipts.Name) {
			rc, err := event.DecodeReceipt(r.Value)
			if err != nil || rc.Status != event.StatusDeleted {
				t.Fatalf("receipt %s (%v)", r.Value, err)
			}
			got++
			total += rc.Rows
		}
		if ctx.Err() != nil {
			t.Fatalf("%d receipts of 2", got)
		}
	}
	if total != 2 {
		t.Errorf("the request's receipts count %d rows, want the 2 there were", total)
	}
}

// TestErasureWaitsForLoadsInFlight: a batch checked against the erased set
// before a notice arrived is still being inserted; the deletion waits for
// it, or the receipt would say deleted while its rows land after.
func TestErasureWaitsForLoadsInFlight(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f.w.loading.RLock() // a load in flight
	done := make(chan error, 1)
	go func() {
		n, _ := event.DecodeErasureNotice(f.notice("req-x", []string{"k1.x"}, nil).Value)
		done <- f.w.eraser.carryOut(ctx, []pending{{notice: n, subject: "k1.x"}}, &progress{})
	}()
	select {
	case err := <-done:
		t.Fatalf("the deletion ran while a load was in flight (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	f.w.loading.RUnlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLateRowsAreDeleted: a row loaded while its subject's erasure was
// under way (as by another sink instance, whose eraser cannot wait for
// this load) is deleted by the next window, with no notice of its own.
func TestLateRowsAreDeleted(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Produce(t, ctx, f.brokers, f.cleanOf("late-1", "k1.late", "k1.late-device"), f.cleanOf("kept-1", "k1.kept", ""))
	f.waitRows(t, ctx, 2)
	f.w.erased.add("k1.late") // the notice reached the set while the row loaded
	f.w.eraseLate([]*row{{clean: event.Clean{Subject: "k1.late", UserID: "k1.late", AnonymousID: "k1.late-device"}}})
	for f.count(t, ctx, "message_id = 'late-1'") != 0 {
		if ctx.Err() != nil {
			t.Fatal("the late row was never deleted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := f.count(t, ctx, "1"); n != 1 {
		t.Errorf("%d rows left, want the kept one", n)
	}
}
