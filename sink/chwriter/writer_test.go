package chwriter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/kafkax/dlqtest"
	"github.com/consentflow/consentflow/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestFlattenProperties(t *testing.T) {
	cases := []struct {
		in           string
		keys, values []string
		err          bool
	}{
		{``, []string{}, []string{}, false},
		{`null`, []string{}, []string{}, false},
		{`{}`, []string{}, []string{}, false},
		{`{"b":"two","a":1.50,"c":true,"d":null,"e":{"x":[1,2]}}`,
			[]string{"a", "b", "c", "d", "e"}, []string{"1.50", "two", "true", "null", `{"x":[1,2]}`}, false},
		{`[1,2]`, nil, nil, true},
		{`{"a":1,"a":"last","b":"\u00e9\n"}`, []string{"a", "b"}, []string{"last", "é\n"}, false},
		{` {"k" : [ 1 , 2 ] } `, []string{"k"}, []string{"[ 1 , 2 ]"}, false},
		{`{"a":1`, nil, nil, true},
	}
	for _, tc := range cases {
		keys, values, err := flattenProperties(json.RawMessage(tc.in))
		if (err != nil) != tc.err {
			t.Errorf("%s: err = %v", tc.in, err)
			continue
		}
		if !slices.Equal(keys, tc.keys) || !slices.Equal(values, tc.values) {
			t.Errorf("%s: got %q %q, want %q %q", tc.in, keys, values, tc.keys, tc.values)
		}
	}
}

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	w, err := New(Default(), reg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	testenv.LintMetrics(t, reg)
}

// fixture is a sink on its own topics and database.
type fixture struct {
	cfg     Config
	brokers []string
	conn    driver.Conn
	w       *Writer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	chAddr := testenv.ClickHouseAddr(t)
	cfg := Default()
	cfg.Kafka.Brokers = brokers
	cfg.ClickHouse.Addr = []string{chAddr}
	cfg.GroupID = testenv.Name(t, "sink")
	cfg.Database = testenv.Name(t, "analytics")
	cfg.Topics.Clean.Name = testenv.Name(t, "clean")
	cfg.Topics.DLQ.Name = testenv.Name(t, "dlq")
	cfg.Topics.Erasures.Name = testenv.Name(t, "erasures")
	cfg.Topics.Receipts.Name = testenv.Name(t, "receipts")
	cfg.Batch.MaxWait = 100 * time.Millisecond
	cfg.Erasure.Window = 300 * time.Millisecond
	cfg.Audit.Enabled = true // as configs/sink.yaml
	cfg.Retention.Months = 0 // tests with fixed dates must not age out; TestRetention* sets it
	testenv.DeleteTopicsAfter(t, brokers, cfg.Topics.Clean.Name, cfg.Topics.DLQ.Name, cfg.Topics.Erasures.Name, cfg.Topics.Receipts.Name)
	conn := testenv.ClickHouseDB(t, chAddr, cfg.Database)
	// The sink logs in as production's does (deployments/clickhouse): as a
	// user that may use its own database only, which an administrator
	// created. conn, the test's own, is the default user's.
	testenv.ClickHouseSinkUser(t, chAddr, cfg.Database).Apply(&cfg.ClickHouse)
	w, err := New(cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	return &fixture{cfg: cfg, brokers: brokers, conn: conn, w: w}
}

func (f *fixture) clean(id string) *kgo.Record {
	v, _ := json.Marshal(event.Clean{
		SchemaVersion: event.SchemaVersion, MessageID: id, Type: "track", Event: "Viewed",
		Timestamp: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), ReceivedAt: time.Now().UTC(),
		SourceID: "web", Region: "cn", Subject: "k1.subject", IP: "198.51.100.0",
		Properties: json.RawMessage(`{"sku":"s-1","price":9.5}`),
	})
	return &kgo.Record{Topic: f.cfg.Topics.Clean.Name, Key: []byte("k1.subject"), Value: v}
}

func (f *fixture) rows(t *testing.T, ctx context.Context) map[string]uint64 {
	t.Helper()
	got, err := rowsByMessageID(ctx, f.conn, f.cfg.Database)
	if err != nil {
		return nil // the table is not there yet
	}
	return got
}

