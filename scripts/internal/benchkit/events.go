package benchkit

import (
	"fmt"
	"math/rand/v2"
)

// Browser is a real user agent of the kind the collector sees in China,
// with the device it comes from and what the enricher's parser makes of it.
type Browser struct {
	UA                  string
	Model, Manufacturer string // empty on desktops
	Kind                string // Segment context.device.type: desktop, ios, android
	Name, Version       string // browser, as the enricher's parser names it
	OS, OSVersion       string
	Class               string // desktop or mobile
}

// Browsers are desktop Chrome and Firefox, iPhone Safari, Android Chrome
// and the WeChat in-app browser.
var Browsers = []Browser{
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"", "", "desktop", "Chrome", "131.0.0", "Windows", "10", "desktop"},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"iPhone", "Apple", "ios", "Mobile Safari", "18.1", "iOS", "18.1", "mobile"},
	{"Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		"Pixel 9", "Google", "android", "Chrome Mobile", "131.0.0", "Android", "15", "mobile"},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
		"", "", "desktop", "Firefox", "133.0", "Mac OS X", "10.15", "desktop"},
	{"Mozilla/5.0 (Linux; Android 14; V2183A Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.103 Mobile Safari/537.36 XWEB/1300289 MMWEBSDK/20241103 MMWEBID/2585 MicroMessenger/8.0.55.2780(0x28003737) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64",
		"V2183A", "vivo", "android", "WeChat", "8.0.55", "Android", "14", "mobile"},
}

// Product is an item of the shop the events are about.
type Product struct{ Name, Category string }

// Products are the shop's catalogue.
var Products = []Product{
	{"Trail Running Shoe", "Shoes"},
	{"Merino Wool Hoodie", "Apparel"},
	{"Insulated Water Bottle 750ml", "Accessories"},
	{"Ultralight Daypack 22L", "Bags"},
	{"Noise Cancelling Earbuds", "Electronics"},
}

// Page is a page of the shop that page views are of.
type Page struct{ Name, Path string }

// Pages are the shop's pages.
var Pages = []Page{
	{"Home", "/"}, {"Search", "/search"}, {"Product", "/products/"}, {"Cart", "/cart"}, {"Checkout", "/checkout"},
}

// Person is one subject: a browser or app install, signed in or not.
type Person struct {
	AnonymousID string // uuid-like
	UserID      string // empty: not signed in (half the subjects)
	DeviceID    string
	AdID        string // advertising id, on phones only
	IP          string // China Mobile and China Telecom ranges
	Browser     *Browser
}

// NewPerson is subject i, the same on every run and in every benchmark.
func NewPerson(i int) Person {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	p := Person{
		AnonymousID: fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, r.Uint32()&0xfff, r.Uint64()&0xffffffffffff),
		DeviceID:    fmt.Sprintf("%016x", r.Uint64()),
		IP:          fmt.Sprintf("%s.%d.%d", []string{"117.136", "223.104", "183.192", "1.2"}[i%4], i/250%250, i%250+1),
		Browser:     &Browsers[i%len(Browsers)],
	}
	if i%2 == 0 {
		p.UserID = fmt.Sprintf("u%010d", 7000000000+i)
	}
	if p.Browser.Model != "" {
		p.AdID = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff)
	}
	return p
}

// SDKContext is p's Segment context as analytics.js sends it: IP and user
// agent, device with its ids, OS, locale, screen, a page reached from a
// search with tracking parameters, campaign. A new map on every call, for
// the caller to change or encode.
func (p Person) SDKContext() map[string]any {
	b := p.Browser
	device := map[string]any{"id": p.DeviceID, "type": b.Kind}
	if b.Model != "" {
		device["model"], device["manufacturer"], device["advertisingId"] = b.Model, b.Manufacturer, p.AdID
	}
	return map[string]any{
		"ip":        p.IP,
		"userAgent": b.UA,
		"library":   map[string]any{"name": "analytics.js", "version": "5.2.1"},
		"device":    device,
		"os":        map[string]any{"name": b.OS, "version": b.OSVersion},
		"locale":    "zh-CN",
		"timezone":  "Asia/Shanghai",
		"screen":    map[string]any{"width": 390, "height": 844, "density": 3},
		"page": map[string]any{"path": "/", "url": "https://shop.example.cn/?utm_source=wechat&utm_medium=social",
			"title": "Example Shop", "referrer": "https://www.baidu.com/s?wd=trail+shoes"},
		"campaign": map[string]any{"name": "spring-sale", "source": "wechat", "medium": "social"},
	}
}
