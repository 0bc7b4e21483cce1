package sink

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// cleanGen makes the throughput part's clean events, as the enricher's
// in-region profile writes them. A subject's pseudonyms and context are
// made once; an event costs its properties and the struct.
type cleanGen struct {
	runID    string
	base     time.Time
	span     time.Duration
	subjects []cleanSubject
}

type cleanSubject struct {
	subject, user, anon, device, adID string
	ip                                string
	purposes                          []string
	browser                           *benchkit.Browser
	context                           json.RawMessage
}

func newCleanGen(runID string, subjects int) (*cleanGen, error) {
	// A fixed bench key: the pseudonyms look like the enricher's, "k1." and
	// 32 hex digits.
	ps, err := policy.NewPseudonymizer("k1", []byte("sinkbench-pseudonym-key-0123456789abcdef"))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	g := &cleanGen{runID: runID, base: now.Add(-time.Hour), span: time.Hour, subjects: make([]cleanSubject, subjects)}
	for i := range g.subjects {
		p := benchkit.NewPerson(i)
		s := cleanSubject{
			user: ps.Pseudonym(policy.KindUser, p.UserID), anon: ps.Pseudonym(policy.KindAnonymous, p.AnonymousID),
			device: ps.Pseudonym(policy.KindDevice, p.DeviceID), adID: ps.Pseudonym(policy.KindAdvertising, p.AdID),
			ip: p.IP[:strings.LastIndexByte(p.IP, '.')] + ".0", browser: p.Browser, // truncated to /24
			purposes: []string{"analytics"},
		}
		s.subject = s.user
		if s.subject == "" {
			s.subject = s.anon
		}
		if i%4 == 0 {
			s.purposes = []string{"analytics", "personalization"}
		}
		// The SDK's context as the enricher leaves it: no IP, user agent or
		// device ids, query strings cut.
		ctx := p.SDKContext()
		delete(ctx, "ip")
		delete(ctx, "userAgent")
		device := ctx["device"].(map[string]any)
		delete(device, "id")
		delete(device, "advertisingId")
		ctx["page"] = map[string]any{"path": "/", "url": "https://shop.example.cn/", "title": "Example Shop",
			"referrer": "https://www.baidu.com/s"}
		if s.context, err = json.Marshal(ctx); err != nil {
			return nil, err
		}
		g.subjects[i] = s
	}
	return g, nil
}

// clean is event n of events: a page view or product event of a
// pseudo-random subject, timed evenly over the last hour.
func (g *cleanGen) clean(n, events int) event.Clean {
	r := rand.New(rand.NewPCG(uint64(n), 0xc1ea))
	s := &g.subjects[r.IntN(len(g.subjects))]
	b := s.browser
	ts := g.base.Add(time.Duration(int64(g.span) * int64(n) / int64(max(events, 1))))
	c := event.Clean{
		SchemaVersion: event.SchemaVersion,
		MessageID:     fmt.Sprintf("%s-%08x-%04x-%012x", g.runID, n, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff),
		Timestamp:     ts, ReceivedAt: ts.Add(150 * time.Millisecond),
		SourceID: "demo", Region: "cn", Purposes: s.purposes,
		Subject: s.subject, UserID: s.user, AnonymousID: s.anon, DeviceID: s.device, AdvertisingID: s.adID,
		Country: "CN", IP: s.ip,
		Browser: b.Name, BrowserVersion: b.Version, OS: b.OS, OSVersion: b.OSVersion, DeviceClass: b.Class,
		Context: s.context,
	}
	if r.IntN(3) == 0 {
		p := benchkit.Products[r.IntN(len(benchkit.Products))]
		id := r.IntN(5000)
		c.Type, c.Event = "track", []string{"Product Viewed", "Product Added", "Product Viewed"}[r.IntN(3)]
		c.Properties = fmt.Appendf(nil, `{"product_id":"p-%04d","sku":"SKU-%04d-M","name":%q,"category":%q,"price":%d.%02d,"currency":"CNY","quantity":%d,"run":%q}`,
			id, id, p.Name, p.Category, 50+r.IntN(900), r.IntN(100), 1+r.IntN(3), g.runID)
	} else {
		pg := benchkit.Pages[r.IntN(len(benchkit.Pages))]
		path := pg.Path
		if pg.Name == "Product" {
			path += strconv.Itoa(r.IntN(5000))
		}
		c.Type, c.Event = "page", pg.Name
		c.Properties = fmt.Appendf(nil, `{"path":%q,"url":"https://shop.example.cn%s","title":"%s - Example Shop","referrer":"https://shop.example.cn/","run":%q}`,
			path, path, pg.Name, g.runID)
	}
	return c
}

// segGen makes the freshness part's Segment events, as an SDK posts them
// to /v1/batch.
type segGen struct {
	runID string
	*benchkit.Population
}

func newSegGen(runID string, subjects int) (*segGen, error) {
	pop, err := benchkit.NewPopulation(subjects, nil)
	if err != nil {
		return nil, err
	}
	return &segGen{runID: runID, Population: pop}, nil
}

// consent is subject i's consent update: analytics, and for every third
// subject cross-border transfer, as of a minute ago.
func (g *segGen) consent(i int) []byte { return g.Consent(i, i%3 == 0, false) }

// messageID is event seq's id; the phase tag keeps warm-up and measured
// events apart.
func (g *segGen) messageID(phase string, seq int) string {
	return fmt.Sprintf("%s-%s-%09d", g.runID, phase, seq)
}

// body is a /v1/batch request of the events first..first+n-1.
func (g *segGen) body(phase string, first, n int, now time.Time) []byte {
	ts := now.UTC().Format(time.RFC3339Nano)
	return benchkit.BatchBody(now, n, 900, func(b []byte, k int) []byte {
		seq := first + k
		r := rand.New(rand.NewPCG(uint64(seq), 0x5e9))
		i := r.IntN(len(g.People))
		p := &g.People[i]
		if r.IntN(3) == 0 {
			b = benchkit.AppendProductViewed(b, r, g.runID)
		} else {
			b = benchkit.AppendPageView(b, r, g.runID)
		}
		b = fmt.Appendf(b, `,"messageId":%q,"anonymousId":%q`, g.messageID(phase, seq), p.AnonymousID)
		if p.UserID != "" {
			b = fmt.Appendf(b, `,"userId":%q`, p.UserID)
		}
		return g.AppendEnd(b, i, ts)
	})
}