// rowsByMessageID counts the rows of db.events by message id on the
// server behind conn.
func rowsByMessageID(ctx context.Context, conn driver.Conn, db string) (map[string]uint64, error) {
	rows, err := conn.Query(ctx, "SELECT message_id, count() FROM "+db+".events GROUP BY message_id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		got[id] = n
	}
	return got, rows.Err()
}

func (f *fixture) waitRows(t *testing.T, ctx context.Context, n int) map[string]uint64 {
	t.Helper()
	for {
		got := f.rows(t, ctx)
		if len(got) >= n {
			return got
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d rows in ClickHouse", len(got), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitCommitted(t *testing.T, ctx context.Context, f *fixture, want int64) {
	t.Helper()
	for testenv.CommittedTotal(t, ctx, f.brokers, f.cfg.GroupID, f.cfg.Topics.Clean.Name) < want {
		if ctx.Err() != nil {
			t.Fatalf("sink did not commit %d offsets", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestLoadAndDeadLetter(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// A second start on the same database applies nothing again, and every
	// migration's statements are idempotent for two sinks starting at once.
	if v, err := migrate(ctx, f.conn, f.cfg.Database, features{}); err != nil || v != migrations[len(migrations)-1].version {
		t.Fatalf("second migrate: version %d, %v", v, err)
	}
	var applied uint64
	if err := f.conn.QueryRow(ctx, "SELECT count() FROM "+f.cfg.Database+".schema_migrations").Scan(&applied); err != nil || applied != uint64(len(migrations)) {
		t.Errorf("schema_migrations holds %d rows (%v), want one per migration (%d)", applied, err, len(migrations))
	}
	for _, m := range migrations {
		if err := apply(ctx, f.conn, f.cfg.Database, m, features{}); err != nil {
			t.Fatalf("migration %d is not idempotent: %v", m.version, err)
		}
	}
	if err := checkColumns(ctx, f.conn, f.cfg.Database); err != nil {
		t.Errorf("after every migration: %v", err)
	}
	poison := &kgo.Record{Topic: f.cfg.Topics.Clean.Name, Key: []byte("k"), Value: []byte(`{"schemaVersion":1,"messageId":"m-x"}`)}
	produced := []*kgo.Record{f.clean("m-1"), poison, f.clean("m-2"), f.clean("m-3")}
	testenv.Produce(t, ctx, f.brokers, produced...)

	got := f.waitRows(t, ctx, 3)
	for _, id := range []string{"m-1", "m-2", "m-3"} {
		if got[id] != 1 {
			t.Errorf("%s stored %d times", id, got[id])
		}
	}
	var keys, values []string
	var when time.Time
	if err := f.conn.QueryRow(ctx, "SELECT prop_keys, prop_values, event_time FROM "+f.cfg.Database+".events WHERE message_id = 'm-1'").Scan(&keys, &values, &when); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"price", "sku"}) || !slices.Equal(values, []string{"9.5", "s-1"}) || !when.Equal(time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("row m-1: keys %q values %q time %v", keys, values, when)
	}

	dead := testenv.ReadTopic(t, ctx, f.brokers, f.cfg.Topics.DLQ.Name, 1)
	if src := dlqtest.Check(t, ctx, f.brokers, dead[0], nil); string(src.Value) != string(poison.Value) || kafkax.Header(dead[0], kafkax.HeaderStage) != "sink" ||
		!strings.Contains(kafkax.Header(dead[0], kafkax.HeaderError), "subject: is required") {
		t.Errorf("dead letter %s headers %+v", dead[0].Value, dead[0].Headers)
	}
	waitCommitted(t, ctx, f, 4)
	// The batch's bytes are every record's, the poison one's included.
	var want int
	for _, r := range produced {
		want += len(r.Value)
	}
	var m dto.Metric
	if err := f.w.metrics.batchBytes.Write(&m); err != nil || m.GetHistogram().GetSampleSum() != float64(want) {
		t.Errorf("sink_batch_bytes sum = %v (err %v), want %d", m.GetHistogram().GetSampleSum(), err, want)
	}
}

// TestInsertFailureHoldsCommit makes ClickHouse refuse inserts (the table is
// gone) and checks that the sink retries without committing, then loads
// everything once ClickHouse accepts again.
func TestInsertFailureHoldsCommit(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.conn.Exec(ctx, "DROP TABLE "+f.cfg.Database+".events"); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range 20 {
		recs = append(recs, f.clean(fmt.Sprintf("m-%d", i)))
	}
	testenv.Produce(t, ctx, f.brokers, recs...)

	for testutil.ToFloat64(f.w.metrics.insertErrors.WithLabelValues("server")) < 2 {
		if ctx.Err() != nil {
			t.Fatal("sink never tried to insert")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := testenv.CommittedTotal(t, ctx, f.brokers, f.cfg.GroupID, f.cfg.Topics.Clean.Name); n != 0 {
		t.Fatalf("sink committed %d offsets while every insert failed", n)
	}
	if err := f.w.Ready(ctx); err == nil || !strings.Contains(err.Error(), "inserts failing") {
		t.Errorf("Ready while inserts fail = %v, want not ready", err)
	}

	for _, m := range migrations { // ClickHouse is back
		if err := apply(ctx, f.conn, f.cfg.Database, m, features{}); err != nil {
			t.Fatal(err)
		}
	}
	got := f.waitRows(t, ctx, 20)
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	waitCommitted(t, ctx, f, 20)
	if err := f.w.Ready(ctx); err != nil {
		t.Errorf("Ready once inserts succeed again = %v", err)
	}
}

// TestStartRefusesAForeignTable checks the sink will not start on an events
// table without the columns it inserts, rather than fail every insert.
func TestStartRefusesAForeignTable(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	for _, stmt := range []string{
		"CREATE DATABASE IF NOT EXISTS " + f.cfg.Database,
		"CREATE TABLE " + f.cfg.Database + ".events (message_id String, event_time DateTime) ENGINE = MergeTree() ORDER BY event_time",
	} {
		if err := f.conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	err := f.w.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "lacks columns type, event, received_at") || !strings.Contains(err.Error(), "kafka_offset") {
		t.Fatalf("Start on a foreign table: %v", err)
	}
}

func TestRetentionOldestKept(t *testing.T) {
	for _, tc := range []struct {
		months int
		now    string
		want   int
	}{
		{1, "2026-11-28T10:00:00Z", 202611},
		{3, "2026-11-28T10:00:00Z", 202609},
		{11, "2026-11-01T00:00:00Z", 202601},
		{12, "2026-11-30T23:59:59Z", 202512},
		{13, "2026-01-15T00:00:00Z", 202501},
	} {
		now, _ := time.Parse(time.RFC3339, tc.now)
		if got := (Retention{Months: tc.months}).oldestKept(now); got != tc.want {
			t.Errorf("%d months at %s: oldest kept %d, want %d", tc.months, tc.now, got, tc.want)
		}
	}
}

// TestRetentionDropsExpiredMonths loads events from three months and checks
// retention drops exactly the months past it.
func TestRetentionDropsExpiredMonths(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Set after Start, so the hourly loop (not running) cannot drop first.
	f.w.cfg.Retention = Retention{Months: 2}
	at := map[string]time.Time{
		"old":     time.Date(2026, 8, 31, 23, 0, 0, 0, time.UTC),
		"last":    time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
		"current": time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC),
	}
	var recs []*kgo.Record
	for id, ts := range at {
		r := f.clean(id)
		var c event.Clean
		_ = json.Unmarshal(r.Value, &c)
		c.Timestamp = ts
		r.Value, _ = json.Marshal(c)
		recs = append(recs, r)
	}
	testenv.Produce(t, ctx, f.brokers, recs...)
	f.waitRows(t, ctx, 3)

	dropped, err := f.w.dropExpired(ctx, time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	if err != nil || dropped != 1 {
		t.Fatalf("dropped %d partitions (%v), want 1 (August)", dropped, err)
	}
	got := f.rows(t, ctx)
	if got["old"] != 0 || got["last"] != 1 || got["current"] != 1 {
		t.Errorf("rows after retention: %v, want August gone, October and November kept", got)
	}
	if n := testutil.ToFloat64(f.w.metrics.partitionsDropped); n != 1 {
		t.Errorf("partitions dropped metric = %v", n)
	}
}
