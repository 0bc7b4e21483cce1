package benchkit

import (
	"fmt"
	"strings"
	"time"
)

// Limits checks a benchmark's flags against the bounds that keep one run
// within minutes and inside the machine's memory. The first value out of
// bounds is the error, named after its flag: "-rate 10: want 100-50000".
type Limits struct{ err error }

// Int wants lo <= v <= hi of -name.
func (l *Limits) Int(name string, v, lo, hi int) {
	l.Check(v >= lo && v <= hi, "-%s %d: want %d-%d", name, v, lo, hi)
}

// Float wants lo <= v <= hi of -name.
func (l *Limits) Float(name string, v, lo, hi float64) {
	l.Check(v >= lo && v <= hi, "-%s %v: want %v-%v", name, v, lo, hi)
}

// Duration wants lo <= v <= hi of -name, the bounds written as a user
// types them (5s-5m).
func (l *Limits) Duration(name string, v, lo, hi time.Duration) {
	l.Check(v >= lo && v <= hi, "-%s %v: want %s-%s", name, v, ShortDuration(lo), ShortDuration(hi))
}

// Check makes the error format, args unless ok, for a rule of its own.
func (l *Limits) Check(ok bool, format string, args ...any) {
	if !ok && l.err == nil {
		l.err = fmt.Errorf(format, args...)
	}
}

// Err is the first value refused, nil if none.
func (l *Limits) Err() error { return l.err }

// ShortDuration writes d as a flag's value is typed, without the zero
// units time.Duration's String adds: 5m, not 5m0s; 0, not 0s.
func ShortDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
