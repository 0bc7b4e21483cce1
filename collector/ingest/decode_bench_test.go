package ingest

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkDecodeBatch measures the collector's CPU per event before Kafka:
// batch decoding, validation, clock correction and the envelope, for a
// batch of 20 realistic events. No broker needed.
func BenchmarkDecodeBatch(b *testing.B) {
	s, err := New(testConfig([]string{"127.0.0.1:1"}), prometheus.NewRegistry(), quiet)
	if err != nil {
		b.Fatal(err)
	}
	var events []string
	for i := range 20 {
		events = append(events, fmt.Sprintf(`{"type":"track","event":"Product Viewed","userId":"user-%d","anonymousId":"anon-%d",`+
			`"messageId":"m-%d","timestamp":"2026-11-28T10:00:00.000Z","context":{"ip":"203.0.113.9","library":{"name":"analytics.js","version":"4.1.0"},`+
			`"device":{"id":"device-%d","model":"Pixel 9","type":"android"},"locale":"zh-CN","os":{"name":"Android","version":"15"}},`+
			`"properties":{"sku":"sku-%d","price":9.5,"currency":"CNY","category":"shoes","quantity":1}}`, i, i, i, i, i))
	}
	body := []byte(`{"sentAt":"2026-11-28T10:00:01.000Z","batch":[` + strings.Join(events, ",") + `]}`)
	req := httptest.NewRequest("POST", "/v1/batch", nil)
	now := time.Now()
	// Memory reused from request to request, as the server does.
	sc := new(scratch)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := decodeBatch(body, s.shape, &sc.batch)
		if err != nil {
			b.Fatal(err)
		}
		rb := &sc.rb
		rb.reset(s, p, s.sources[0], now, s.signals(req))
		for i := range p.Events {
			if _, _, err := s.record(i, p, nil, rb); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events))/1000, "µs/event")
}
