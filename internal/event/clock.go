package event

import (
	"fmt"
	"time"
)

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

// CorrectClock rewrites the event's timestamp to the server's clock
// (CorrectTimestamp), keeping the device's own time in OriginalTimestamp.
// batchSentAt stands in for an event without its own sentAt. It fails when
// the corrected time falls outside what the pipeline stores.
func (e *Event) CorrectClock(batchSentAt, receivedAt time.Time) error {
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
		return &FieldError{"timestamp", fmt.Sprintf("corrected for the device's clock (sentAt %s) it falls outside %d to %d", sentAt.Format(time.RFC3339), MinTime.Year(), MaxTime.Year()-1)}
	}
	e.Timestamp = t.Format(time.RFC3339Nano)
	return nil
}
