package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/consentflow/consentflow/internal/event"
)

// recordBuilder wraps the events of one request for the raw topic. They
// share an envelope encoder, one array of records and buffers for values
// and keys, carved up as records are made (a record keeps alive the buffer
// it was carved from), so a request costs a few allocations, not a few per
// event; and none once a scratch is reused.
type recordBuilder struct {
	enc          event.EnvelopeEncoder
	receivedAt   time.Time
	recs         []kgo.Record
	ptrs         []*kgo.Record
	values, keys []byte
	// left is the bytes of events not yet wrapped, for sizing buffers.
	left int
}

// reset readies rb for the events of p; the records it built before must
// be out of Kafka's hands.
func (rb *recordBuilder) reset(s *Server, p payload, src *source, receivedAt time.Time, signals event.Signals) {
	rb.enc.Reset(&event.Envelope{
		SchemaVersion: event.SchemaVersion,
		ReceivedAt:    receivedAt,
		SourceID:      src.Name,
		Region:        s.cfg.Region,
		Signals:       signals,
	})
	rb.receivedAt = receivedAt
	n := len(p.Events)
	if cap(rb.recs) < n {
		rb.recs = make([]kgo.Record, n)
		rb.ptrs = make([]*kgo.Record, 0, n)
	} else {
		// The client writes partition, offset and more into a record.
		rb.recs = rb.recs[:n]
		clear(rb.recs)
		rb.ptrs = rb.ptrs[:0]
	}
	rb.values, rb.keys = rb.values[:0], rb.keys[:0]
	rb.left = 0
	for i := range p.Events {
		rb.left += len(p.Events[i].Raw) + len(p.Context) + rb.enc.Overhead()
	}
}

// add wraps the event, whose bytes as sent were raw, in the i-th record.
func (rb *recordBuilder) add(i int, raw []byte, ev *event.Event) *kgo.Record {
	need := len(raw) + len(ev.Context) + rb.enc.Overhead()
	rb.left -= len(raw) + len(ev.Context) + rb.enc.Overhead()
	if cap(rb.values)-len(rb.values) < need {
		rb.values = make([]byte, 0, max(need, rb.left+need))
	}
	start := len(rb.values)
	rb.values = rb.enc.Append(rb.values, ev.MessageID, ev)
	key := ev.PartitionKey()
	if cap(rb.keys)-len(rb.keys) < len(key) {
		rb.keys = make([]byte, 0, max(len(key), 64*(len(rb.recs)-i)))
	}
	kstart := len(rb.keys)
	rb.keys = append(rb.keys, key...)
	rec := &rb.recs[i]
	rec.Key = rb.keys[kstart:len(rb.keys):len(rb.keys)]
	rec.Value = rb.values[start:len(rb.values):len(rb.values)]
	// Kafka's timestamp is when the collector took the event, as the
	// envelope's receivedAt (else the client reads the clock per record).
	rec.Timestamp = rb.receivedAt
	return rec
}

var (
	errOverloaded     = errors.New("the collector is overloaded (too many events waiting for Kafka)")
	errProduceTimeout = errors.New("Kafka did not acknowledge in time")
)

// admitAndProduce applies the source's rate limit, then produces records and
// waits for Kafka's acknowledgement of every one.
func (s *Server) admitAndProduce(src *source, records []*kgo.Record, rejected []Rejection) result {
	rv, res, ok := s.admit(src, len(records), rejected)
	if !ok {
		return res
	}
	return s.produceAdmitted(src, rv, records, rejected)
}

// refuse counts n events refused for reason and answers code.
func (s *Server) refuse(n, code int, reason string, wait time.Duration, err error, rejected []Rejection) result {
	s.metrics.rejected.WithLabelValues(reason).Add(float64(n))
	return result{code: code, retryAfter: wait, resp: response{Error: err.Error(), Rejected: rejected}}
}

// admit applies the source's rate limit to n events: it returns their
// reservation (nil: unlimited), or the answer refusing them.
func (s *Server) admit(src *source, n int, rejected []Rejection) (*rate.Reservation, result, bool) {
	if n > s.cfg.HTTP.MaxBufferedRecords {
		// No retry can succeed: say so, without Retry-After.
		return nil, s.refuse(n, http.StatusRequestEntityTooLarge, reasonTooLarge, 0, fmt.Errorf("request has %d events, more than the collector buffers (%d): split it", n, s.cfg.HTTP.MaxBufferedRecords), rejected), false
	}
	rv, wait, err := src.admit(n, s.now())
	switch {
	case err != nil && wait == 0:
		return nil, s.refuse(n, http.StatusRequestEntityTooLarge, reasonRateLimited, 0, err, rejected), false
	case err != nil:
		return nil, s.refuse(n, http.StatusTooManyRequests, reasonRateLimited, wait, err, rejected), false
	}
	return rv, result{}, true
}

