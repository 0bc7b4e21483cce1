package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// population is the run's subjects: each signed in (a userId) on one
// device (an anonymousId), with consent to analytics and cross-border
// transfer, so their events reach both destinations.
type population struct {
	runID    string
	people   []benchkit.Person
	contexts []json.RawMessage // per subject, rendered once
	sent     []atomic.Bool     // an event of the subject was accepted (200)
}

func newPopulation(runID string, n int) (*population, error) {
	p := &population{runID: runID, people: make([]benchkit.Person, n), contexts: make([]json.RawMessage, n), sent: make([]atomic.Bool, n)}
	for i := range p.people {
		// benchkit's even subjects are the signed-in ones.
		p.people[i] = benchkit.NewPerson(2 * i)
		var err error
		if p.contexts[i], err = json.Marshal(p.people[i].SDKContext()); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// consent is subject i's consent update: analytics and cross-border, as of
// a minute ago (before any of its events).
func (p *population) consent(i int) []byte {
	s := &p.people[i]
	b, _ := json.Marshal(event.ConsentUpdate{UserID: s.UserID, AnonymousID: s.AnonymousID, Purposes: map[string]bool{"analytics": true},
		CrossBorder: true, Timestamp: time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)})
	return b
}

// body is the /v1/batch request of events first..first+n-1, each of a
// pseudo-random subject, and the subjects it is about.
func (p *population) body(first, n int, now time.Time, who []int) ([]byte, []int) {
	ts := now.UTC().Format(time.RFC3339Nano)
	b := make([]byte, 0, n*1000)
	b = append(b, `{"sentAt":"`...)
	b = append(b, ts...)
	b = append(b, `","batch":[`...)
	who = who[:0]
	for k := range n {
		seq := first + k
		r := rand.New(rand.NewPCG(uint64(seq), 0xe7a5e))
		i := r.IntN(len(p.people))
		who = append(who, i)
		s := &p.people[i]
		if k > 0 {
			b = append(b, ',')
		}
		switch r.IntN(20) {
		case 0: // signs in: links the device to the user
			b = append(b, `{"type":"identify"`...)
		case 1, 2, 3, 4, 5, 6:
			pr := benchkit.Products[r.IntN(len(benchkit.Products))]
			id := r.IntN(5000)
			b = fmt.Appendf(b, `{"type":"track","event":"Product Viewed","properties":{"product_id":"p-%04d","sku":"SKU-%04d-M","name":%q,"category":%q,"price":%d.%02d,"currency":"CNY","run":%q}`,
				id, id, pr.Name, pr.Category, 50+r.IntN(900), r.IntN(100), p.runID)
		default:
			pg := benchkit.Pages[r.IntN(len(benchkit.Pages))]
			b = fmt.Appendf(b, `{"type":"page","name":%q,"properties":{"path":%q,"title":"%s - Example Shop","run":%q}`,
				pg.Name, pg.Path, pg.Name, p.runID)
		}
		b = fmt.Appendf(b, `,"messageId":"%s-%09d","anonymousId":%q,"userId":%q,"timestamp":"`, p.runID, seq, s.AnonymousID, s.UserID)
		b = append(b, ts...)
		b = append(b, `","context":`...)
		b = append(b, p.contexts[i]...)
		b = append(b, '}')
	}
	return append(b, ']', '}'), who
}

// grantConsent posts each subject's consent to /v1/consent, 16 at a time.
func grantConsent(ctx context.Context, client *http.Client, baseURL, writeKey string, pop *population) error {
	return benchkit.Parallel(ctx, len(pop.people), 16, func(i int) error {
		if _, err := post(ctx, client, baseURL+"/v1/consent", "", writeKey, pop.consent(i), http.StatusOK); err != nil {
			return fmt.Errorf("consent: %w", err)
		}
		return nil
	})
}

// loadStats describe the event load.
type loadStats struct {
	requests, failed int
	firstErr         error
	events           int64 // accepted
	elapsed          time.Duration
	maxLate          time.Duration // how far behind schedule a request started, at most
	late             int           // requests started more than 100 ms behind schedule
}

func (l loadStats) eventsPerSec() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.events) / l.elapsed.Seconds()
}

// load posts batches of o.batch events at o.rate events/s from o.senders
// clients until stopped: an open loop, each request due at its time
// whatever became of the ones before (up to a queue of two requests per
// sender; past that the schedule slips, which maxLate shows).
type load struct {
	accepted atomic.Int64
	stopCh   chan struct{}
	done     chan loadStats
}

