package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Request bodies cost a slow client nothing to hold open, so what a body
// holds while it arrives is bounded three ways: it holds no in-flight
// slot (a request takes one once its body is read), it has
// http.body_timeout to arrive, and the bytes of all bodies held at once,
// arriving or being served, are bounded by http.max_body_memory_bytes.
// Bodies are held as they arrive: a buffer grows only with what was
// received, so holding memory costs a client the bytes it sends, and a
// gzip body is decoded only once all of it is there (a decoder's state,
// some 40 KB, for a body that never comes would cost the client ten
// bytes).

// gzipStateBytes is what the bytes of bodies held count for a gzip
// decoder while it runs: compress/flate's window and tables, rounded up.
const gzipStateBytes = 64 << 10

// minBodyBuffer is the first buffer a body is read into.
const minBodyBuffer = 1 << 10

// maxBodyHeld is the most one request may hold of
// http.max_body_memory_bytes, which must hold it: its body as it arrived
// and decoded, each up to limit, and a gzip decoder.
func maxBodyHeld(limit int64) int64 { return 2*limit + gzipStateBytes }

// bodyBudget is http.max_body_memory_bytes: the bytes of request bodies
// held at once, those arriving and those being served.
type bodyBudget struct {
	limit int64
	used  atomic.Int64
	gauge prometheus.Gauge
}

// bodyHold is what one request holds of the budget; release gives it back.
type bodyHold struct {
	budget *bodyBudget
	n      int64
}

// take holds n more bytes, or none and returns false when that would pass
// the limit. Bytes are taken once they arrived, so the limit may be passed
// by what one read brings per request: memory the client did send.
func (h *bodyHold) take(n int) bool {
	if h.budget.used.Add(int64(n)) > h.budget.limit {
		h.budget.used.Add(-int64(n))
		return false
	}
	h.n += int64(n)
	h.budget.gauge.Add(float64(n))
	return true
}

// give returns n of the bytes held.
func (h *bodyHold) give(n int) {
	h.n -= int64(n)
	h.budget.used.Add(-int64(n))
	h.budget.gauge.Sub(float64(n))
}

// release returns everything held.
func (h *bodyHold) release() { h.give(int(h.n)) }

// Why a body was cut off, the values of the reason label of
// collector_http_bodies_cut_total.
const (
	cutBodyTimeout = "body_timeout"
	cutBodyMemory  = "body_memory"
)

var errBodyMemory = errors.New("request bodies held at once would pass http.max_body_memory_bytes")

// bodyBufs are the buffers a body is read into: raw holds a gzip body as
// it arrived, body the body decoded (or as it arrived, if not gzipped).
type bodyBufs struct {
	raw, body []byte
}

// readBody reads the request's body within http.body_timeout, at most
// http.max_request_bytes of it after gzip decoding too (a small
// compressed bomb cannot expand past the limit), holding its bytes in
// hold. With bufs not nil, it reads into them, grown as needed and left
// there for reuse.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, route string, bufs *bodyBufs, hold *bodyHold) ([]byte, result, bool) {
	// The body's own deadline. read_timeout's counts from the request's
	// first byte and is at least as long; this one replaces it.
	// Unsupported only by writers that are not a connection's (tests').
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.HTTP.BodyTimeout))
	if bufs == nil {
		bufs = new(bodyBufs)
	}
	limit := s.cfg.HTTP.MaxRequestBytes
	gzipped := strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip")
	ceiling := limit + 1 // the spare byte finds the end without growing
	if n := r.ContentLength; n >= 0 && n < limit {
		ceiling = n + 1 // a body does not run past its Content-Length
	}
	into := &bufs.body
	if gzipped {
		into = &bufs.raw
	}
	b, err := readAll(http.MaxBytesReader(nil, r.Body, limit), (*into)[:0], ceiling, hold)
	*into = b
	if err == nil && gzipped {
		b, err = s.gunzip(bufs, hold)
	}
	if err != nil {
		return nil, s.bodyError(route, err), false
	}
	s.metrics.bodyBytes.WithLabelValues(route).Observe(float64(len(b)))
	return b, result{}, true
}

// gunzip decodes bufs.raw into bufs.body.
func (s *Server) gunzip(bufs *bodyBufs, hold *bodyHold) ([]byte, error) {
	if !hold.take(gzipStateBytes) {
		return nil, errBodyMemory
	}
	defer hold.give(gzipStateBytes)
	zr, err := gzip.NewReader(bytes.NewReader(bufs.raw))
	if err != nil {
		return nil, &gzipError{err}
	}
	defer zr.Close()
	limit := s.cfg.HTTP.MaxRequestBytes
	b, err := readAll(http.MaxBytesReader(nil, zr, limit), bufs.body[:0], limit+1, hold)
	bufs.body = b
	var tooBig *http.MaxBytesError
	if err != nil && !errors.As(err, &tooBig) && !errors.Is(err, errBodyMemory) {
		err = &gzipError{err}
	}
	return b, err
}

// gzipError is a body that is not valid gzip.
type gzipError struct{ err error }

func (e *gzipError) Error() string { return "gzip body: " + e.err.Error() }
func (e *gzipError) Unwrap() error { return e.err }

// bodyError is the answer to a body that could not be read. A body cut
// off closes its connection: what is left of it is not worth reading.
func (s *Server) bodyError(route string, err error) result {
	var tooBig *http.MaxBytesError
	var bad *gzipError
	switch {
	case errors.As(err, &tooBig):
		return fail(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", s.cfg.HTTP.MaxRequestBytes)
	case errors.As(err, &bad):
		return fail(http.StatusBadRequest, "%v", err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.metrics.bodiesCut.WithLabelValues(cutBodyTimeout).Inc()
		res := fail(http.StatusRequestTimeout, "request body not received within %v (http.body_timeout)", s.cfg.HTTP.BodyTimeout)
		res.closeConn = true
		return res
	case errors.Is(err, errBodyMemory):
		s.metrics.bodiesCut.WithLabelValues(cutBodyMemory).Inc()
		res := fail(http.StatusServiceUnavailable, "the collector holds as many request bodies as it may (http.max_body_memory_bytes), retry later")
		res.retryAfter, res.closeConn = time.Second, true
		return res
	}
	return fail(http.StatusBadRequest, "read body: %v", err)
}

// readAll reads r to its end into b, holding every byte read in hold.
// b grows only as the body arrives: it at most doubles (from
// minBodyBuffer), never past ceiling while that is more than it holds.
func readAll(r io.Reader, b []byte, ceiling int64, hold *bodyHold) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			grown := max(2*cap(b), minBodyBuffer)
			if c := int(ceiling); c > len(b) {
				grown = min(grown, c)
			}
			b = append(make([]byte, 0, grown), b...)
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if n > 0 && !hold.take(n) {
			return b, errBodyMemory
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return b, err
		}
	}
}
