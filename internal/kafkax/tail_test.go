package kafkax

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/testenv"
)

// TestTail: Start returns once the records committed before it are
// applied, aborted ones never are, the topic ending in a transaction
// marker does not keep it waiting, and later records keep coming.
func TestTail(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	topic := testenv.Name(t, "tail")
	testenv.DeleteTopicsAfter(t, brokers, topic)
	cfg := &Config{Brokers: brokers}
	admin, err := NewClient(cfg, prometheus.NewRegistry(), "test", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := EnsureTopics(ctx, admin, []TopicSpec{{Name: topic, Partitions: 2}}, nil, quiet); err != nil {
		t.Fatal(err)
	}
	tx, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(topic), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	transact := func(end kgo.TransactionEndTry, values ...string) {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := tx.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
	}
	transact(kgo.TryCommit, "a", "b")
	transact(kgo.TryAbort, "aborted")
	transact(kgo.TryCommit, "c")

	var mu sync.Mutex
	var seen []string
	tail, err := NewTail(cfg, prometheus.NewRegistry(), "test_tail", quiet, []string{topic}, func(records []*kgo.Record) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range records {
			seen = append(seen, string(r.Value))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Shutdown(context.Background())
	if err := tail.Start(ctx); err != nil {
		t.Fatal(err)
	}
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(slices.Values(seen))
	}
	if s := got(); !slices.Equal(s, []string{"a", "b", "c"}) {
		t.Errorf("after Start: %q, want a b c", s)
	}
	// WaitSettled waits for a transaction open when it was called.
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	settled := make(chan error, 1)
	go func() { settled <- tail.WaitSettled(ctx) }()
	select {
	case err := <-settled:
		t.Fatalf("WaitSettled returned while a transaction was open (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := <-settled; err != nil {
		t.Fatal(err)
	}
	if s := got(); !slices.Contains(s, "open") {
		t.Errorf("after WaitSettled: %q, want the committed transaction's record", s)
	}

	// Kafka writes a commit's markers after EndTransaction returns, so the
	// record becomes readable (committed) a moment later.
	transact(kgo.TryCommit, "d")
	for {
		if err := tail.WaitCaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		s := got()
		if slices.Equal(s, []string{"a", "b", "c", "d", "open"}) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after WaitCaughtUp: %q, want a b c d open", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