func startLoad(ctx context.Context, client *http.Client, baseURL string, o options, pop *population) *load {
	l := &load{stopCh: make(chan struct{}), done: make(chan loadStats, 1)}
	interval := time.Duration(float64(time.Second) * float64(o.batch) / float64(o.rate))
	type job struct {
		first int
		due   time.Time
	}
	jobs := make(chan job, 2*o.senders)
	var mu sync.Mutex
	var st loadStats
	var wg sync.WaitGroup
	for range o.senders {
		wg.Go(func() {
			var who []int
			for j := range jobs {
				started := time.Now()
				var body []byte
				body, who = pop.body(j.first, o.batch, started, who)
				_, err := post(ctx, client, baseURL+"/v1/batch", "", o.writeKey, body, http.StatusOK)
				if err == nil {
					for _, i := range who {
						pop.sent[i].Store(true)
					}
					l.accepted.Add(int64(o.batch))
				}
				mu.Lock()
				st.requests++
				late := started.Sub(j.due)
				st.maxLate = max(st.maxLate, late)
				if late > 100*time.Millisecond {
					st.late++
				}
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
	go func() {
		start := time.Now()
	schedule:
		for i := 0; ; i++ {
			due := start.Add(time.Duration(i) * interval)
			select {
			case <-ctx.Done():
				break schedule
			case <-l.stopCh:
				break schedule
			case <-time.After(time.Until(due)):
			}
			select {
			case jobs <- job{first: i * o.batch, due: due}:
			case <-ctx.Done():
				break schedule
			case <-l.stopCh:
				break schedule
			}
		}
		close(jobs)
		wg.Wait()
		st.elapsed = time.Since(start)
		st.events = l.accepted.Load()
		l.done <- st
	}()
	return l
}

// stop ends the load after the requests under way and returns its figures.
func (l *load) stop() loadStats {
	close(l.stopCh)
	return <-l.done
}

// erasure is one erasure request the bench made.
type erasure struct {
	subject   int
	id        string // requestId of the 202
	due, sent time.Time
	accepted  time.Time // when the 202 came
	attempts  int
	err       error
}

// eraseAll posts o.erasures erasure requests (by userId) to the
// collector's privacy API, due evenly over o.spread, 8 at a time at most.
// Each is of the next subject in a shuffled order that has had an event
// accepted. A 503 (Kafka did not acknowledge) is retried after its
// Retry-After, as the API asks, up to 3 attempts in all.
func eraseAll(ctx context.Context, client *http.Client, privacyURL, token string, o options, pop *population, runSeed uint64) ([]*erasure, int, error) {
	order := rand.New(rand.NewPCG(runSeed, 0xe2a5e)).Perm(len(pop.people))
	interval := o.spread / time.Duration(o.erasures)
	jobs := make(chan *erasure, 64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for e := range jobs {
				body, _ := json.Marshal(map[string]string{"userId": pop.people[e.subject].UserID, "reason": event.ErasureReasons[e.subject%len(event.ErasureReasons)]})
				e.sent = time.Now()
				for e.attempts = 1; ; e.attempts++ {
					var resp []byte
					resp, e.err = post(ctx, client, privacyURL+"/v1/privacy/erasures", token, "", body, http.StatusAccepted)
					if e.err == nil {
						e.accepted = time.Now()
						var a struct {
							RequestID string `json:"requestId"`
						}
						if err := json.Unmarshal(resp, &a); err != nil || a.RequestID == "" {
							e.err = fmt.Errorf("202 without a requestId: %q", resp)
						}
						e.id = a.RequestID
						break
					}
					var se *statusError
					if e.attempts == 3 || ctx.Err() != nil || !errors.As(e.err, &se) || se.code != http.StatusServiceUnavailable {
						break
					}
					time.Sleep(se.retryAfter)
				}
			}
		})
	}
	var out []*erasure
	skipped, next := 0, 0
	start := time.Now()
	var err error
	for n := range o.erasures {
		due := start.Add(time.Duration(n) * interval)
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(due)):
		}
		if err = ctx.Err(); err != nil {
			break
		}
		for next < len(order) && !pop.sent[order[next]].Load() {
			next++
			skipped++ // no event of it was accepted yet: not a subject to erase
		}
		if next == len(order) {
			err = fmt.Errorf("only %d of the %d subjects have had an event accepted, %d erasures asked", len(out), len(pop.people), o.erasures)
			break
		}
		e := &erasure{subject: order[next], due: due}
		next++
		out = append(out, e)
		jobs <- e
	}
	close(jobs)
	wg.Wait()
	return out, skipped, err
}

// statusError is an answer other than the one expected.
type statusError struct {
	code       int
	retryAfter time.Duration
	msg        string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.code, http.StatusText(e.code), e.msg)
}

// post sends body to url with the operator's bearer token, or with
// writeKey as HTTP Basic user, and returns the answer's body if its status
// is want.
func post(ctx context.Context, client *http.Client, url, token, writeKey string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	} else {
		req.SetBasicAuth(writeKey, "")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != want {
		retry := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retry = time.Duration(s) * time.Second
		}
		return nil, &statusError{code: resp.StatusCode, retryAfter: retry, msg: string(bytes.TrimSpace(msg))}
	}
	return msg, nil
}

// durations sorts d and returns it.
func durations(d []time.Duration) []time.Duration {
	slices.Sort(d)
	return d
}
