package par

import (
	"sync/atomic"
	"testing"
)

func TestRangeCoversEachIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, 7, 255, 256, 1000, 1001} {
		seen := make([]int32, n)
		var calls atomic.Int32
		Range(n, 256, func(lo, hi int) {
			calls.Add(1)
			for i := lo; i < hi; i++ {
				atomic.AddInt32(&seen[i], 1)
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, c)
			}
		}
		if n < 256 && calls.Load() != 1 {
			t.Errorf("n=%d below the minimum: %d calls, want 1", n, calls.Load())
		}
	}
}
