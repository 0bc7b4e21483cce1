package chwriter

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/kafkax/dlqtest"
	"github.com/consentflow/consentflow/internal/testenv"
)

// quantityColumn is a column an operator might add to derive a number from
// a property. ClickHouse computes a DEFAULT for the columns an INSERT does
// not name, so from then on it refuses, with CANNOT_PARSE_TEXT (code 6),
// every insert holding a row whose quantity is not a number: a refusal
// caused by the row's content, which retrying can never cure.
const quantityColumn = `ALTER TABLE %s.events ADD COLUMN quantity UInt32
	DEFAULT toUInt32(if(has(prop_keys, 'quantity'), prop_values[indexOf(prop_keys, 'quantity')], '0'))`

// withProperties returns the record with its properties replaced.
func withProperties(r *kgo.Record, props string) *kgo.Record {
	var c event.Clean
	_ = json.Unmarshal(r.Value, &c)
	c.Properties = json.RawMessage(props)
	r.Value, _ = json.Marshal(c)
	return r
}

// TestRejectedRowsGoToTheDLQ sends one batch whose rows ClickHouse refuses
// in part: the others must be stored once, each refused row must be in the
// DLQ with the reason (a pointer to its record, without the value
// ClickHouse's message quotes), and the partition must keep moving.
func TestRejectedRowsGoToTheDLQ(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.conn.Exec(ctx, fmt.Sprintf(quantityColumn, f.cfg.Database)); err != nil {
		t.Fatal(err)
	}

	// One key, one partition, one produce: one batch, with refused rows
	// first, in the middle and last.
	const n = 50
	bad := []int{0, 17, 18, 49}
	var recs []*kgo.Record
	for i := range n {
		r := f.clean(fmt.Sprintf("m-%02d", i))
		switch {
		case slices.Contains(bad, i):
			r = withProperties(r, `{"quantity":"lots","sku":"s-1"}`)
		case i%5 == 0:
			r = withProperties(r, `{"sku":"s-1"}`)
		default:
			r = withProperties(r, fmt.Sprintf(`{"quantity":%d}`, i))
		}
		recs = append(recs, r)
	}
	testenv.Produce(t, ctx, f.brokers, recs...)

	got := f.waitRows(t, ctx, n-len(bad))
	for i := range n {
		id, want := fmt.Sprintf("m-%02d", i), uint64(1)
		if slices.Contains(bad, i) {
			want = 0
		}
		if got[id] != want {
			t.Errorf("%s stored %d times, want %d", id, got[id], want)
		}
	}
	var quantity uint32
	if err := f.conn.QueryRow(ctx, "SELECT quantity FROM "+f.cfg.Database+".events WHERE message_id = 'm-07'").Scan(&quantity); err != nil || quantity != 7 {
		t.Errorf("quantity of m-07 = %d (%v), want 7", quantity, err)
	}

	dead := testenv.ReadTopic(t, ctx, f.brokers, f.cfg.Topics.DLQ.Name, len(bad))
	var deadIDs []string
	for _, d := range dead {
		var c event.Clean
		_ = json.Unmarshal(dlqtest.Check(t, ctx, f.brokers, d, []string{"k1.subject", "lots"}).Value, &c)
		deadIDs = append(deadIDs, c.MessageID)
		i, _ := strconv.Atoi(strings.TrimPrefix(c.MessageID, "m-"))
		if src := recs[i]; kafkax.Header(d, kafkax.HeaderPartition) != strconv.Itoa(int(src.Partition)) || kafkax.Header(d, kafkax.HeaderOffset) != strconv.FormatInt(src.Offset, 10) {
			t.Errorf("dead letter %s does not point at the record produced", c.MessageID)
		}
		if r := kafkax.Header(d, kafkax.HeaderReason); r != "rejected_by_clickhouse" {
			t.Errorf("dead letter %s: reason %q", c.MessageID, r)
		}
		if s := kafkax.Header(d, kafkax.HeaderStage); s != "sink" {
			t.Errorf("dead letter %s: stage %q", c.MessageID, s)
		}
		if e := kafkax.Header(d, kafkax.HeaderError); e != "ClickHouse refused the row: code 6 (CANNOT_PARSE_TEXT)" {
			t.Errorf("dead letter %s: error %q, want ClickHouse's CANNOT_PARSE_TEXT without the value it quotes", c.MessageID, e)
		}
		if kafkax.Header(d, kafkax.HeaderTopic) != f.cfg.Topics.Clean.Name || kafkax.Header(d, kafkax.HeaderOffset) == "" {
			t.Errorf("dead letter %s: source headers %+v", c.MessageID, d.Headers)
		}
	}
	slices.Sort(deadIDs)
	if want := []string{"m-00", "m-17", "m-18", "m-49"}; !slices.Equal(deadIDs, want) {
		t.Errorf("dead letters %v, want %v", deadIDs, want)
	}
	waitCommitted(t, ctx, f, n)

	// The partition keeps moving.
	testenv.Produce(t, ctx, f.brokers, withProperties(f.clean("after"), `{"quantity":3}`))
	if got := f.waitRows(t, ctx, n-len(bad)+1); got["after"] != 1 {
		t.Errorf("row after the rejected batch stored %d times", got["after"])
	}
	waitCommitted(t, ctx, f, n+1)

	if all := testenv.ReadAll(t, ctx, f.brokers, f.cfg.Topics.DLQ.Name); len(all) != len(bad) {
		t.Errorf("DLQ holds %d records, want %d", len(all), len(bad))
	}
	m := f.w.metrics
	if v := testutil.ToFloat64(m.deadLettered.WithLabelValues(reasonRejected)); v != float64(len(bad)) {
		t.Errorf("sink_dead_lettered_total{reason=rejected_by_clickhouse} = %v, want %d", v, len(bad))
	}
	if v := testutil.ToFloat64(m.deadLettered.WithLabelValues(reasonInvalid)); v != 0 {
		t.Errorf("sink_dead_lettered_total{reason=invalid_clean_event} = %v, want 0", v)
	}
	if v := testutil.ToFloat64(m.insertErrors.WithLabelValues(kindRejected)); v == 0 {
		t.Error("sink_insert_errors_total{kind=rejected} = 0")
	}
	for _, kind := range []string{kindServer, kindConnection} {
		if v := testutil.ToFloat64(m.insertErrors.WithLabelValues(kind)); v != 0 {
			t.Errorf("sink_insert_errors_total{kind=%s} = %v: a refusal was retried", kind, v)
		}
	}
	if err := f.w.Ready(ctx); err != nil {
		t.Errorf("Ready after rejected rows = %v", err)
	}
}

