package benchkit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"text/tabwriter"
	"time"
)

// Progress prints a line about the run's progress to stderr, after the
// time of day, so stdout holds the report alone.
func Progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// NewTable is the writer of a report's table: columns two spaces apart,
// right-aligned. End each cell, the last too, with a tab, and Flush it.
func NewTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
}

// Verdict is how a figure fared against its goal: met or MISSED.
func Verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// MicrosPer is CPU time d per unit (event, row) in µs with one decimal,
// or "-" when there were none.
func MicrosPer(d time.Duration, n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(d.Microseconds())/float64(n))
}

// Quantile is the p-quantile (0 to 1) of sorted durations, nearest rank
// rounded to the closest: what the reports' p50, p99 and max are. 0 when
// there are none.
func Quantile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// CheckLoopback refuses addresses (host:port) off this machine: the
// benchmarks flood what they talk to and delete what they made, so they
// only talk to loopback. flag names the flag the addresses came from.
func CheckLoopback(flag string, addrs ...string) error {
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("%s %q: %w", flag, a, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%s %q: only loopback addresses (127.0.0.1) are allowed", flag, a)
		}
	}
	return nil
}

// Cleanups run in reverse order of registration, like defers, but when
// the caller chooses (before the report, so it can say whether clean-up
// worked) and with their errors collected.
type Cleanups []func() error

// Add registers f to run at Run.
func (c *Cleanups) Add(f func() error) { *c = append(*c, f) }

// Run runs every cleanup, the last added first, and joins their errors.
func (c Cleanups) Run() error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		errs = append(errs, c[i]())
	}
	return errors.Join(errs...)
}
