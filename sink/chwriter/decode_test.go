package chwriter

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
)

// sampleClean is a clean record as the enricher writes it, every field set.
func sampleClean() event.Clean {
	ts := time.Date(2026, 11, 1, 8, 0, 0, 123456789, time.UTC)
	return event.Clean{
		SchemaVersion: event.SchemaVersion, MessageID: "m-0001", Type: "track", Event: "Product Viewed",
		Timestamp: ts, ReceivedAt: ts.Add(150 * time.Millisecond), SourceID: "web", Region: "cn",
		Purposes: []string{"analytics", "marketing"}, Subject: "k1.5f3a", UserID: "k1.5f3a", AnonymousID: "k1.77b0",
		DeviceID: "k1.d3v1", AdvertisingID: "k1.ad01", IMEI: "k1.1me1", AndroidID: "k1.and0", MAC: "k1.mac0",
		Country: "CN", IP: "198.51.100.0", Browser: "Chrome", BrowserVersion: "120", OS: "Android", OSVersion: "14",
		DeviceClass: "mobile", DNT: true, GPC: false,
		Context:    json.RawMessage(`{"locale":"zh-CN","page":{"path":"/p/1","title":"Phone \u00e9"},"library":{"name":"analytics.js","version":"5.2.0"}}`),
		Properties: json.RawMessage(`{"sku":"SKU-1","price":19.99,"currency":"CNY","quantity":1,"name":"Phone \"X\" \u00e9","tags":["a","b"],"extra":null}`),
	}
}

// cleanSeeds are clean records the enricher writes (plain) and records it
// never would, some of which the sink refuses.
func cleanSeeds() (plain, other [][]byte) {
	full := sampleClean()
	bare := event.Clean{SchemaVersion: 1, MessageID: "m-2", Type: "page", Subject: "k1.s",
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	plain = append(plain, full.AppendJSON(nil))
	v, _ := json.Marshal(full)
	plain = append(plain, v)
	plain = append(plain, bare.AppendJSON(nil))
	plain = append(plain, []byte(` {"schemaVersion":1,"messageId":"m","type":"track","subject":"s","timestamp":"2026-02-28T23:59:59.5Z","receivedAt":"2026-03-01T00:00:00Z","properties":null,"purposes":[],"context":null,"dnt":null,"unknown":{"a":[1,2.5e3,true]}} `))
	plain = append(plain, []byte(`{"schemaVersion":1,"messageId":"m","subject":"s","timestamp":"2026-01-01T00:00:00.5Z","receivedAt":"2026-01-01T00:00:00.000001Z","properties":{ "b" : [ 1 ] , "a":1,"a":"tw\"o","c":{}}}`))
	other = [][]byte{
		[]byte(``), []byte(`null`), []byte(`[]`), []byte(`{`), []byte(`{}`), []byte(`{"schemaVersion":1}`),
		[]byte(`{"schemaVersion":2,"messageId":"m","subject":"s","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"schemaVersion":1,"messageId":"m","subject":"","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"schemaVersion":1,"messageId":"m","subject":"s","timestamp":"2200-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"schemaVersion":1,"messageId":"m","subject":"s","timestamp":"2026-01-01T08:00:00+08:00","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"schemaVersion":1,"messageId":"m","subject":"s","timestamp":"2026-02-30T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"schemaVersion":1,"messageId":"m","subject":"s","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z","properties":"x"}`),
		[]byte(`{"schemaVersion":1,"messageId":"m","subject":"s","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z","properties":{"a":1,"a":"two","\u00e9":"\ud83d\ude00"}}`),
		[]byte(`{"SchemaVersion":1,"messageId":"m","subject":"s","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"schemaVersion":1,"messageId":"m","messageId":"n","subject":"s","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"schemaVersion":1.0,"messageId":"m","subject":"s","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"schemaVersion":1,"messageId":7,"subject":"s","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"schemaVersion":1,"messageId":"m","subject":"s","purposes":["a",null],"dnt":1,"timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"schemaVersion":1,"messageId":"m\ud800","subject":"s\n","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}`),
		[]byte("{\"schemaVersion\":1,\"messageId\":\"m\xff\",\"subject\":\"s\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"receivedAt\":\"2026-01-01T00:00:00Z\"}"),
		[]byte(`{"schemaVersion":1,"messageId":"m","subject":"s","timestamp":"2026-01-01T00:00:00Z","receivedAt":"2026-01-01T00:00:00Z"}]`),
	}
	return plain, other
}

// TestDecodeFastTakesCleanRecords: the records the enricher writes take
// the one-pass path (else FuzzDecodeRow would compare the reference with
// itself), and give the reference's row.
func TestDecodeFastTakesCleanRecords(t *testing.T) {
	plain, _ := cleanSeeds()
	for _, raw := range plain {
		var r row
		if !decodeFast(raw, &r) {
			t.Fatalf("the one-pass decoder leaves %s to the reference", raw)
		}
		checkSameRow(t, raw)
	}
}

// FuzzDecodeRow checks the sink's decoder against the reference path
// (event.DecodeClean, then flattenProperties): the same row, or the same
// refusal, for any input.
func FuzzDecodeRow(f *testing.F) {
	plain, other := cleanSeeds()
	for _, raw := range append(plain, other...) {
		f.Add(raw)
	}
	f.Fuzz(checkSameRow)
}

func checkSameRow(t *testing.T, raw []byte) {
	rec := &kgo.Record{Value: raw, Partition: 2, Offset: 7}
	got, gotErr := decodeRow(rec)
	want, wantErr := decodeRowReference(rec)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("%q: error %v, reference %v", raw, gotErr, wantErr)
	}
	if gotErr != nil {
		return
	}
	// The reference's raw parts are copies; the same bytes are the same row.
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", raw, got, want)
	}
}

