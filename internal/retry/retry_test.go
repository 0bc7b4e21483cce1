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

func TestDelayDoublesFromInitialUpToMax(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Backoff
		want []time.Duration // by attempt, from 0
	}{
		{"default", Default, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}},
		{"max not a power of two of initial", Backoff{Initial: time.Second, Max: 30 * time.Second}, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}},
		{"no max is constant", Backoff{Initial: 100 * time.Millisecond}, []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}},
		{"no initial never waits", Backoff{Max: time.Second}, []time.Duration{0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for attempt, want := range tc.want {
				if got := tc.b.Delay(attempt); got != want {
					t.Errorf("Delay(%d) = %v, want %v", attempt, got, want)
				}
			}
		})
	}
}

func TestDelayStaysAtMaxForAnyAttempt(t *testing.T) {
	b := Backoff{Initial: 3 * time.Millisecond, Max: time.Hour}
	for _, attempt := range []int{21, 30, 61, 62, 63, 64, 1000, 1 << 40} {
		if got := b.Delay(attempt); got != time.Hour {
			t.Errorf("Delay(%d) = %v, want the cap %v", attempt, got, time.Hour)
		}
	}
	if got := b.Delay(-1); got != b.Initial {
		t.Errorf("Delay(-1) = %v, want Initial %v", got, b.Initial)
	}
}

func TestWaitSleepsTheDelay(t *testing.T) {
	b := Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}
	for attempt := range 3 {
		if err := b.Wait(context.Background(), attempt); err != nil {
			t.Fatalf("Wait(%d) = %v, want nil", attempt, err)
		}
	}
}

func TestWaitReturnsWhenContextEnds(t *testing.T) {
	b := Backoff{Initial: time.Hour, Max: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on an ended context = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx, 3) }()
	cancel()
	// An hour's wait that returns at all returned because ctx ended; the
	// minute only turns a hang into a failure.
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait cancelled midway = %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Wait did not return when its context ended")
	}
}
