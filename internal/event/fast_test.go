package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// referenceDecode is what the collector did before the one-pass decoder,
// and what it still does for anything that decoder leaves alone.
func referenceDecode(s Shape, raw []byte, typ string) (Event, error) {
	if err := s.Check(raw); err != nil {
		return Event{}, err
	}
	return DecodeEventOfType(raw, typ)
}

// sameDecoding fails unless two decodings agree: the same event, field for
// field (raw parts byte for byte), and the same error text.
func sameDecoding(got Event, gotErr error, want Event, wantErr error) error {
	switch {
	case (gotErr == nil) != (wantErr == nil):
		return fmt.Errorf("error %v, reference %v", gotErr, wantErr)
	case gotErr != nil && gotErr.Error() != wantErr.Error():
		return fmt.Errorf("error %q, reference %q", gotErr, wantErr)
	case gotErr == nil && !reflect.DeepEqual(got, want):
		return fmt.Errorf("event\n%#v\nreference\n%#v", got, want)
	}
	return nil
}

// fastSeeds are events the one-pass decoder must decide itself.
var fastSeeds = []string{
	`{"type":"track","event":"Product Viewed","userId":"user-1","anonymousId":"anon-1","messageId":"m-1","timestamp":"2026-11-28T10:00:00.000Z",` +
		`"context":{"ip":"203.0.113.9","library":{"name":"analytics.js","version":"4.1.0"},"device":{"id":"device-1","model":"Pixel 9"},"locale":"zh-CN"},` +
		`"properties":{"sku":"sku-1","price":9.5,"currency":"CNY","name":"跑鞋","tags":["a","b\"c\u00e9"],"n":null,"ok":true,"big":-1.5e-300}}`,
	` { "type" : "page" , "name" : "Home" , "anonymousId" : "a-1" , "context" : null , "traits" : { } , "integrations" : [ ] } `,
	`{"type":"identify","userId":"u1","traits":{"email":"a@b.c","k":{"K":1,"k":2}},"sentAt":"2026-01-02T17:04:05+02:00","originalTimestamp":"2026-01-02T17:04:00+02:00"}`,
	`{"type":"alias","userId":"u1","previousId":"a1","messageId":null,"channel":"server","version":2}`,
	`{"type":"group","userId":"u1","groupId":"g1"}`,
	`{"event":"Signed Up","userId":"u1"}`,
	`{"type":"screen","userId":"u1","name":"Settings","properties":{"a":1}}`,
	`{"type":"track","userId":"u1"}`,
	`{"type":"purchase","userId":"u1"}`,
	`{}`,
}

// slowSeeds are events left to the reference decoder: errors, and the
// cases the one-pass decoder does not handle.
var slowSeeds = []string{
	`{"TYPE":"page","USERID":"u1","userid":"u2"}`,
	`{"type":"page","userId":"u1","userId":"u2"}`,
	`{"type":"page","userId":"u\"1"}`,
	`{"type":"page","user\u0049d":"u1"}`,
	"{\"type\":\"page\",\"userId\":\"\xff\"}",
	"{\"type\":\"page\",\"\u212aey\":\"u1\"}",
	`{"type":"page","userId":12345}`,
	`{"type":"page","userId":"u1","properties":01}`,
	`{"type":"page","userId":"u1","properties":[1,]}`,
	`{"type":"page","userId":"u1"} {}`,
	`{"type":"page","userId":"u1"}]`,
	`{"type":"page",`,
	`{"type":"page","userId":"u1","properties":{"a":"\x01"}}`,
	`{"type":"page","userId":"u1","properties":{"a":"\q"}}`,
	`{"type":"page","userId":"u1","properties":{"a":-}}`,
	`{"type":"page","userId":"u1","properties":{"a":1.}}`,
	`{"type":"page","userId":"u1","properties":{"a":1e}}`,
	`{"type":"page","userId":"u1","properties":{"a":tru}}`,
	`{"type":"page","userId":"u1","properties":{"a":{"b":{"c":{"d":{"e":{}}}}}}}`,
	`null`,
	`[]`,
	`""`,
	``,
}

