package ingest

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
)

// FuzzDecodeRequest feeds arbitrary bodies through everything the collector
// does before producing: the batch and single-event decoders, the shape
// limits, event validation, context merging, clock correction and the
// envelope. It must never panic, and whatever it accepts the enricher must
// be able to read back: an accepted event that fails DecodeEnvelope would be
// acknowledged to the client and then dead-lettered.
//
// It is also a differential test of the one-pass decoders: every body goes
// through the reference path too (decodeBatchStrict, decodeSingleStrict,
// events raw), and both must answer alike: the same error, or the same
// records and rejections byte for byte (generated messageIds aside).
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
	f.Fuzz(func(t *testing.T, body []byte, route string) {
		var p, ref payload
		var err, refErr error
		switch {
		case route == "":
			p, err = decodeBatch(body, s.shape, new(event.Batch))
			ref, refErr = decodeBatchStrict(body)
		case route == "pixel":
			p, err = decodeQueryEvent(string(body))
			ref, refErr = p, err
		case strings.Contains(strings.Join(event.Types, " "), route) && !strings.Contains(route, " "):
			p, err = decodeSingle(body, route, s.shape)
			ref, refErr = decodeSingleStrict(body, route)
		default:
			return
		}
		if (err == nil) != (refErr == nil) || err != nil && err.Error() != refErr.Error() {
			t.Fatalf("error %v, reference %v", err, refErr)
		}
		if err != nil {
			return
		}
		if p.WriteKey != ref.WriteKey || !p.SentAt.Equal(ref.SentAt) || !bytes.Equal(p.Context, ref.Context) || p.Type != ref.Type || len(p.Events) != len(ref.Events) {
			t.Fatalf("payload %+v, reference %+v", p, ref)
		}
		got, gotErr := accept(t, s, p)
		want, wantErr := accept(t, s, ref)
		if gotErr != wantErr {
			t.Fatalf("request error %q, reference %q", gotErr, wantErr)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("event %d: %s\nreference: %s", i, got[i], want[i])
			}
		}
	})
}

// accept runs a payload's events through store's steps and checks each
// accepted envelope. It returns, per event, the record or the rejection
// as text (generated messageIds blanked), or the error refusing the
// request whole.
func accept(t *testing.T, s *Server, p payload) ([]string, string) {
	if len(p.Context) > s.cfg.HTTP.MaxEventBytes {
		return nil, "too large"
	}
	if err := s.shape.Check(p.Context); err != nil {
		return nil, err.Error()
	}
	batchCtx, err := parseBatchContext(p.Context)
	if err != nil {
		return nil, err.Error()
	}
	src := s.sources[0]
	receivedAt := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	req := httptest.NewRequest("POST", "/v1/batch", nil)
	rb := new(recordBuilder)
	rb.reset(s, p, src, receivedAt, s.signals(req))
	var out []string
	for i := range p.Events {
		rec, reason, err := s.record(i, p, batchCtx, rb)
		if err != nil {
			if reason == "" {
				t.Fatalf("event %d rejected without a reason: %v", i, err)
			}
			out = append(out, reason+": "+err.Error())
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
		out = append(out, recordText(rec, env))
	}
	return out, ""
}

// recordText is a record as text, with a messageId the collector generated
// blanked: it differs on every call.
func recordText(rec *kgo.Record, env event.Envelope) string {
	value := string(rec.Value)
	if len(env.MessageID) == 36 && env.MessageID[14] == '4' {
		value = strings.ReplaceAll(value, env.MessageID, "<generated>")
	}
	return string(rec.Key) + " " + value
}
