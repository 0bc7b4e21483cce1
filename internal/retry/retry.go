// Package retry repeats an operation that must eventually succeed (a produce,
// an insert) with capped exponential backoff until it does or the context
// ends. It is for transient failures only: callers route permanent ones
// elsewhere (the dead-letter topic) before retrying.
package retry

import (
	"context"
	"time"
)

// Backoff bounds the wait between attempts.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// Default waits 100ms, doubling up to 5s.
var Default = Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// Do calls fn until it returns nil or ctx ends; onFail sees each failure and
// the wait before the next attempt. It returns ctx's error if ctx ended first.
func (b Backoff) Do(ctx context.Context, fn func(context.Context) error, onFail func(err error, wait time.Duration)) error {
	wait := b.Initial
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		onFail(err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, b.Max)
	}
}