func BenchmarkDecodeRow(b *testing.B) {
	c := sampleClean()
	rec := &kgo.Record{Value: c.AppendJSON(nil)}
	b.SetBytes(int64(len(rec.Value)))
	b.Run("one-pass", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeRow(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeRowReference(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestEachEventColumn: one column per name of eventColumns, in its order,
// each holding every row.
func TestEachEventColumn(t *testing.T) {
	plain, _ := cleanSeeds()
	var rows []*row
	for _, raw := range plain {
		r, err := decodeRow(&kgo.Record{Value: raw, Partition: 1, Offset: int64(len(rows))})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, &r)
	}
	var cols []any
	err := eachEventColumn(rows, func(i int, col any) error {
		v := reflect.ValueOf(col) // a copy: the next column of its type overwrites it
		cols = append(cols, reflect.AppendSlice(reflect.MakeSlice(v.Type(), 0, v.Len()), v).Interface())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Split(eventColumns, ",")
	if len(cols) != len(names) {
		t.Fatalf("%d columns, eventColumns names %d", len(cols), len(names))
	}
	c := rows[0].clean
	want := map[string]any{"message_id": c.MessageID, "event_time": c.Timestamp, "received_at": c.ReceivedAt,
		"ip_truncated": c.IP, "dnt": uint8(1), "context": c.Context, "prop_keys": rows[0].propKeys,
		"kafka_offset": int64(0), "purposes": c.Purposes, "device_class": c.DeviceClass, "advertising_pseudonym": c.AdvertisingID}
	for i, name := range names {
		col := reflect.ValueOf(cols[i])
		if col.Len() != len(rows) {
			t.Fatalf("column %s holds %d rows, want %d", name, col.Len(), len(rows))
		}
		if w, ok := want[strings.TrimSpace(name)]; ok && !reflect.DeepEqual(col.Index(0).Interface(), w) {
			t.Errorf("column %s: %v, want %v", name, col.Index(0).Interface(), w)
		}
	}
}

// TestCleanIndex: every name of cleanNames finds its own index.
func TestCleanIndex(t *testing.T) {
	for i, n := range cleanNames {
		if got := cleanIndex([]byte(n)); got != i {
			t.Errorf("cleanIndex(%q) = %d, want %d", n, got, i)
		}
	}
}