func TestFastDecodeDecides(t *testing.T) {
	s := Shape{MaxDepth: 5, MaxKeys: 30}
	for _, raw := range fastSeeds {
		if _, ok := s.decodeFast([]byte(raw)); !ok {
			t.Errorf("left to the reference decoder: %s", raw)
		}
	}
	for _, raw := range slowSeeds {
		if _, ok := s.decodeFast([]byte(raw)); ok {
			t.Errorf("decided in one pass: %q", raw)
		}
	}
}

// FuzzFastDecodeEvent checks Shape.DecodeEvent against the reference
// decoding (Shape.Check, then DecodeEventOfType): the same event or the
// same error, for any input, type and limits.
//
// go test -run '^$' -fuzz FuzzFastDecodeEvent ./internal/event/
func FuzzFastDecodeEvent(f *testing.F) {
	for _, seeds := range [][]string{fastSeeds, slowSeeds, eventSeedsInternal} {
		for _, raw := range seeds {
			f.Add([]byte(raw), "", uint8(5), uint16(30))
			f.Add([]byte(raw), "track", uint8(2), uint16(4))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, typ string, depth uint8, keys uint16) {
		s := Shape{MaxDepth: int(depth), MaxKeys: int(keys)}
		got, gotErr := s.DecodeEvent(raw, typ)
		want, wantErr := referenceDecode(s, raw, typ)
		if err := sameDecoding(got, gotErr, want, wantErr); err != nil {
			t.Fatalf("%v\nraw: %q", err, raw)
		}
	})
}

