package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// samplesPerSecond is about how many events a second the bench follows to
// ClickHouse for freshness: enough for a p99 per step, few enough that
// looking them up costs ClickHouse little.
const samplesPerSecond = 100

// population is the run's subjects: benchkit's people (half signed in),
// a third of them with cross-border consent.
type population struct {
	runID string
	*benchkit.Population
}

func newPopulation(runID string, n int) (*population, error) {
	pop, err := benchkit.NewPopulation(n, nil)
	if err != nil {
		return nil, err
	}
	return &population{runID: runID, Population: pop}, nil
}

// crossBorder says whether subject i consents to transfer abroad: a third.
func crossBorder(i int) bool { return i%3 == 0 }

// consent is subject i's consent update, as of a minute ago.
func (p *population) consent(i int) []byte { return p.Consent(i, crossBorder(i), true) }

// body is the /v1/batch request of events first..first+n-1, each of a
// pseudo-random subject: one in ten an identify, 30% product views, 5%
// checkouts, the rest page views, as a shop's analytics.js sends them.
// The first event is never an identify, so it can be followed.
func (p *population) body(first, n int, now time.Time) []byte {
	ts := now.UTC().Format(time.RFC3339Nano)
	return benchkit.BatchBody(now, n, 1100, func(b []byte, k int) []byte {
		seq := first + k
		r := rand.New(rand.NewPCG(uint64(seq), 0x91be))
		i := r.IntN(len(p.People))
		s := &p.People[i]
		kind := r.IntN(100)
		if k == 0 && kind < 10 {
			kind += 10
		}
		switch {
		case kind < 10:
			b = fmt.Appendf(b, `{"type":"identify","traits":{"plan":%q}`, []string{"free", "pro", "enterprise"}[r.IntN(3)])
		case kind < 40:
			b = benchkit.AppendProductViewed(b, r, p.runID)
		case kind < 45:
			id := r.IntN(5000)
			b = fmt.Appendf(b, `{"type":"track","event":"Checkout Started","properties":{"order_id":"o-%09d","value":%d.%02d,"currency":"CNY","products":[{"product_id":"p-%04d","quantity":%d}]}`,
				seq, 50+r.IntN(900), r.IntN(100), id, 1+r.IntN(3))
		default:
			b = benchkit.AppendPageView(b, r, p.runID)
		}
		b = fmt.Appendf(b, `,"messageId":"%s","anonymousId":%q`, messageID(p.runID, seq), s.AnonymousID)
		if s.UserID != "" {
			b = fmt.Appendf(b, `,"userId":%q`, s.UserID)
		}
		return p.AppendEnd(b, i, ts)
	})
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
	tr      *benchkit.Tracker
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
					l.tr.Add(step, id)
				}
				err := benchkit.Post(ctx, l.client, l.baseURL+"/v1/batch", o.WriteKey, body)
				if err == nil {
					accepted.Add(int64(o.batch))
				}
				if j.sample {
					l.tr.Ack(time.Now(), err == nil, id)
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
