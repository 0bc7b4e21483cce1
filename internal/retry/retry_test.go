package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDoRetriesUntilSuccessWithCappedBackoff(t *testing.T) {
	b := Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond}
	calls := 0
	var waits []time.Duration
	err := b.Do(context.Background(), func(context.Context) error {
		calls++
		if calls < 5 {
			return errors.New("transient")
		}
		return nil
	}, func(_ error, wait time.Duration) { waits = append(waits, wait) })
	if err != nil || calls != 5 {
		t.Fatalf("err %v after %d calls, want success on the 5th", err, calls)
	}
	want := []time.Duration{1, 2, 4, 4}
	for i, w := range want {
		if waits[i] != w*time.Millisecond {
			t.Errorf("wait %d = %v, want %v", i, waits[i], w*time.Millisecond)
		}
	}
}

func TestDoStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Default.Do(ctx, func(context.Context) error {
		calls++
		return errors.New("down")
	}, func(error, time.Duration) { cancel() })
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("err %v after %d calls, want context.Canceled after 1", err, calls)
	}
}
