package chwriter

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/kafkax/dlqtest"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestDeadLettersHoldNoInput gives the sink, through each of its ways to
// a dead letter, a record of one device that it cannot load or act on,
// keyed by and holding the device's pseudonym: a row ClickHouse refuses
// (its message quotes the value), a clean event, an erasure notice and a
// receipt that do not decode (their errors quote the value). Read back from
// the destination's own dead-letter topic, each dead letter points at its
// record (found there, SHA-256 and length checked) and holds neither the
// pseudonym nor any other value of the record.
func TestDeadLettersHoldNoInput(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.conn.Exec(ctx, fmt.Sprintf(quantityColumn, f.cfg.Database)); err != nil {
		t.Fatal(err)
	}
	const device = "k1.3f9c2a7b1d4e6f80a9b8c7d6e5f40312"
	clean := func(id string) map[string]any {
		var v map[string]any
		_ = json.Unmarshal(f.cleanOf(id, "", device).Value, &v)
		v["deviceId"], v["ip"] = device, "198.51.100.0"
		return v
	}
	refused := clean("m-refused-1")
	refused["properties"] = map[string]any{"quantity": device, "sku": "sku-77812"}
	undecodable := clean("m-undecodable-1")
	undecodable["timestamp"] = device
	value := func(v any) []byte { b, _ := json.Marshal(v); return b }
	recs := []*kgo.Record{
		{Topic: f.cfg.Topics.Clean.Name, Key: []byte(device), Value: value(refused)},
		{Topic: f.cfg.Topics.Clean.Name, Key: []byte(device), Value: value(undecodable)},
		{Topic: f.cfg.Topics.Erasures.Name, Key: []byte(device), Value: []byte(`{"schemaVersion":1,"requestId":"req-dead-1","reason":"user_request",` +
			`"anonymousIds":["` + device + `"],"requestedAt":"` + device + `"}`)},
		{Topic: f.cfg.Topics.Receipts.Name, Key: []byte("req-dead-2/sink/cn/" + device), Value: []byte(`{"schemaVersion":1,"requestId":"req-dead-2",` +
			`"kind":"` + device + `","stage":"sink","status":"deleted","subject":"` + device + `","at":"2026-11-01T08:00:00Z"}`)},
	}
	secrets := []string{device}
	for _, r := range recs {
		secrets = append(secrets, dlqtest.JSONValues(t, r.Value, 6)...)
	}
	testenv.Produce(t, ctx, f.brokers, recs...)

	var reasons []string
	for _, d := range testenv.ReadTopic(t, ctx, f.brokers, f.cfg.Topics.DLQ.Name, len(recs)) {
		src := dlqtest.Check(t, ctx, f.brokers, d, secrets)
		if i := slices.IndexFunc(recs, func(r *kgo.Record) bool { return r.Topic == src.Topic && r.Offset == src.Offset }); i < 0 {
			t.Errorf("dead letter points at %s/%d/%d, not at a record of the test", src.Topic, src.Partition, src.Offset)
		}
		reasons = append(reasons, kafkax.Header(d, kafkax.HeaderReason)+": "+kafkax.Header(d, kafkax.HeaderError))
	}
	slices.Sort(reasons)
	if want := []string{
		"invalid_clean_event: decode clean event: timestamp or receivedAt: must be an RFC 3339 time",
		"invalid_erasure_notice: decode erasure notice: requestedAt: must be an RFC 3339 time",
		"invalid_receipt: decode receipt: kind: must be erasure or export",
		"rejected_by_clickhouse: ClickHouse refused the row: code 6 (CANNOT_PARSE_TEXT)",
	}; !slices.Equal(reasons, want) {
		t.Errorf("dead letters say\n%q\nwant\n%q", reasons, want)
	}
}
