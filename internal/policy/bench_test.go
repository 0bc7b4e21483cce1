package policy_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// benchRecord is a raw record as the collector writes it for a browser
// SDK's track event: what BenchmarkParseRaw and BenchmarkDeidentify run on.
func benchRecord() []byte {
	at := time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC)
	ctx := `{"campaign":{"medium":"social","name":"spring-sale","source":"wechat"},"device":{"advertisingId":"ad-0c8f1b7e-3d2a","id":"dev-5f3e9a1c-77b4",` +
		`"manufacturer":"Apple","model":"iPhone15,2","type":"ios"},"ip":"1.2.4.8","library":{"name":"analytics.js","version":"5.2.1"},"locale":"zh-CN",` +
		`"os":{"name":"iOS","version":"17.4"},"page":{"path":"/","referrer":"https://www.baidu.com/s?wd=trail+shoes","title":"Example Shop",` +
		`"url":"https://shop.example.cn/?utm_source=wechat&utm_medium=social"},"screen":{"density":3,"height":844,"width":390},"timezone":"Asia/Shanghai",` +
		`"userAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"}`
	env := event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: "eb-1795902968-27107-123456", ReceivedAt: at, SourceID: "web", Region: "cn",
		Signals: event.Signals{IP: "1.2.4.8", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"},
		Event: event.Event{Type: "track", Event: "Product Viewed", UserID: "user-0012345", AnonymousID: "anon-8c1f2e3d-4b5a-6978-8a9b-0c1d2e3f4a5b",
			Timestamp: at.Add(-120 * time.Millisecond).Format(time.RFC3339Nano), OriginalTimestamp: at.Add(-120 * time.Millisecond).Format(time.RFC3339Nano),
			MessageID: "eb-1795902968-27107-123456", Context: json.RawMessage(ctx),
			Properties: json.RawMessage(`{"category":"shoes","currency":"CNY","customer_email":"wang.1000@qq.com","name":"Trail Runner","price":459.5,"product_id":"sku-12345"}`)}}
	return env.AppendJSON(nil)
}

func BenchmarkParseRaw(b *testing.B) {
	raw := benchRecord()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := policy.ParseRaw(raw); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkDeidentify(b *testing.B) {
	in, ok := policy.ParseRaw(benchRecord())
	if !ok {
		b.Fatal("refused")
	}
	clean := newTestProfile(b, inRegionSettings)
	d := policy.Decision{Purposes: policy.Analytics, Export: true}
	b.Run("in_region", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, _ := clean.Deidentify(in, d)
			_ = c.AppendJSON(make([]byte, 0, c.SizeHint()))
		}
	})
	_, exports := goldenProfiles(b)
	b.Run("export", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := policy.Export(in, d, exports["intl"]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
