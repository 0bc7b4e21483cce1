//go:build race

package pii

// raceEnabled: under the race detector sync.Pool drops items at random (by
// design, to expose misuse), so code that reuses pooled memory, such as
// regexp's matchers, allocates: allocation counts mean nothing there.
const raceEnabled = true
