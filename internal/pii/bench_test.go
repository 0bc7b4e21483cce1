package pii

import (
	"fmt"
	"testing"
)

// benchNoPI is what most free-form event strings are: product names,
// SKUs, prices as text, URLs, titles, versions, dates, ids.
var benchNoPI = []string{
	"Trail Runner", "Men's Trail Runner 2 — Size 42", "Example Shop | Spring Sale 2026", "Product Viewed",
	"sku-12345", "SKU-0012345-XL", "shoes", "CNY", "459.5", "¥459.50", "$1,299.00", "Qty: 3 x 12.99 = 38.97",
	"https://shop.example.cn/?utm_source=wechat&utm_medium=social", "https://www.baidu.com/s?wd=trail+shoes",
	"https://www.example.com/products/trail-runner-2?variant=42&ref=home#reviews", "/collections/summer-2026/page/3",
	"spring-sale", "wechat", "social", "zh-CN", "Asia/Shanghai", "iOS", "17.4", "5.2.1", "analytics.js", "iPhone15,2",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"2026-12-07", "2026-12-07T10:30:00.123Z", "10:30", "ord-202603140001", "user-0012345", "eb-1795902968-27107-123456",
	"a1b2c3d", "#a4b3c2", "Free shipping on orders over ¥199", "加入购物车", "限时特惠 满300减50", "Checkout Started",
	"order_completed", "1795902968123", "page 3 of 12",
}

// benchPI are the few strings that hold PI.
var benchPI = []string{
	"contact me at buyer@example.com", "call me on 138 0013 8000", "+44 20 7946 0958",
	"wang.1000@qq.com", "13800138000",
}

// benchMix is the realistic mix: mostly no PI, a few strings with.
var benchMix = append(append([]string{}, benchNoPI...), benchPI...)

func BenchmarkScrub(b *testing.B) {
	sc := NewScrubber()
	for _, bc := range []struct {
		name string
		in   []string
	}{{"mix", benchMix}, {"no_pi", benchNoPI}, {"pi", benchPI}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, s := range bc.in {
					sc.Scrub(s)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bc.in)), "ns/string")
		})
		b.Run(bc.name+"_legacy", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, s := range bc.in {
					legacyScrubText(s, legacyPatterns)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bc.in)), "ns/string")
		})
	}
}

func BenchmarkFind(b *testing.B) {
	sc := NewScrubber()
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range benchMix {
			sc.Find(s)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(benchMix)), "ns/string")
}

func BenchmarkKeyKind(b *testing.B) {
	keys := []string{"email", "customer_email", "product_id", "clientIp", "ship_to_city", "price", "utm_source", "latitude",
		"advertisingId", "order_total", "push.token", "page_title"}
	b.ReportAllocs()
	for b.Loop() {
		for _, k := range keys {
			KeyKind(k)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
}

// BenchmarkScrubAdversarial scrubs matches side by side, 1 KB and 32 KB of
// them: ns/byte should not grow with the length (TestScrubWorkIsLinear
// holds the work a test hook counts so; this shows the time).
func BenchmarkScrubAdversarial(b *testing.B) {
	sc := NewScrubber()
	for _, bc := range []struct{ name, unit string }{
		{"nanp", "(415) 555-0132"}, {"location", "31.2304,121.4737-"}, {"email", "leak.用户@example.cn"},
		{"mac", "a483e7123456 "}, {"chain", "415-555-0132+31.2304,121.4737 "},
	} {
		for _, n := range []int{1 << 10, 32 << 10} {
			s := repeatTo(bc.unit, "", n)
			b.Run(fmt.Sprintf("%s/%dKB", bc.name, n>>10), func(b *testing.B) {
				b.SetBytes(int64(len(s)))
				for b.Loop() {
					sc.Scrub(s)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(s)), "ns/byte")
			})
		}
	}
}