// produceAdmitted produces records admitted under rv and waits for Kafka's
// acknowledgement of every one.
func (s *Server) produceAdmitted(src *source, rv *rate.Reservation, records []*kgo.Record, rejected []Rejection) result {
	n := len(records)
	refuse := func(code int, reason string, wait time.Duration, err error) result {
		return s.refuse(n, code, reason, wait, err, rejected)
	}
	start := time.Now()
	if err := s.produce(records); err != nil {
		if rv != nil {
			rv.Cancel() // the events were not taken: give the source its tokens back
		}
		switch {
		case errors.Is(err, errOverloaded):
			return refuse(http.StatusServiceUnavailable, reasonOverloaded, time.Second, err)
		case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
			return refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, 0, errors.New("an event is larger than Kafka accepts"))
		}
		s.log.Warn("produce failed; answering 503", "source", src.Name, "events", n, "err", err)
		res := refuse(http.StatusServiceUnavailable, reasonProduceFailed, time.Second, errors.New("events not stored: Kafka did not acknowledge them in time, retry later"))
		// Answered before every acknowledgement: the producer may still
		// hold the records.
		res.recordsHeld = errors.Is(err, errProduceTimeout)
		return res
	}
	s.metrics.produceDuration.Observe(time.Since(start).Seconds())
	s.metrics.accepted.Add(float64(n))
	return result{code: http.StatusOK, resp: response{Success: true, Rejected: rejected}}
}

// admit takes n events from the source's token bucket. A zero wait with an
// error means the request can never pass (more events than the burst).
func (src *source) admit(n int, now time.Time) (*rate.Reservation, time.Duration, error) {
	if src.limiter == nil {
		return nil, 0, nil
	}
	if n > src.limiter.Burst() {
		return nil, 0, fmt.Errorf("request has %d events, more than source %q may send at once (%d): split it", n, src.Name, src.limiter.Burst())
	}
	rv := src.limiter.ReserveN(now, n)
	if wait := rv.DelayFrom(now); wait > 0 {
		rv.CancelAt(now)
		return nil, wait, fmt.Errorf("rate limit of source %q exceeded, retry later", src.Name)
	}
	return rv, 0, nil
}

// produce hands records to the producer and waits, at most the produce
// timeout, for Kafka to acknowledge all of them. Room in the buffer is
// reserved for the whole request first, so a request is refused whole
// (errOverloaded, at once) rather than half produced, which a retry would
// duplicate.
func (s *Server) produce(records []*kgo.Record) error {
	n := int64(len(records))
	if s.reserved.Add(n) > int64(s.cfg.HTTP.MaxBufferedRecords) {
		s.reserved.Add(-n)
		return errOverloaded
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ProduceTimeout)
	defer cancel()
	var failures atomic.Int64
	var firstErr atomic.Value
	var pending atomic.Int64
	pending.Store(n)
	acked := make(chan struct{})
	promise := func(_ *kgo.Record, err error) {
		s.reserved.Add(-1)
		if err != nil && failures.Add(1) == 1 {
			firstErr.Store(err)
		}
		if pending.Add(-1) == 0 {
			close(acked)
		}
	}
	for _, rec := range records {
		s.client.TryProduce(ctx, rec, promise)
	}
	select {
	case <-acked:
	case <-ctx.Done():
		// A batch already sent cannot be recalled (idempotent producer):
		// answer now; the acknowledgement may still come.
		return errProduceTimeout
	}
	if failures.Load() > 0 {
		err := firstErr.Load().(error)
		if errors.Is(err, kgo.ErrMaxBuffered) {
			return errOverloaded
		}
		return fmt.Errorf("%d of %d events failed, first: %w", failures.Load(), len(records), err)
	}
	return nil
}

// Produce is produce for the privacy admin API: its records share the
// buffer (http.max_buffered_records) and the produce timeout with events.
func (s *Server) Produce(records []*kgo.Record) error { return s.produce(records) }
