package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// samplesPerSecond is about how many events a second the bench follows to
// ClickHouse for freshness: enough for a p99 per step, few enough that
// looking them up costs ClickHouse little.
const samplesPerSecond = 100

// population is the run's subjects: benchkit's people (half signed in),
// a third of them with cross-border consent.
type population struct {
	runID    string
	people   []benchkit.Person
	contexts []json.RawMessage // per subject, rendered once
}

func newPopulation(runID string, n int) (*population, error) {
	p := &population{runID: runID, people: make([]benchkit.Person, n), contexts: make([]json.RawMessage, n)}
	for i := range p.people {
		p.people[i] = benchkit.NewPerson(i)
		var err error
		if p.contexts[i], err = json.Marshal(p.people[i].SDKContext()); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// crossBorder says whether subject i consents to transfer abroad: a third.
func crossBorder(i int) bool { return i%3 == 0 }

// consent is subject i's consent update, as of a minute ago.
func (p *population) consent(i int) []byte {
	s := &p.people[i]
	b, _ := json.Marshal(event.ConsentUpdate{UserID: s.UserID, AnonymousID: s.AnonymousID, Purposes: map[string]bool{"analytics": true},
		CrossBorder: crossBorder(i), Timestamp: time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)})
	return b
}

// grantConsent posts each subject's consent to /v1/consent, 16 at a time.
func grantConsent(ctx context.Context, client *http.Client, baseURL, writeKey string, pop *population) error {
	return benchkit.Parallel(ctx, len(pop.people), 16, func(i int) error {
		if err := post(ctx, client, baseURL+"/v1/consent", writeKey, pop.consent(i)); err != nil {
			return fmt.Errorf("consent: %w", err)
		}
		return nil
	})
}

// body is the /v1/batch request of events first..first+n-1, each of a
// pseudo-random subject: one in ten an identify, 30% product views, 5%
// checkouts, the rest page views, as a shop's analytics.js sends them.
// The first event is never an identify, so it can be followed.
func (p *population) body(first, n int, now time.Time) []byte {
	ts := now.UTC().Format(time.RFC3339Nano)
	b := make([]byte, 0, n*1100)
	b = append(b, `{"sentAt":"`...)
	b = append(b, ts...)
	b = append(b, `","batch":[`...)
	for k := range n {
		seq := first + k
		r := rand.New(rand.NewPCG(uint64(seq), 0x91be))
		i := r.IntN(len(p.people))
		s := &p.people[i]
		if k > 0 {
			b = append(b, ',')
		}
		kind := r.IntN(100)
		if k == 0 && kind < 10 {
			kind += 10
		}
		switch {
		case kind < 10:
			b = fmt.Appendf(b, `{"type":"identify","traits":{"plan":%q}`, []string{"free", "pro", "enterprise"}[r.IntN(3)])
		case kind < 40:
			pr := benchkit.Products[r.IntN(len(benchkit.Products))]
			id := r.IntN(5000)
			b = fmt.Appendf(b, `{"type":"track","event":"Product Viewed","properties":{"product_id":"p-%04d","sku":"SKU-%04d-M","name":%q,"category":%q,"price":%d.%02d,"currency":"CNY","run":%q}`,
				id, id, pr.Name, pr.Category, 50+r.IntN(900), r.IntN(100), p.runID)
		case kind < 45:
			id := r.IntN(5000)
			b = fmt.Appendf(b, `{"type":"track","event":"Checkout Started","properties":{"order_id":"o-%09d","value":%d.%02d,"currency":"CNY","products":[{"product_id":"p-%04d","quantity":%d}]}`,
				seq, 50+r.IntN(900), r.IntN(100), id, 1+r.IntN(3))
		default:
			pg := benchkit.Pages[r.IntN(len(benchkit.Pages))]
			b = fmt.Appendf(b, `{"type":"page","name":%q,"properties":{"path":%q,"title":"%s - Example Shop","run":%q}`,
				pg.Name, pg.Path, pg.Name, p.runID)
		}
		b = fmt.Appendf(b, `,"messageId":"%s","anonymousId":%q`, messageID(p.runID, seq), s.AnonymousID)
		if s.UserID != "" {
			b = fmt.Appendf(b, `,"userId":%q`, s.UserID)
		}
		b = append(b, `,"timestamp":"`...)
		b = append(b, ts...)
		b = append(b, `","context":`...)
		b = append(b, p.contexts[i]...)
		b = append(b, '}')
	}
	return append(b, ']', '}')
}

// messageID is event seq's id: letters, digits and '-', safe to quote
// into a query.
func messageID(runID string, seq int) string { return fmt.Sprintf("%s-%010d", runID, seq) }

// loadStats describe one step's load.
type loadStats struct {
	offered          int // events/s asked
	requests, failed int
	firstErr         error
	sent, accepted   int64 // events
	elapsed          time.Duration
	maxLate          time.Duration // how far behind schedule a request started, at most
	samples          int
}

// loader posts the steps' load; seq numbers the events across steps.
type loader struct {
	client  *http.Client
	baseURL string
	o       options
	pop     *population
	tr      *tracker
	seq     atomic.Int64
}

// run posts batches of o.batch events at rate events/s from o.senders
// clients for d: an open loop, each request due at its time whatever
// became of the ones before (up to a queue of two requests per sender;
// past that the schedule slips, and fewer events are sent than offered).
// About samplesPerSecond requests a second have their first event followed
// (tr) under step.
func (l *loader) run(ctx context.Context, step, rate int, d time.Duration) loadStats {
	o := l.o
	interval := time.Duration(float64(time.Second) * float64(o.batch) / float64(rate))
	sampleEvery := max(1, rate/o.batch/samplesPerSecond)
	type job struct {
		first  int
		due    time.Time
		sample bool
	}
	jobs := make(chan job, 2*o.senders)
	var mu sync.Mutex
	st := loadStats{offered: rate}
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for range o.senders {
		wg.Go(func() {
			for j := range jobs {
				started := time.Now()
				body := l.pop.body(j.first, o.batch, started)
				id := messageID(l.pop.runID, j.first)
				if j.sample {
					l.tr.add(id, step)
				}
				err := post(ctx, l.client, l.baseURL+"/v1/batch", o.writeKey, body)
				if err == nil {
					accepted.Add(int64(o.batch))
				}
				if j.sample {
					l.tr.ack(id, time.Now(), err == nil)
				}
				mu.Lock()
				st.requests++
				st.maxLate = max(st.maxLate, started.Sub(j.due))
				if err != nil && ctx.Err() == nil {
					st.failed++
					if st.firstErr == nil {
						st.firstErr = err
					}
				}
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	end := start.Add(d)
schedule:
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(end) || time.Now().After(end) {
			break // a slipped schedule is not caught up after the step
		}
		select {
		case <-ctx.Done():
			break schedule
		case <-time.After(time.Until(due)):
		}
		sample := i%sampleEvery == 0
		if sample {
			st.samples++
		}
		select {
		case jobs <- job{first: int(l.seq.Add(int64(o.batch))) - o.batch, due: due, sample: sample}:
			st.sent += int64(o.batch)
		case <-ctx.Done():
			break schedule
		}
	}
	close(jobs)
	wg.Wait()
	st.elapsed = time.Since(start)
	st.accepted = accepted.Load()
	return st
}

// post sends body to url with writeKey as HTTP Basic user and wants a 200.
func post(ctx context.Context, client *http.Client, url, writeKey string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
