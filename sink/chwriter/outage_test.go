package chwriter

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestClickHouseOutage kills a ClickHouse server of its own (SIGKILL) while
// the sink loads, keeps producing while it is down, and starts it again on
// the same data. Every event must end up stored exactly once, Ready (what
// /readyz serves) must fail during the outage and recover after it, and the
// sink must hold at most one batch and one fetch while the backlog waits in
// Kafka.
func TestClickHouseOutage(t *testing.T) {
	srv := testenv.StartClickHouseServer(t)
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 2*time.Minute)
	cfg := Default()
	cfg.Kafka.Brokers = brokers
	cfg.ClickHouse.Addr = []string{srv.Addr}
	cfg.ClickHouse.DialTimeout = time.Second
	cfg.GroupID = testenv.Name(t, "sink")
	cfg.Database = testenv.Name(t, "analytics")
	cfg.Topics.Clean.Name = testenv.Name(t, "clean")
	cfg.Topics.DLQ.Name = testenv.Name(t, "dlq")
	cfg.Batch.MaxRows = 500
	cfg.Batch.MaxWait = 100 * time.Millisecond
	cfg.Retention.Months = 0
	testenv.DeleteTopicsAfter(t, brokers, cfg.Topics.Clean.Name, cfg.Topics.DLQ.Name)
	conn := testenv.ClickHouseDB(t, srv.Addr, cfg.Database)
	srv.SinkUser(t, cfg.Database).Apply(&cfg.ClickHouse) // as in newFixture
	w, err := New(cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{cfg: cfg, brokers: brokers, conn: conn, w: w}

	// Values of about 1 KiB, spread over every partition of the topic.
	const before, during = 4000, 16000
	pad := strings.Repeat("x", 1000)
	recs := make([]*kgo.Record, before+during)
	minValue := 1 << 30
	for i := range recs {
		subject := fmt.Sprintf("k1.subject-%d", i%97)
		v, _ := json.Marshal(event.Clean{
			SchemaVersion: event.SchemaVersion, MessageID: fmt.Sprintf("o-%05d", i), Type: "track", Event: "Viewed",
			Timestamp: time.Date(2026, 11, 1+i%28, 8, 0, 0, 0, time.UTC), ReceivedAt: time.Now().UTC(),
			SourceID: "web", Region: "cn", Subject: subject,
			Properties: json.RawMessage(`{"note":"` + pad + `"}`),
		})
		minValue = min(minValue, len(v))
		recs[i] = &kgo.Record{Topic: cfg.Topics.Clean.Name, Key: []byte(subject), Value: v}
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()

	// A trickle first, so that inserts are in flight when the server dies.
	trickled := make(chan error, 1)
	go func() {
		for i := 0; i < before; i += 100 {
			if err := producer.ProduceSync(ctx, recs[i:i+100]...).FirstErr(); err != nil {
				trickled <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		trickled <- nil
	}()
	for stored := 0; stored < 1000; stored = len(f.rows(t, ctx)) {
		if ctx.Err() != nil {
			t.Fatal("the sink stored nothing before the outage")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Kill(t)
	if err := <-trickled; err != nil {
		t.Fatal(err)
	}
	if err := producer.ProduceSync(ctx, recs[before:]...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	for w.Ready(ctx) == nil {
		if ctx.Err() != nil {
			t.Fatal("Ready kept succeeding with ClickHouse down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// While ClickHouse is down the sink holds one batch (at most
	// batch.max_rows) and franz-go at most one fetch: the next is not sent
	// until this one is polled. A fetch carries up to 1 MiB per partition,
	// or one producer batch (also about 1 MiB) when that is larger.
	partitions := len(testenv.EndOffsets(t, ctx, brokers, cfg.Topics.Clean.Name))
	oneFetch := partitions * (2 << 20) / minValue
	if limit := cfg.Batch.MaxRows + oneFetch; limit >= during {
		t.Fatalf("the backlog (%d) must exceed one batch and one fetch (%d) for this test to prove anything", during, limit)
	}
	var peakHeld, peakBuffered int
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		held := int(testutil.ToFloat64(w.metrics.heldRecords))
		buffered := int(w.client.BufferedFetchRecords())
		peakHeld, peakBuffered = max(peakHeld, held), max(peakBuffered, buffered)
		if held > cfg.Batch.MaxRows || buffered > oneFetch {
			t.Fatalf("during the outage the sink holds %d records and franz-go buffers %d; want at most %d (batch.max_rows) and %d (one fetch)",
				held, buffered, cfg.Batch.MaxRows, oneFetch)
		}
	}
	if err := w.Ready(ctx); err == nil {
		t.Error("Ready succeeded during the outage")
	}
	if testutil.ToFloat64(w.metrics.insertErrors.WithLabelValues(kindConnection)) == 0 {
		t.Error("no connection error counted during the outage")
	}

	srv.Start(t)
	f.waitRows(t, ctx, len(recs))
	waitCommitted(t, ctx, f, int64(len(recs)))
	got := f.rows(t, ctx) // once everything is committed: nothing is left to insert
	for _, r := range recs {
		var c event.Clean
		_ = json.Unmarshal(r.Value, &c)
		if got[c.MessageID] != 1 {
			t.Errorf("%s stored %d times", c.MessageID, got[c.MessageID])
		}
	}
	if len(got) != len(recs) {
		t.Errorf("%d distinct events stored, want %d", len(got), len(recs))
	}
	for w.Ready(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatalf("Ready did not recover after the outage: %v", w.Ready(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("outage: sink held at most %d records, franz-go buffered at most %d (bounds %d, %d), backlog %d",
		peakHeld, peakBuffered, cfg.Batch.MaxRows, oneFetch, during)
}
