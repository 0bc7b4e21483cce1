package pipeline

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// BenchmarkProcess measures the enricher's CPU per event without Kafka:
// decoding, consent, both profiles, the gate and encoding, for a batch of
// 1000 realistic events of which a third are exported. Compare runs with
// benchstat; the Kafka-bound figure is make bench-enricher.
func BenchmarkProcess(b *testing.B) {
	cfg := testConfig([]string{"127.0.0.1:1"})
	cfg.Catalogue.File = "../../configs/catalogue.yaml" // the shipped one, which declares most of these events' properties
	p := offlinePipelineWith(b, cfg)
	p.dedup = nil
	const n = 1000
	records := make([]*kgo.Record, n)
	at := time.Now().UTC()
	// A deployment's suppression list is never empty: each event's ids are
	// looked up by their pseudonyms in it.
	p.store.Suppress(consentstore.KindUser, "erased-long-ago", at.Add(-24*time.Hour))
	for i := range n {
		user := fmt.Sprintf("user-%05d", i%300)
		p.store.Apply(consentstore.KindUser, user, at.Add(-time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics, CrossBorder: i%3 == 0})
		env := event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: fmt.Sprintf("m-%d", i), ReceivedAt: at, SourceID: "app", Region: "cn",
			Signals: event.Signals{IP: fmt.Sprintf("1.2.%d.%d", i%250, i%200), UserAgent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"},
			Event: event.Event{Type: "track", Event: "Product Viewed", UserID: user, AnonymousID: "anon-" + user, Timestamp: at.Format(time.RFC3339Nano),
				Context: json.RawMessage(`{"app":{"name":"Shop","version":"4.2.0","build":"4200"},"device":{"id":"dev-` + user + `","advertisingId":"ad-` + user +
					`","model":"Pixel 8","manufacturer":"Google","type":"android"},"os":{"name":"Android","version":"14"},"locale":"zh-CN","timezone":"Asia/Shanghai",` +
					`"network":{"wifi":true,"carrier":"China Mobile"},"screen":{"width":1080,"height":2400},"library":{"name":"analytics-android","version":"4.11.0"},` +
					`"page":{"path":"/p/123","url":"https://shop.example/p/123?ref=mail","title":"Phone"}}`),
				Properties: json.RawMessage(`{"sku":"sku-123","price":19.99,"currency":"CNY","category":"phones","note":"contact me at buyer@example.com","quantity":1}`)}}
		v, _ := json.Marshal(env)
		records[i] = &kgo.Record{Topic: "raw", Value: v}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out, _, t := p.process(records)
		if t.clean != n || len(out) < n {
			b.Fatalf("kept %d of %d", t.clean, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/event")
}
