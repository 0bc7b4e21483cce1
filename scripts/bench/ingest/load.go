package ingest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// sendFunc sends one batch of n events to a target and returns once the
// target has answered (or failed). Each call is bounded by requestTimeout.
type sendFunc func(ctx context.Context, n int) error

// requestTimeout bounds one request, so a stuck target cannot stretch a
// measurement past its duration by more than this.
const requestTimeout = 10 * time.Second

// stats is what one measurement observed.
type stats struct {
	events, requests, errors int64
	firstErr                 error
	elapsed                  time.Duration
	latencies                []time.Duration   // sorted
	cpu                      benchkit.CPUUsage // by the slots cpuSelf, cpuCollector, cpuKafka
}

func (s stats) eventsPerSec() float64 { return float64(s.events) / s.elapsed.Seconds() }
func (s stats) requestsPerSec() float64 {
	return float64(s.requests) / s.elapsed.Seconds()
}

// percentile is the nearest-rank percentile (p in 0..1) of the sorted
// latencies, or 0 when there are none.
func (s stats) percentile(p float64) time.Duration {
	n := len(s.latencies)
	if n == 0 {
		return 0
	}
	i := int(p*float64(n)+0.999999) - 1
	return s.latencies[max(0, min(i, n-1))]
}

// workerStats is one worker's share, merged when the measurement ends so
// workers never contend on a lock per request.
type workerStats struct {
	events, requests, errors int64
	firstErr                 error
	latencies                []time.Duration
}

func (w *workerStats) record(n int, start time.Time, err error) {
	w.latencies = append(w.latencies, time.Since(start))
	w.requests++
	if err != nil {
		w.errors++
		if w.firstErr == nil {
			w.firstErr = err
		}
		return
	}
	w.events += int64(n)
}

func merge(parts []workerStats, elapsed time.Duration) stats {
	s := stats{elapsed: elapsed}
	for _, p := range parts {
		s.events += p.events
		s.requests += p.requests
		s.errors += p.errors
		if s.firstErr == nil {
			s.firstErr = p.firstErr
		}
		s.latencies = append(s.latencies, p.latencies...)
	}
	slices.Sort(s.latencies)
	return s
}

// closedLoop runs workers that each send a batch, wait for the answer and
// send the next, for d: the target's maximum rate at that concurrency.
// Latency is per request, from send to answer.
func closedLoop(ctx context.Context, send sendFunc, batch, workers int, d time.Duration) stats {
	parts := make([]workerStats, workers)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range parts {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				err := send(ctx, batch)
				parts[w].record(batch, t, err)
			}
		})
	}
	wg.Wait()
	return merge(parts, time.Since(start))
}

// openLoop sends batches at a fixed rate of eventsPerSec for d, whatever
// the answers, as independent clients would. Latency runs from when a
// request was due, not from when a worker got to it, so a target that falls
// behind shows its queueing in the figures instead of slowing the load down
// (coordinated omission).
func openLoop(ctx context.Context, send sendFunc, batch, workers int, eventsPerSec float64, d time.Duration) stats {
	interval := time.Duration(float64(batch) / eventsPerSec * float64(time.Second))
	// A target that cannot keep up leaves requests queued; stop those after
	// a grace period so the run stays bounded.
	ctx, cancel := context.WithTimeout(ctx, d+requestTimeout)
	defer cancel()

	due := make(chan time.Time, 1024)
	parts := make([]workerStats, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range parts {
		wg.Go(func() {
			for t := range due {
				if ctx.Err() != nil {
					continue // drain without sending
				}
				err := send(ctx, batch)
				parts[w].record(batch, t, err)
			}
		})
	}
	pace(ctx, due, start, interval, d)
	close(due)
	wg.Wait()
	return merge(parts, time.Since(start))
}

// pace puts the due time of each request on due, sleeping until it is due.
// Due times are absolute, so a late wake-up is caught up, not lost.
func pace(ctx context.Context, due chan<- time.Time, start time.Time, interval, d time.Duration) {
	n := int(d / interval)
	for i := range n {
		t := start.Add(time.Duration(i) * interval)
		if wait := time.Until(t); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case due <- t:
		case <-ctx.Done():
			return
		}
	}
}