// TestNotStoredFindsWhatAFailedInsertStored checks the look-up the sink
// makes before retrying a failed insert: rows already stored (the insert
// got through before the connection broke) are left out.
func TestNotStoredFindsWhatAFailedInsertStored(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var rows []*row
	for i := range 10 {
		rec := f.clean(fmt.Sprintf("n-%d", i))
		rec.Partition, rec.Offset = int32(i%2), int64(1000+i)
		if i == 9 { // another month: the look-up must span it
			rec = withTimestamp(rec, time.Date(2025, 1, 31, 23, 59, 59, 0, time.UTC))
		}
		r, err := decodeRow(rec)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, &r)
	}
	stored := []int{0, 3, 4, 9}
	var some []*row
	for _, i := range stored {
		some = append(some, rows[i])
	}
	if err := f.w.insert(ctx, some); err != nil {
		t.Fatal(err)
	}
	missing, err := f.w.notStored(ctx, rows)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range missing {
		ids = append(ids, r.clean.MessageID)
	}
	if want := []string{"n-1", "n-2", "n-5", "n-6", "n-7", "n-8"}; !slices.Equal(ids, want) {
		t.Errorf("not stored: %v, want %v", ids, want)
	}
}

// withTimestamp returns the record with its event time replaced.
func withTimestamp(r *kgo.Record, at time.Time) *kgo.Record {
	var c event.Clean
	_ = json.Unmarshal(r.Value, &c)
	c.Timestamp = at
	r.Value, _ = json.Marshal(c)
	return r
}
