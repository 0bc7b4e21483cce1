// Package par runs a loop's iterations on every core.
package par

import (
	"runtime"
	"sync"
)

// Range calls f on contiguous ranges covering [0, n), one per core, and
// returns when all have returned. Below minN iterations it calls f(0, n)
// on the caller's goroutine: for a few items, starting goroutines costs
// more than it saves. f must be safe to run concurrently on disjoint
// ranges.
func Range(n, minN int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < minN || workers == 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		wg.Go(func() { f(lo, min(lo+chunk, n)) })
	}
	wg.Wait()
}
