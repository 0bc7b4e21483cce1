package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// Placeholders in a pre-rendered event, replaced per event. They are plain
// ASCII so json.Marshal leaves them as they are.
const (
	msgIDMark = "@@MESSAGE_ID@@"
	tsMark    = "@@TIMESTAMP@@"
)

// subjects is how many distinct users the events come from: enough to spread
// keys over every partition, few enough to pre-render cheaply.
const subjects = 1000

// eventGen makes Segment track events. Each subject's event is rendered once
// with encoding/json and only messageId and timestamp are spliced in per
// event, so generating a batch costs microseconds and the load generator
// does not compete with the collector for the machine's two cores more than
// it must.
type eventGen struct {
	runID     string
	seq       atomic.Uint64
	templates []eventTemplate
}

// eventTemplate is one subject's event split around the two placeholders:
// head + messageId + mid + timestamp + tail.
type eventTemplate struct {
	anonymousID     []byte
	head, mid, tail []byte
}

func newEventGen(runID string) (*eventGen, error) {
	g := &eventGen{runID: runID, templates: make([]eventTemplate, subjects)}
	for i := range g.templates {
		t, err := renderTemplate(i)
		if err != nil {
			return nil, err
		}
		g.templates[i] = t
	}
	return g, nil
}

// trackEvent has the fields of a Segment track call from a mobile browser, in
// the order the SDKs send them.
type trackEvent struct {
	Type        string         `json:"type"`
	Event       string         `json:"event"`
	UserID      string         `json:"userId"`
	AnonymousID string         `json:"anonymousId"`
	MessageID   string         `json:"messageId"`
	Timestamp   string         `json:"timestamp"`
	Context     map[string]any `json:"context"`
	Properties  map[string]any `json:"properties"`
}

func renderTemplate(subject int) (eventTemplate, error) {
	anon := fmt.Sprintf("anon-5f2c9a1e-%08d", subject)
	p := benchkit.Products[subject%len(benchkit.Products)]
	sku := fmt.Sprintf("sku-%05d", subject*7%10000)
	ev := trackEvent{
		Type:        "track",
		Event:       "Product Viewed",
		UserID:      fmt.Sprintf("user-%08d", subject),
		AnonymousID: anon,
		MessageID:   msgIDMark,
		Timestamp:   tsMark,
		Context: map[string]any{
			"ip":        fmt.Sprintf("198.51.100.%d", subject%250+1),
			"library":   map[string]any{"name": "analytics.js", "version": "5.2.1"},
			"device":    map[string]any{"id": fmt.Sprintf("device-%08d", subject), "model": "Pixel 9"},
			"os":        map[string]any{"name": "Android", "version": "15"},
			"locale":    "zh-CN",
			"timezone":  "Asia/Shanghai",
			"userAgent": "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
			"page":      map[string]any{"path": "/products/" + sku, "url": "https://shop.example.com/products/" + sku, "title": p.Name},
		},
		Properties: map[string]any{
			"product_id": sku, "name": p.Name, "category": p.Category,
			"price": float64(1000+subject*37%9000) / 100, "currency": "CNY", "quantity": 1,
		},
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return eventTemplate{}, err
	}
	head, rest, ok1 := bytes.Cut(b, []byte(msgIDMark))
	mid, tail, ok2 := bytes.Cut(rest, []byte(tsMark))
	if !ok1 || !ok2 {
		return eventTemplate{}, fmt.Errorf("event template lost its placeholders: %s", b)
	}
	return eventTemplate{anonymousID: []byte(anon), head: head, mid: mid, tail: tail}, nil
}

// appendEvent appends one event with a unique messageId to buf and returns
// it with the event's anonymousId (the Kafka key the collector uses too).
func (g *eventGen) appendEvent(buf []byte) ([]byte, []byte) {
	seq := g.seq.Add(1)
	t := &g.templates[seq%subjects]
	buf = append(buf, t.head...)
	buf = append(buf, "ib-"...)
	buf = append(buf, g.runID...)
	buf = append(buf, '-')
	buf = strconv.AppendUint(buf, seq, 10)
	buf = append(buf, t.mid...)
	buf = time.Now().UTC().AppendFormat(buf, "2006-01-02T15:04:05.000Z")
	buf = append(buf, t.tail...)
	return buf, t.anonymousID
}

// batchBody is a /v1/batch request body with n events.
func (g *eventGen) batchBody(n int) []byte {
	buf := make([]byte, 0, n*800+16)
	buf = append(buf, `{"batch":[`...)
	for i := range n {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf, _ = g.appendEvent(buf)
	}
	return append(buf, "]}"...)
}

// eventSize is the length of one generated event, for the report.
func (g *eventGen) eventSize() int {
	b, _ := g.appendEvent(nil)
	return len(b)
}
