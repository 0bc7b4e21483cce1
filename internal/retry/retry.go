// Package retry holds the one backoff schedule every loop that retries
// waits on: a produce, an insert, a deletion, a poll of an unsettled state.
// It is for transient failures only: callers route permanent ones
// elsewhere (the dead-letter topic) before retrying.
package retry

import (
	"context"
	"time"
)

// Backoff is a capped exponential schedule: the wait after a loop's first
// failed attempt is Initial, each further one doubles it, up to Max. A Max
// below Initial (zero included) makes the schedule a constant Initial.
// There is no jitter: each loop runs once per process, so a resource sees
// as many retrying loops as there are replicas, not a crowd to spread out.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// Default waits 100ms, doubling up to 5s.
var Default = Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// Delay is the wait after failed attempt number attempt, counted from 0.
func (b Backoff) Delay(attempt int) time.Duration {
	top := max(b.Max, b.Initial)
	switch {
	case b.Initial <= 0:
		return 0
	case attempt <= 0:
		return b.Initial
	// Compared before shifting: Initial<<attempt would overflow. A shift
	// by 64 or more gives 0.
	case b.Initial > top>>attempt:
		return top
	}
	return b.Initial << attempt
}

// Wait sleeps Delay(attempt). It returns ctx's error, at once, if ctx ends
// first or has already ended.
func (b Backoff) Wait(ctx context.Context, attempt int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(b.Delay(attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Do calls fn until it returns nil or ctx ends; onFail sees each failure and
// the wait before the next attempt. It returns ctx's error if ctx ended first.
func (b Backoff) Do(ctx context.Context, fn func(context.Context) error, onFail func(err error, wait time.Duration)) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		onFail(err, b.Delay(attempt))
		if err := b.Wait(ctx, attempt); err != nil {
			return err
		}
	}
}