// FuzzFastDecodeBatch checks Shape.DecodeBatch against the reference: what
// it decides, the reference decodes the same way, event by event.
//
// go test -run '^$' -fuzz FuzzFastDecodeBatch ./internal/event/
func FuzzFastDecodeBatch(f *testing.F) {
	for _, seeds := range [][]string{fastSeeds, slowSeeds, eventSeedsInternal} {
		f.Add([]byte(`{"writeKey":"k","sentAt":"2026-11-28T10:00:01Z","context":{"a":1},"batch":[` + strings.Join(seeds, ",") + `]}`))
		for _, raw := range seeds {
			f.Add([]byte(`{"batch":[` + raw + `,` + raw + `]}`))
		}
	}
	for _, body := range []string{`{"batch":[]}`, `{"batch":null}`, `{}`, `{"batch":{}}`, `{"Batch":[]}`, `{"batch":[1,null,"x",[]]}`, `{"batch":[{}],"batch":[]}`} {
		f.Add([]byte(body))
	}
	s := Shape{MaxDepth: 5, MaxKeys: 30}
	earlier := []byte(`{"batch":[` + strings.Join(fastSeeds, ",") + `]}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		// Into a Batch that held another, as the collector reuses them.
		var b Batch
		if !s.DecodeBatch(earlier, &b) {
			t.Fatal("the earlier batch was not decided")
		}
		if !s.DecodeBatch(body, &b) {
			return // the reference decoder's
		}
		// The collector's reference: encoding/json's semantics, events raw.
		var ref struct {
			WriteKey string            `json:"writeKey"`
			SentAt   string            `json:"sentAt"`
			Context  json.RawMessage   `json:"context"`
			Batch    []json.RawMessage `json:"batch"`
		}
		if err := jsonv1.Unmarshal(body, &ref); err != nil {
			t.Fatalf("decided %q, which the reference refuses: %v", body, err)
		}
		if b.WriteKey != ref.WriteKey || b.SentAt != ref.SentAt || !reflect.DeepEqual(b.Context, ref.Context) ||
			(b.Events == nil) != (ref.Batch == nil) || len(b.Events) != len(ref.Batch) {
			t.Fatalf("body %q: decoded %+v, reference %+v", body, b, ref)
		}
		for i := range b.Events {
			be := &b.Events[i]
			if !bytes.Equal(be.Raw, ref.Batch[i]) {
				t.Fatalf("event %d: raw %q, reference %q", i, be.Raw, ref.Batch[i])
			}
			got, gotErr := be.Decode(s, "")
			want, wantErr := referenceDecode(s, be.Raw, "")
			if err := sameDecoding(got, gotErr, want, wantErr); err != nil {
				t.Fatalf("event %d: %v\nraw: %q", i, err, be.Raw)
			}
		}
	})
}

// eventSeedsInternal mirrors the seeds of the external fuzz tests.
var eventSeedsInternal = []string{
	`{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":1.10,"n":12345678901234567890},"timestamp":"2026-01-02T15:04:05.000Z"}`,
	`{"type":"page","userId":"<script>&\u2028\ud800\u00e9","context":{"a":"<&>","b":[1,{"c":null}]}}`,
	`{"type":"page","userId":"u1","timestamp":"yesterday"}`,
	`{"type":"page","userId":"u1","properties":[1]}`,
}

// TestBatchPastDecodeBudget: events past maxBatchDecoded are left to
// Decode, which still reads them as the reference does.
func TestBatchPastDecodeBudget(t *testing.T) {
	s := Shape{MaxDepth: 5, MaxKeys: 30}
	var events []string
	for i := range maxBatchDecoded + 3 {
		events = append(events, fmt.Sprintf(`{"type":"track","event":"E","userId":"u-%d"}`, i), `{"type":"track"}`)
	}
	var b Batch
	ok := s.DecodeBatch([]byte(`{"batch":[`+strings.Join(events, ",")+`]}`), &b)
	if !ok || len(b.Events) != len(events) {
		t.Fatalf("decided %v, %d events", ok, len(b.Events))
	}
	for i := range b.Events {
		be := &b.Events[i]
		if past := i >= maxBatchDecoded; be.deferred != past || (be.ev != nil) == past && i%2 == 0 {
			t.Fatalf("event %d: deferred %v, decoded %v", i, be.deferred, be.ev != nil)
		}
		got, gotErr := be.Decode(s, "")
		want, wantErr := referenceDecode(s, []byte(events[i]), "")
		if err := sameDecoding(got, gotErr, want, wantErr); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
}

// FuzzParseTimeFast checks parseTimeFast against time.Parse: whatever it
// parses, time.Parse parses to the same instant, in UTC.
//
// go test -run '^$' -fuzz FuzzParseTimeFast ./internal/event/
func FuzzParseTimeFast(f *testing.F) {
	for _, s := range []string{"2026-11-28T10:00:00.000Z", "2026-11-28T10:00:00Z", "2024-02-29T23:59:59.999Z", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2000-02-29T00:00:00Z",
		"2026-13-01T00:00:00Z", "2026-11-31T00:00:00Z", "2026-11-28T24:00:00Z", "2026-11-28T10:60:00Z", "2026-11-28T10:00:60Z",
		"0000-01-01T00:00:00Z", "2026-11-28t10:00:00z", "2026-11-28T10:00:00.0000Z", "2026-11-28T10:00:00+08:00", "+026-11-28T10:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseTimeFast(s)
		if !ok {
			return
		}
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !got.Equal(want) || got.Location() != want.Location() || got != want {
			t.Fatalf("parseTimeFast(%q) = %v, time.Parse: %v, %v", s, got, want, err)
		}
	})
}

// TestFieldIndex: the switch knows every field by its name.
func TestFieldIndex(t *testing.T) {
	for f, name := range fieldNames {
		if got := fieldIndex([]byte(name)); got != f {
			t.Errorf("fieldIndex(%q) = %d, want %d", name, got, f)
		}
	}
	if got := fieldIndex([]byte("Type")); got != -1 {
		t.Errorf("fieldIndex(Type) = %d", got)
	}
}
