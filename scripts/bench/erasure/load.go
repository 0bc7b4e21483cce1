package erasure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
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
	runID string
	*benchkit.Population
	sent []atomic.Bool // an event of the subject was accepted (200)
}

func newPopulation(runID string, n int) (*population, error) {
	// benchkit's even subjects are the signed-in ones.
	pop, err := benchkit.NewPopulation(n, func(i int) int { return 2 * i })
	if err != nil {
		return nil, err
	}
	return &population{runID: runID, Population: pop, sent: make([]atomic.Bool, n)}, nil
}

// consent is subject i's consent update: analytics and cross-border, as of
// a minute ago (before any of its events).
func (p *population) consent(i int) []byte { return p.Consent(i, true, true) }

// body is the /v1/batch request of events first..first+n-1, each of a
// pseudo-random subject, and the subjects it is about.
func (p *population) body(first, n int, now time.Time, who []int) ([]byte, []int) {
	ts := now.UTC().Format(time.RFC3339Nano)
	who = who[:0]
	b := benchkit.BatchBody(now, n, 1000, func(b []byte, k int) []byte {
		seq := first + k
		r := rand.New(rand.NewPCG(uint64(seq), 0xe7a5e))
		i := r.IntN(len(p.People))
		who = append(who, i)
		s := &p.People[i]
		switch r.IntN(20) {
		case 0: // signs in: links the device to the user
			b = append(b, `{"type":"identify"`...)
		case 1, 2, 3, 4, 5, 6:
			b = benchkit.AppendProductViewed(b, r, p.runID)
		default:
			b = benchkit.AppendPageView(b, r, p.runID)
		}
		b = fmt.Appendf(b, `,"messageId":"%s-%09d","anonymousId":%q,"userId":%q`, p.runID, seq, s.AnonymousID, s.UserID)
		return p.AppendEnd(b, i, ts)
	})
	return b, who
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
				_, err := benchkit.PostJSON(ctx, client, baseURL+"/v1/batch", benchkit.Credentials{WriteKey: o.WriteKey}, body, http.StatusOK)
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
	order := rand.New(rand.NewPCG(runSeed, 0xe2a5e)).Perm(len(pop.People))
	interval := o.spread / time.Duration(o.erasures)
	jobs := make(chan *erasure, 64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for e := range jobs {
				body, _ := json.Marshal(map[string]string{"userId": pop.People[e.subject].UserID, "reason": event.ErasureReasons[e.subject%len(event.ErasureReasons)]})
				e.sent = time.Now()
				for e.attempts = 1; ; e.attempts++ {
					var resp []byte
					resp, e.err = benchkit.PostJSON(ctx, client, privacyURL+"/v1/privacy/erasures", benchkit.Credentials{Token: token}, body, http.StatusAccepted)
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
					var se *benchkit.StatusError
					if e.attempts == 3 || ctx.Err() != nil || !errors.As(e.err, &se) || se.Code != http.StatusServiceUnavailable {
						break
					}
					time.Sleep(se.RetryAfter)
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
			err = fmt.Errorf("only %d of the %d subjects have had an event accepted, %d erasures asked", len(out), len(pop.People), o.erasures)
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

// durations sorts d and returns it.
func durations(d []time.Duration) []time.Duration {
	slices.Sort(d)
	return d
}
