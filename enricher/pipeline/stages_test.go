package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// offlinePipeline is a pipeline for processing batches in memory: its
// clients point nowhere and it is never started.
func offlinePipeline(tb testing.TB) *Pipeline {
	tb.Helper()
	return offlinePipelineWith(tb, testConfig([]string{"127.0.0.1:1"}))
}

// offlinePipelineWith is offlinePipeline with cfg.
func offlinePipelineWith(tb testing.TB, cfg Config) *Pipeline {
	tb.Helper()
	p, err := New(cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.sess.Close)
	return p
}

// TestProcessBatchAcrossParts: consent an event carries is in force for its
// subject's later events in later parts of the batch, output keeps the
// input's order, and a consent store that cannot catch up ends the batch
// with nothing judged.
func TestProcessBatchAcrossParts(t *testing.T) {
	p := offlinePipeline(t)
	// More parts than may be decoded ahead of assembly, so that decoding
	// waits for assembly on the way.
	n := (decodeLead*runtime.GOMAXPROCS(0)+3)*partSize + 7
	grantAt, withdrawAt := 10, 2*partSize+3
	at := time.Now().UTC().Add(-time.Hour)
	records := make([]*kgo.Record, n)
	for i := range records {
		ctx := `{}`
		switch i {
		case grantAt:
			ctx = `{"consent":{"categoryPreferences":{"Analytics":true}}}`
		case withdrawAt:
			ctx = `{"consent":{"categoryPreferences":{"Analytics":false}}}`
		}
		// "app" has no default grant: only carried consent keeps its events.
		v, _ := json.Marshal(event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: fmt.Sprintf("m-%04d", i), ReceivedAt: at.Add(time.Minute), SourceID: "app", Region: "cn",
			Event: event.Event{Type: "page", AnonymousID: "anon-parts", Timestamp: at.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano), Context: json.RawMessage(ctx)}})
		records[i] = &kgo.Record{Topic: "raw", Value: v}
	}

	out, keys, tally := p.process(records)
	var kept []string
	for _, r := range out {
		if r.Topic != p.cfg.Topics.Clean.Name {
			continue
		}
		c, err := event.DecodeClean(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, c.MessageID)
	}
	var want []string
	for i := grantAt; i < withdrawAt; i++ {
		want = append(want, fmt.Sprintf("m-%04d", i))
	}
	if fmt.Sprint(kept) != fmt.Sprint(want) {
		t.Errorf("kept %d events %v...; want the %d from the grant up to the withdrawal, in order", len(kept), kept[:min(3, len(kept))], len(want))
	}
	if tally.in != n || tally.clean != len(want) || len(keys) != len(want) {
		t.Errorf("tally in %d clean %d, %d keys; want %d, %d, %d", tally.in, tally.clean, len(keys), n, len(want), len(want))
	}

	stale := errors.New("consent store behind")
	var emitted int
	out, _, _, err := p.processBatch(records, func() error { return stale }, func(part []*kgo.Record) { emitted += len(part) })
	if !errors.Is(err, stale) || out != nil || emitted != 0 {
		t.Errorf("with consent behind: err %v, %d records out, %d emitted; want the error and nothing", err, len(out), emitted)
	}
}

// TestArenaKeepsValuesApart: values taken from an arena never share bytes,
// also when one outgrew its room, and none can grow into another.
func TestArenaKeepsValuesApart(t *testing.T) {
	var mem arena
	var taken [][]byte
	want := func(i int) []byte {
		// Sizes from a few bytes to more than a chunk, some beyond their hint.
		return bytes.Repeat([]byte{byte('a' + i%26)}, (i*7919)%(arenaChunk/3)+i%5)
	}
	for i := range 200 {
		hint := len(want(i))
		if i%4 == 0 {
			hint /= 2 // outgrows its room when the chunk is nearly full
		}
		taken = append(taken, mem.take(append(mem.room(hint), want(i)...)))
	}
	for i, b := range taken {
		if !bytes.Equal(b, want(i)) {
			t.Fatalf("value %d changed after later values were taken", i)
		}
		if cap(b) != len(b) {
			t.Fatalf("value %d has room to grow into the next (len %d, cap %d)", i, len(b), cap(b))
		}
	}
	if r := mem.record(); r == mem.record() {
		t.Error("two records share memory")
	}
}

// TestHeldBackConsentStillLatest: consent carried in an aborted batch is
// written with a later transaction only while it is still its subject's
// latest state: once another instance, which took the partition over,
// wrote a newer one, the older written after it is what compaction would
// keep (found by the e2e test TestSeveralInstancesPerStage, an instance
// stopped mid-transaction then resumed).
func TestHeldBackConsentStillLatest(t *testing.T) {
	p := offlinePipeline(t)
	at := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	env := &event.Envelope{ReceivedAt: at, SourceID: "web", Region: "cn"}
	granted := policy.Consent{Known: true, Purposes: policy.Analytics}
	held := []*kgo.Record{
		p.consentRecord("anon-1", consentstore.KindAnonymous, granted, at, env),
		p.consentRecord("anon-2", consentstore.KindAnonymous, granted, at, env),
		p.consentRecord("user-3", consentstore.KindUser, granted, at, env),
		p.consentRecord("anon-4", consentstore.KindAnonymous, granted, at, env),
	}
	// anon-4: the other instance judged a later event of the same request
	// (the same receipt time), which withdrew: a tie in time, not in
	// state. Written after it, the held-back grant would undo the
	// withdrawal for every reader.
	p.store.Apply(consentstore.KindAnonymous, "anon-4", at, granted)
	p.store.Apply(consentstore.KindAnonymous, "anon-4", at, policy.Consent{Known: true})
	p.store.Apply(consentstore.KindAnonymous, "anon-1", at, granted)
	p.store.Apply(consentstore.KindUser, "user-3", at, granted)
	// The other instance's withdrawal of anon-2, judged later, reached
	// this one's store.
	p.store.Apply(consentstore.KindAnonymous, "anon-2", at, granted)
	p.store.Apply(consentstore.KindAnonymous, "anon-2", at.Add(time.Second), policy.Consent{Known: true})
	var keys []string
	for _, r := range p.stillLatest(held) {
		keys = append(keys, string(r.Key))
	}
	if !slices.Equal(keys, []string{"anon-1", "user-3"}) {
		t.Errorf("written %v, want anon-1 and user-3: anon-2's held state is older than its latest, anon-4's is not its latest state", keys)
	}
}
