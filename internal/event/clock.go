package event

import (
	"errors"
	"fmt"
	"time"
)

// ErrOutOfTimeBounds marks an event refused for its time alone (TimeBounds).
var ErrOutOfTimeBounds = errors.New("event time out of bounds")

// CorrectTimestamp puts a device's event time on the server's clock, as
// Segment does: a device whose clock is off by d stamps both the event
// (timestamp) and the upload (sentAt) off by d, so
// receivedAt - (sentAt - timestamp) is the event time by the server's clock.
// Without sentAt the device's time is all there is; without a device time
// the event happened when it arrived.
func CorrectTimestamp(timestamp, sentAt, receivedAt time.Time) time.Time {
	switch {
	case timestamp.IsZero():
		return receivedAt
	case sentAt.IsZero():
		return timestamp
	default:
		return receivedAt.Add(-sentAt.Sub(timestamp))
	}
}

// TimeBounds is how far from its receipt an event's clock-corrected time
// may lie. A backdated event could otherwise slip under a withdrawal
// recorded since, and a far-future one land in a partition that retention
// never drops.
type TimeBounds struct {
	// MaxAge is how much older than its receipt an event may be (a device
	// that was offline uploads late). Zero means no bound.
	MaxAge time.Duration
	// MaxFuture is how far after its receipt an event may be. Zero means
	// not at all.
	MaxFuture time.Duration
}

// Check returns an error naming field, a *FieldError that also matches
// ErrOutOfTimeBounds, when t (corrected for the device's clock) lies
// outside b around receivedAt.
func (b TimeBounds) Check(field string, t, receivedAt time.Time) error {
	switch age := receivedAt.Sub(t); {
	case b.MaxAge > 0 && age > b.MaxAge:
		return outOfBounds{&FieldError{Field: field, Msg: fmt.Sprintf("corrected for the device's clock it is %s older than its receipt, more than the %s allowed (max_event_age)", age.Round(time.Second), b.MaxAge)}}
	case -age > b.MaxFuture:
		return outOfBounds{&FieldError{Field: field, Msg: fmt.Sprintf("corrected for the device's clock it is %s after its receipt, more than the %s allowed (max_future_skew)", (-age).Round(time.Second), b.MaxFuture)}}
	}
	return nil
}

// outOfBounds is a FieldError that is also ErrOutOfTimeBounds.
type outOfBounds struct{ *FieldError }

func (e outOfBounds) Unwrap() []error { return []error{e.FieldError, ErrOutOfTimeBounds} }

// CorrectClock rewrites the event's timestamp to the server's clock
// (CorrectTimestamp), keeping the device's own time in OriginalTimestamp.
// batchSentAt stands in for an event without its own sentAt. It fails when
// the corrected time falls outside what the pipeline stores, or outside
// bounds around receivedAt (then the error also matches ErrOutOfTimeBounds).
func (e *Event) CorrectClock(batchSentAt, receivedAt time.Time, bounds TimeBounds) error {
	device, _ := ParseTime(e.Timestamp) // validated with the event
	if device.IsZero() {
		device, _ = ParseTime(e.OriginalTimestamp)
	} else if e.OriginalTimestamp == "" {
		e.OriginalTimestamp = e.Timestamp
	}
	sentAt, _ := ParseTime(e.SentAt)
	if sentAt.IsZero() {
		sentAt = batchSentAt
	}
	t := CorrectTimestamp(device, sentAt, receivedAt).UTC()
	if !InRange(t) {
		return &FieldError{Field: "timestamp", Msg: fmt.Sprintf("corrected for the device's clock (sentAt %s) it falls outside %d to %d", sentAt.Format(time.RFC3339), MinTime.Year(), MaxTime.Year()-1)}
	}
	if err := bounds.Check("timestamp", t, receivedAt); err != nil {
		return err
	}
	e.Timestamp = t.Format(time.RFC3339Nano)
	return nil
}

// parseTimeFast parses the two forms SDKs send, "2006-01-02T15:04:05Z" and
// "2006-01-02T15:04:05.000Z" (JavaScript's toISOString), as time.Parse with
// time.RFC3339Nano would, without its generality; false leaves anything else,
// errors included, to time.Parse. FuzzParseTimeFast checks the two agree.
func parseTimeFast(s string) (time.Time, bool) {
	var nsec int
	switch {
	case len(s) == 20 && s[19] == 'Z':
	case len(s) == 24 && s[23] == 'Z' && s[19] == '.':
		ms, ok := digits(s, 20, 3)
		if !ok {
			return time.Time{}, false
		}
		nsec = ms * int(time.Millisecond)
	default:
		return time.Time{}, false
	}
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s, 0, 4)
	month, ok2 := digits(s, 5, 2)
	day, ok3 := digits(s, 8, 2)
	hour, ok4 := digits(s, 11, 2)
	minute, ok5 := digits(s, 14, 2)
	sec, ok6 := digits(s, 17, 2)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 ||
		month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// digits reads s[i:i+n] as a decimal number.
func digits(s string, i, n int) (int, bool) {
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(m time.Month, year int) int {
	if m == time.February && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		return 29
	}
	return [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m-1]
}
