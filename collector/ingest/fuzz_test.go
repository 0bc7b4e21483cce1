package ingest

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/internal/event"
)

// FuzzDecodeRequest feeds arbitrary bodies through everything the collector
// does before producing: the batch and single-event decoders, the shape
// limits, event validation, context merging, clock correction and the
// envelope. It must never panic, and whatever it accepts the enricher must
// be able to read back: an accepted event that fails DecodeEnvelope would be
// acknowledged to the client and then dead-lettered.
//
// Seeds are in testdata/fuzz/FuzzDecodeRequest; run with
// go test -run '^$' -fuzz FuzzDecodeRequest ./collector/ingest/
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"batch":[{"type":"track","event":"E","userId":"u"}]}`), "")
	f.Add([]byte(`{"event":"E","anonymousId":"a","timestamp":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:01:00Z"}`), "track")
	cfg := testConfig([]string{"127.0.0.1:1"})
	s, err := New(cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		f.Fatal(err)
	}
	src := s.sources[0]
	receivedAt := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, route string) {
		var p payload
		var err error
		switch {
		case route == "":
			p, err = decodeBatch(body)
		case route == "pixel":
			p, err = decodeQueryEvent(string(body))
		case strings.Contains(strings.Join(event.Types, " "), route) && !strings.Contains(route, " "):
			p, err = decodeSingle(body, route)
		default:
			return
		}
		if err != nil {
			return
		}
		if len(p.Context) > s.cfg.HTTP.MaxEventBytes || s.shape.Check(p.Context) != nil {
			return // refused whole by store
		}
		batchCtx, err := parseBatchContext(p.Context)
		if err != nil {
			return
		}
		req := httptest.NewRequest("POST", "/v1/batch", nil)
		for i, raw := range p.Events {
			rec, reason, err := s.record(raw, p, batchCtx, src, receivedAt, s.signals(req))
			if err != nil {
				if reason == "" {
					t.Fatalf("event %d rejected without a reason: %v", i, err)
				}
				continue
			}
			env, err := event.DecodeEnvelope(rec.Value)
			if err != nil {
				t.Fatalf("event %d accepted but its envelope does not decode: %v\n%s", i, err, rec.Value)
			}
			if env.MessageID == "" || env.Event.Timestamp == "" {
				t.Fatalf("event %d: envelope without messageId or timestamp: %s", i, rec.Value)
			}
			if string(rec.Key) != env.Event.PartitionKey() {
				t.Fatalf("event %d: key %q, want %q", i, rec.Key, env.Event.PartitionKey())
			}
		}
	})
}
