package enricher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

var surnames = []string{"wang", "li", "zhang", "liu", "chen", "yang", "zhao", "huang"}

// subject is one person (benchkit.NewPerson) with the e-mail address its
// events' properties carry, for the enricher to scrub.
type subject struct {
	benchkit.Person
	email   string
	context json.RawMessage // rendered once
}

// eventGen makes a run's consent states and raw envelopes. Each subject's
// context is rendered once; an envelope costs a small properties object
// and event.Envelope.AppendJSON, the collector's own encoder.
type eventGen struct {
	runID    string
	now      time.Time
	subjects []subject
}

func newEventGen(runID string, n int, now time.Time) *eventGen {
	g := &eventGen{runID: runID, now: now, subjects: make([]subject, n)}
	for i := range g.subjects {
		g.subjects[i] = newSubject(i)
	}
	return g
}

func newSubject(i int) subject {
	s := subject{Person: benchkit.NewPerson(i),
		email: fmt.Sprintf("%s.%d@%s", surnames[i%len(surnames)], 1000+i, []string{"qq.com", "163.com", "gmail.com"}[i%3])}
	s.context, _ = json.Marshal(s.SDKContext()) // maps of strings and ints always encode
	return s
}

// consentRecord is subject i's consent state, recorded under its
// anonymousId (which also covers its signed-in events) an hour before the
// events: analytics, and for every third subject cross-border transfer.
func (g *eventGen) consentRecord(i int, topic string) (*kgo.Record, error) {
	s := &g.subjects[i]
	u := event.ConsentUpdate{AnonymousID: s.AnonymousID, Purposes: map[string]bool{"analytics": true},
		CrossBorder: i%3 == 0, Timestamp: g.now.Add(-time.Hour).Format(time.RFC3339Nano)}
	st := u.State(g.now.Add(-time.Hour), "web", "cn")
	v, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Key: []byte(st.Subject), Value: v}, nil
}

// envelope is raw event n: a page view or a product event of a random
// subject, wrapped as the collector wraps it.
func (g *eventGen) envelope(n int, r *rand.Rand, buf []byte) (key, value []byte) {
	si := r.IntN(len(g.subjects))
	s := &g.subjects[si]
	p := benchkit.Products[r.IntN(len(benchkit.Products))]
	sku := "sku-" + strconv.Itoa(10000+r.IntN(5000))
	received := g.now.Add(time.Duration(n) * time.Microsecond)
	ev := event.Event{UserID: s.UserID, AnonymousID: s.AnonymousID, MessageID: fmt.Sprintf("eb-%s-%d", g.runID, n),
		Timestamp: received.Add(-120 * time.Millisecond).Format(time.RFC3339Nano), Context: s.context}
	ev.OriginalTimestamp = ev.Timestamp
	var props map[string]any
	switch r.IntN(3) {
	case 0:
		ev.Type, ev.Name = "page", p.Category
		props = map[string]any{"path": "/c/" + p.Category, "title": p.Category + " | Example Shop", "search": "",
			"customer_email": s.email}
	case 1:
		ev.Type, ev.Event = "track", "Product Viewed"
		props = map[string]any{"product_id": sku, "name": p.Name, "category": p.Category,
			"price": float64(1000+r.IntN(90000)) / 100, "currency": "CNY", "customer_email": s.email}
	default:
		ev.Type, ev.Event = "track", "Checkout Started"
		props = map[string]any{"order_id": "o-" + strconv.Itoa(n), "value": float64(1000+r.IntN(90000)) / 100,
			"currency": "CNY", "products": []map[string]any{{"product_id": sku, "quantity": 1 + r.IntN(3)}},
			"note": "send the invoice to " + s.email}
	}
	ev.Properties, _ = json.Marshal(props)
	env := event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: ev.MessageID, ReceivedAt: received,
		SourceID: "web", Region: "cn", Signals: event.Signals{IP: s.IP, UserAgent: s.Browser.UA}, Event: ev}
	return []byte(ev.PartitionKey()), env.AppendJSON(buf)
}

// sample is n envelopes like the run's, from a random source of their own.
func (g *eventGen) sample(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		_, out[i] = g.envelope(i, r, nil)
	}
	return out
}

// newProducer returns a fast franz-go producer for setting up the topics: lz4 and
// a short linger, like a busy collector's batches.
func newProducer(brokers []string) (*kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("enricherbench-setup"),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(20000))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// firstError keeps the first error of a producer's promises.
type firstError struct {
	once sync.Once
	err  error
}

func (f *firstError) promise(_ *kgo.Record, err error) {
	if err != nil {
		f.once.Do(func() { f.err = err })
	}
}

func produceConsent(ctx context.Context, brokers []string, topic string, g *eventGen) error {
	cl, err := newProducer(brokers)
	if err != nil {
		return err
	}
	defer cl.Close()
	var fe firstError
	for i := range g.subjects {
		rec, err := g.consentRecord(i, topic)
		if err != nil {
			return err
		}
		cl.Produce(ctx, rec, fe.promise)
	}
	if err := errors.Join(cl.Flush(ctx), fe.err); err != nil {
		return fmt.Errorf("produce consent: %w", err)
	}
	return nil
}

// produceEvents writes n envelopes to topic and returns their total size.
func produceEvents(ctx context.Context, brokers []string, topic string, g *eventGen, n int) (int64, error) {
	cl, err := newProducer(brokers)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var fe firstError
	var total int64
	r := rand.New(rand.NewPCG(42, 7))
	for i := range n {
		key, value := g.envelope(i, r, make([]byte, 0, 1536))
		total += int64(len(value))
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: value}, fe.promise)
	}
	if err := errors.Join(cl.Flush(ctx), fe.err); err != nil {
		return 0, fmt.Errorf("produce events: %w", err)
	}
	return total, nil
}
