package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/testenv"
)

const benchBatch = 100

// BenchmarkIngest compares the collector (HTTP, validation, envelope, and a
// produce acknowledged by Kafka) with a bare franz-go producer sending
// envelopes of the same size, in the same settings, to the same broker, in
// batches of 100. collector/raw is the collector's throughput as a fraction
// of the producer's: read that, since absolute rates drift on a shared
// machine. B/op and allocs/op cover both sides together.
func BenchmarkIngest(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	ctx := testenv.Context(b, 10*time.Minute)
	cfg := testConfig(brokers)
	cfg.HTTP.MaxRequestBytes = 1 << 20
	cfg.HTTP.ProduceTimeout = 10 * time.Second
	cfg.Topics.Raw.Name = testenv.Name(b, "bench.raw")
	cfg.Topics.Consent.Name = testenv.Name(b, "bench.consent")
	testenv.DeleteTopicsAfter(b, brokers, cfg.Topics.Raw.Name, cfg.Topics.Consent.Name)
	s, err := New(cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	events := make([]map[string]any, benchBatch)
	for i := range events {
		events[i] = map[string]any{
			"type": "track", "event": "Product Viewed", "userId": fmt.Sprintf("user-%d", i), "anonymousId": fmt.Sprintf("anon-%d", i),
			"timestamp":  "2026-11-28T10:00:00.000Z",
			"context":    map[string]any{"ip": "203.0.113.9", "device": map[string]any{"id": "device-1", "model": "Pixel 9"}, "locale": "zh-CN"},
			"properties": map[string]any{"sku": "sku-1", "price": 9.5},
		}
	}
	body, _ := json.Marshal(map[string]any{"batch": events})

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(cfg.Topics.Raw.Name),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	// Values the size of the collector's envelopes.
	values := make([][]byte, benchBatch)
	for i := range values {
		values[i], _ = json.Marshal(map[string]any{"schemaVersion": 1, "messageId": "00000000-0000-4000-8000-000000000000",
			"receivedAt": time.Now(), "sourceId": "web", "region": "cn",
			"signals": map[string]any{"dnt": false, "gpc": false, "ip": "127.0.0.1", "userAgent": "Go-http-client/1.1"}, "event": events[i]})
	}
	url := "http://" + s.Addr() + "/v1/batch"
	client := &http.Client{}

	// Each iteration sends one batch each way, alternating, so both see the
	// same broker and machine load; the ratio is the figure to read.
	var raw, collector time.Duration
	for b.Loop() {
		start := time.Now()
		batch := make([]*kgo.Record, benchBatch)
		for i, v := range values {
			batch[i] = &kgo.Record{Key: []byte(fmt.Sprintf("anon-%d", i)), Value: v}
		}
		if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		raw += time.Since(start)

		start = time.Now()
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.SetBasicAuth("web-write-key", "")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // read to the end so the connection is reused
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		collector += time.Since(start)
	}
	sent := float64(b.N * benchBatch)
	b.ReportMetric(sent/raw.Seconds(), "raw_events/s")
	b.ReportMetric(sent/collector.Seconds(), "collector_events/s")
	b.ReportMetric(raw.Seconds()/collector.Seconds(), "collector/raw")
}
