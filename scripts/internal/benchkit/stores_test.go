package benchkit

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestFollowReadsCommittedRecordsFromTheStart is against the real Kafka:
// a record of an aborted transaction is never handed on, as a record of
// the enricher's does not count as in the clean topic until committed.
func TestFollowReadsCommittedRecordsFromTheStart(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	topic := testenv.Name(t, "benchkit")
	adm, err := NewAdmin(brokers, "benchkit-test")
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if err := CreateTopic(ctx, adm, topic, 1, nil); err != nil {
		t.Fatal(err)
	}
	testenv.DeleteTopicsAfter(t, brokers, topic)

	tx, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(topic+"-tx"), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Key: []byte("aborted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := tx.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	testenv.Produce(t, ctx, brokers, &kgo.Record{Topic: topic, Key: []byte("a")}, &kgo.Record{Topic: topic, Key: []byte("b")})

	followCtx, stop := context.WithCancel(ctx)
	var keys []string
	var stamps []time.Time
	err = Follow(followCtx, brokers, "benchkit-test", topic, 50*time.Millisecond, func(r *kgo.Record, polled time.Time) {
		keys = append(keys, string(r.Key))
		stamps = append(stamps, polled)
		if len(keys) == 2 {
			stop()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"a", "b"}) || stamps[0].IsZero() {
		t.Errorf("followed %q (polled %v); want a and b, not the aborted record", keys, stamps)
	}
}

// TestCountRowsAndLookupIDs is against the real ClickHouse.
func TestCountRowsAndLookupIDs(t *testing.T) {
	conn, err := chx.Open(&chx.Config{Addr: []string{testenv.ClickHouseAddr(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := testenv.Context(t, time.Minute)
	db := testenv.Name(t, "benchkit")
	if n, err := CountRows(ctx, conn, db); err != nil || n != 0 {
		t.Errorf("CountRows before the database exists = %d, %v; want 0", n, err)
	}
	if err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DropDatabase(context.Background(), conn, db) })
	if n, err := CountRows(ctx, conn, db); err != nil || n != 0 {
		t.Errorf("CountRows before the table exists = %d, %v; want 0", n, err)
	}
	if err := conn.Exec(ctx, "CREATE TABLE "+db+".events (message_id String) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO "+db+".events SELECT arrayJoin(['run-1', 'run-2', 'run-3'])"); err != nil {
		t.Fatal(err)
	}
	if n, err := CountRows(ctx, conn, db); err != nil || n != 3 {
		t.Errorf("CountRows = %d, %v; want 3", n, err)
	}
	found, err := LookupIDs(ctx, conn, db, []string{"run-2", "run-9", "run-3"})
	slices.Sort(found)
	if err != nil || !slices.Equal(found, []string{"run-2", "run-3"}) {
		t.Errorf("LookupIDs = %v, %v; want run-2 and run-3", found, err)
	}
	tr := NewTracker()
	tr.Add(0, "run-1", "run-9")
	got, err := tr.Lookup(ctx, conn, db)
	if err != nil || len(got) != 1 || !slices.Equal(got[0].IDs, []string{"run-1"}) || got[0].Sent.IsZero() {
		t.Errorf("Tracker.Lookup = %+v, %v; want run-1 found", got, err)
	}
}
