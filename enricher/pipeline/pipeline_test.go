package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/kafkax/dlqtest"
	"github.com/consentflow/consentflow/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testConfig grants the source "web" analytics by default, so tests that
// are not about consent need none.
func testConfig(brokers []string) Config {
	cfg := Default()
	cfg.Kafka.Brokers = brokers
	cfg.Pseudonym = Pseudonym{KeyID: "t1", Key: "test-key-0123456789-0123456789-0123456789"}
	cfg.Export.Name = "intl"
	cfg.Export.Pseudonym = Pseudonym{KeyID: "x1", Key: "test-export-key-0123456789-0123456789-01"}
	cfg.Consent.Defaults = map[string][]string{"web": {"analytics"}}
	cfg.Catalogue.File = "testdata/catalogues/pipeline.yaml"
	cfg.TransactionalID = fmt.Sprintf("enricher-test-%d", time.Now().UnixNano())
	return cfg
}

// startIsolated starts an enricher on its own group and topics (isolate),
// stopped when the test ends.
func startIsolated(t *testing.T, ctx context.Context, brokers []string, cfg *Config) *Pipeline {
	t.Helper()
	isolate(t, brokers, cfg)
	p, err := New(*cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// isolate gives the test its own group and topics, deleted afterwards.
func isolate(t *testing.T, brokers []string, cfg *Config) {
	cfg.GroupID = testenv.Name(t, "enricher")
	for _, spec := range []*kafkax.TopicSpec{&cfg.Topics.Raw, &cfg.Topics.Clean, &cfg.Topics.DLQ,
		&cfg.Topics.Consent, &cfg.Topics.Erasures, &cfg.Topics.ErasureRequests, &cfg.Export.Topic,
		&cfg.Topics.Identities, &cfg.Topics.ErasureNotices, &cfg.Topics.Receipts, &cfg.Export.ErasureNotices} {
		spec.Name = testenv.Name(t, strings.ReplaceAll(spec.Name, ".", "-"))
		testenv.DeleteTopicsAfter(t, brokers, spec.Name)
	}
}

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := New(testConfig([]string{"127.0.0.1:1"}), reg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	testenv.LintMetrics(t, reg)
}

// TestCleanAndDeadLetter runs the enricher on a raw topic holding one good
// envelope and two poison records.
func TestCleanAndDeadLetter(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	cfg := testConfig(brokers)
	p := startIsolated(t, ctx, brokers, &cfg)

	good, _ := json.Marshal(event.Envelope{
		SchemaVersion: event.SchemaVersion, MessageID: "m-good", ReceivedAt: time.Now(), SourceID: "web", Region: "cn",
		Signals: event.Signals{IP: "198.51.100.77", UserAgent: "ua"},
		Event:   event.Event{Type: "track", Event: "Viewed", UserID: "user-raw-1", AnonymousID: "anon-raw-1"},
	})
	raw := cfg.Topics.Raw.Name
	garbage := &kgo.Record{Topic: raw, Key: []byte("k2"), Value: []byte("{not json")}
	future := &kgo.Record{Topic: raw, Key: []byte("k3"), Value: []byte(`{"schemaVersion":99,"messageId":"m3"}`)}
	testenv.Produce(t, ctx, brokers, &kgo.Record{Topic: raw, Partition: 0, Key: []byte("anon-raw-1"), Value: good}, garbage, future)

	clean := testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Clean.Name, 1)
	c, err := event.DecodeClean(clean[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if c.MessageID != "m-good" || string(clean[0].Key) != c.Subject || !strings.HasPrefix(c.Subject, "t1.") || c.IP != "198.51.100.0" {
		t.Errorf("clean record key %q value %+v", clean[0].Key, c)
	}
	if strings.Contains(string(clean[0].Value), "raw-1") || strings.Contains(string(clean[0].Value), "198.51.100.77") {
		t.Errorf("clean record leaks a raw identifier: %s", clean[0].Value)
	}

	// Each dead letter points at its record (dlqtest.Check fetches it).
	dead := testenv.ReadTopic(t, ctx, brokers, cfg.Topics.DLQ.Name, 2)
	reasons := map[string]string{}
	for _, r := range dead {
		if kafkax.Header(r, kafkax.HeaderStage) != "enricher" || kafkax.Header(r, kafkax.HeaderReason) != "invalid_envelope" ||
			kafkax.Header(r, kafkax.HeaderTopic) != raw {
			t.Errorf("dead letter headers %+v", r.Headers)
		}
		src := dlqtest.Check(t, ctx, brokers, r, []string{"anon-raw-1"})
		reasons[string(src.Value)] = kafkax.Header(r, kafkax.HeaderError)
	}
	if e := reasons[string(garbage.Value)]; !strings.Contains(e, "invalid JSON") {
		t.Errorf("garbage record's reason = %q", e)
	}
	if e := reasons[string(future.Value)]; !strings.Contains(e, "schemaVersion: unsupported version (this build reads 1)") {
		t.Errorf("future-version record's reason = %q", e)
	}

	// Offsets are committed after the outputs landed.
	deadline := time.Now().Add(10 * time.Second)
	for testenv.CommittedTotal(t, ctx, brokers, cfg.GroupID, raw) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("enricher did not commit the three processed offsets")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A client's retry of the first event, after it was committed: same
	// source and messageId, in a later transaction.
	testenv.Produce(t, ctx, brokers, &kgo.Record{Topic: raw, Partition: 0, Key: []byte("anon-raw-1"), Value: good})
	for testenv.CommittedTotal(t, ctx, brokers, cfg.GroupID, raw) < 4 {
		if time.Now().After(deadline) {
			t.Fatal("enricher did not commit the retried event's offset")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if all := testenv.ReadAll(t, ctx, brokers, cfg.Topics.Clean.Name); len(all) != 1 {
		t.Errorf("clean topic holds %d records, want 1: the retry must be dropped", len(all))
	}
	if got := testutil.ToFloat64(p.metrics.dropped.WithLabelValues("duplicate")); got != 1 {
		t.Errorf("duplicate metric = %v, want 1", got)
	}
	if got := testutil.ToFloat64(p.metrics.dropped.WithLabelValues("poison")); got != 2 {
		t.Errorf("poison metric = %v, want 2", got)
	}
	if got := testutil.ToFloat64(p.metrics.defaultGrants.WithLabelValues("web")); got != 1 {
		t.Errorf("default grants for web = %v, want 1", got)
	}
}

// TestProduceFailureHoldsCommit removes the clean topic behind the
// enricher's back: it must retry without committing, then deliver and
// commit once the topic is back.
func TestProduceFailureHoldsCommit(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 2*time.Minute)
	cfg := testConfig(brokers)
	p := startIsolated(t, ctx, brokers, &cfg)
	adm := kadm.NewClient(p.sess.Client())
	if _, err := adm.DeleteTopics(ctx, cfg.Topics.Clean.Name); err != nil {
		t.Fatal(err)
	}

	var records []*kgo.Record
	for i := range 5 {
		v, _ := json.Marshal(event.Envelope{
			SchemaVersion: event.SchemaVersion, MessageID: fmt.Sprintf("m-%d", i), ReceivedAt: time.Now(), SourceID: "web", Region: "cn",
			Event: event.Event{Type: "page", AnonymousID: fmt.Sprintf("anon-%d", i)},
		})
		records = append(records, &kgo.Record{Topic: cfg.Topics.Raw.Name, Value: v})
	}
	testenv.Produce(t, ctx, brokers, records...)

	for testutil.ToFloat64(p.metrics.transactions.WithLabelValues("aborted")) < 1 {
		if ctx.Err() != nil {
			t.Fatal("the enricher never aborted a transaction")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := testenv.CommittedTotal(t, ctx, brokers, cfg.GroupID, cfg.Topics.Raw.Name); n != 0 {
		t.Fatalf("enricher committed %d offsets while its produce failed", n)
	}

	if err := kafkax.EnsureTopics(ctx, p.sess.Client(), []kafkax.TopicSpec{cfg.Topics.Clean}, nil, quiet); err != nil {
		t.Fatal(err)
	}
	clean := testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Clean.Name, 5)
	seen := map[string]bool{}
	for _, r := range clean {
		c, err := event.DecodeClean(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		seen[c.MessageID] = true
	}
	if len(seen) != 5 {
		t.Errorf("clean topic holds %d distinct events, want 5", len(seen))
	}
	for testenv.CommittedTotal(t, ctx, brokers, cfg.GroupID, cfg.Topics.Raw.Name) < 5 {
		if ctx.Err() != nil {
			t.Fatal("enricher did not commit after the topic came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
