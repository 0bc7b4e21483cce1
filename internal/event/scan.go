package event

import "github.com/consentflow/consentflow/internal/jsonscan"

// scanner is the shared one-pass scanner, with the collector's decoders
// (fast.go) as its methods: it validates as strictly as the reference
// decoder and counts what Shape bounds on the way.
type scanner struct{ jsonscan.Scanner }

// newScanner scans b from i with fresh counters.
func newScanner(b []byte, i int) scanner {
	return scanner{jsonscan.Scanner{B: b, I: i}}
}
