package ingest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCatchUpSharesWaits: requests arriving while a wait runs share the
// next one, and none is answered by a wait that started before it came.
func TestCatchUpSharesWaits(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var started []time.Time
	release := make(chan struct{})
	c := &catchUp{timeout: time.Second, wait: func(context.Context) error {
		mu.Lock()
		started = append(started, time.Now())
		mu.Unlock()
		if calls.Add(1) == 1 {
			<-release // the first wait runs while the others arrive
		}
		return nil
	}}
	first := make(chan error)
	go func() { first <- c.Wait(context.Background()) }()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	arrived := time.Now()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := c.Wait(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d waits for 51 requests, want 2: the first, and one shared by the 50 that came during it", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if !started[1].After(arrived) {
		t.Error("the shared wait started before the requests it answered arrived")
	}
}
