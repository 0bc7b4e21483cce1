package benchkit

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestTrackerAges(t *testing.T) {
	tr := NewTracker()
	t0 := time.Now()
	tr.Add(1, "a", "b", "c", "d")
	tr.Add(2, "other-step")
	tr.Ack(t0, true, "a", "b")
	tr.Ack(t0, false, "c") // refused: not followed
	tr.Ack(t0, true, "other-step")
	tr.SawVisible([]string{"a"}, t0.Add(300*time.Millisecond))
	waiting := tr.Waiting()
	slices.Sort(waiting)
	if !slices.Equal(waiting, []string{"b", "d", "other-step"}) {
		t.Errorf("Waiting = %v; want b, d (not answered yet) and other-step", waiting)
	}
	if n := tr.WaitingAcked(); n != 2 {
		t.Errorf("WaitingAcked = %d; want 2 (b, other-step)", n)
	}
	ages, missing := tr.Ages(1, t0.Add(time.Second))
	if missing != 1 || len(ages) != 2 || ages[0] != 300*time.Millisecond || ages[1] != time.Second {
		t.Errorf("Ages = %v, missing %d; want [300ms 1s] with b missing at its age", ages, missing)
	}
}

func TestTrackerStampsOnce(t *testing.T) {
	tr := NewTracker()
	t0 := time.Now()
	tr.Add(0, "a")
	// Seen in both places before the 200 came back: still recorded.
	tr.SawClean("a", t0)
	tr.SawVisible([]string{"a"}, t0.Add(time.Millisecond))
	tr.SawClean("a", t0.Add(time.Hour))
	tr.SawVisible([]string{"a", "unknown"}, t0.Add(time.Hour))
	tr.Ack(t0.Add(2*time.Millisecond), true, "a", "unknown")
	got := tr.Samples()
	if len(got) != 1 || !got[0].Clean.Equal(t0) || !got[0].Visible.Equal(t0.Add(time.Millisecond)) || !got[0].Acked.Equal(t0.Add(2*time.Millisecond)) {
		t.Errorf("Samples = %+v; want the first stamps kept and no unknown id", got)
	}
	if w := tr.Waiting(); len(w) != 0 {
		t.Errorf("Waiting = %v after it was queryable", w)
	}
	// Freshness is never negative.
	if ages, _ := tr.Ages(0, t0); len(ages) != 1 || ages[0] != 0 {
		t.Errorf("Ages = %v; want [0]", ages)
	}
}

func TestEveryRunsUntilAnErrorOrTheEnd(t *testing.T) {
	calls := 0
	stop := errors.New("stop")
	err := Every(context.Background(), time.Millisecond, func() error {
		if calls++; calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("Every = %v after %d calls; want stop after 3", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = Every(ctx, time.Millisecond, func() error {
		if calls++; calls == 2 {
			cancel()
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Errorf("Every = %v after %d calls; want nil once ctx ended, after 2", err, calls)
	}
}
