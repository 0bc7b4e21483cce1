package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
)

// Rejection names one event of a batch that was not accepted.
type Rejection struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// response is every JSON answer: Segment's {"success": true}, with the
// events that were refused, or an error.
type response struct {
	Success bool   `json:"success"`
	Error   string `json:"error,omitempty"`
	// Field names the field of a refused consent update (403).
	Field    string      `json:"field,omitempty"`
	Rejected []Rejection `json:"rejected,omitempty"`
}

// result is the outcome of a request before it is written.
type result struct {
	code       int
	resp       response
	retryAfter time.Duration // for 429 and 503
	// recordsHeld says the request's records may still be in the producer
	// (answered before Kafka acknowledged them).
	recordsHeld bool
	// closeConn closes the connection after the answer.
	closeConn bool
}

func fail(code int, format string, args ...any) result {
	return result{code: code, resp: response{Error: fmt.Sprintf(format, args...)}}
}

// succeeded is the answer to most requests, as writeJSON would write it.
var succeeded = []byte(`{"success":true}` + "\n")

func (res result) write(w http.ResponseWriter) {
	if res.closeConn {
		w.Header().Set("Connection", "close")
	}
	if res.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(res.retryAfter.Seconds()))))
	}
	if res.code == http.StatusOK && res.resp.Success && res.resp.Error == "" && len(res.resp.Rejected) == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(succeeded)
		return
	}
	writeJSON(w, res.code, res.resp)
}

// scratch is the memory an events request works in: its body, its
// decoded batch and its records. Requests take one from scratches and put
// it back for the next once nothing refers to it any more: the answer is
// written (event strings are copies of the body, so the answer does not
// hold on to it), and Kafka is done with the records.
type scratch struct {
	bufs  bodyBufs
	batch event.Batch
	rb    recordBuilder
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// maxPooledBody bounds the bodies and record buffers kept for reuse: a
// rare large request is left to the garbage collector rather than held.
const maxPooledBody = 1 << 20

// release returns sc to the pool; recordsHeld says Kafka may still hold
// its records, whose buffers are then left to the garbage collector.
func (sc *scratch) release(recordsHeld bool) {
	if recordsHeld || cap(sc.rb.values) > maxPooledBody {
		sc.rb = recordBuilder{}
	}
	if cap(sc.bufs.body) > maxPooledBody {
		sc.bufs.body = nil
	}
	if cap(sc.bufs.raw) > maxPooledBody {
		sc.bufs.raw = nil
	}
	scratches.Put(sc)
}

// handleEvents serves /v1/batch and the single-event routes.
func (s *Server) handleEvents(route string, decode func([]byte, *scratch) (payload, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sc := scratches.Get().(*scratch)
		hold := bodyHold{budget: &s.bodies}
		defer hold.release() // once the scratch is released
		body, res, ok := s.readBody(w, r, route, &sc.bufs, &hold)
		if !ok {
			res.write(w)
			sc.release(false)
			return
		}
		if !s.enter(w) {
			sc.release(false)
			return
		}
		defer s.leave()
		p, err := decode(body, sc)
		if err != nil {
			fail(http.StatusBadRequest, "%v", err).write(w)
			sc.release(false)
			return
		}
		res = s.store(r, p, &sc.rb)
		res.write(w)
		sc.release(res.recordsHeld)
	}
}

// gif is a 1x1 transparent GIF.
var gif = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// handlePixel records the event in the data parameter and answers a 1x1
// GIF that no cache may keep, so every view reaches the collector.
func (s *Server) handlePixel(w http.ResponseWriter, r *http.Request) {
	if !s.storeQueryEvent(w, r) {
		return
	}
	noStore(w)
	w.Header().Set("Content-Type", "image/gif")
	w.Header().Set("Content-Length", strconv.Itoa(len(gif)))
	_, _ = w.Write(gif)
}

// handleRedirect records a click (the event in data) and sends the browser
// on to url, but only to an allowed host: anything else would make the
// collector an open redirect for phishing links.
func (s *Server) handleRedirect(w http.ResponseWriter, r *http.Request) {
	target, err := s.redirectTarget(r.URL.Query().Get("url"))
	if err != nil {
		fail(http.StatusBadRequest, "url: %v", err).write(w)
		return
	}
	if !s.storeQueryEvent(w, r) {
		return
	}
	noStore(w)
	http.Redirect(w, r, target, http.StatusFound)
}

// storeQueryEvent stores the event in the data parameter, or writes why it
// could not and returns false.
func (s *Server) storeQueryEvent(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet {
		// GET routes also match HEAD, which link checkers and prefetchers
		// send: it must not count as a view or a click.
		w.Header().Set("Allow", http.MethodGet)
		fail(http.StatusMethodNotAllowed, "only GET records an event").write(w)
		return false
	}
	p, err := decodeQueryEvent(r.URL.Query().Get("data"))
	if err != nil {
		fail(http.StatusBadRequest, "%v", err).write(w)
		return false
	}
	if res := s.store(r, p, new(recordBuilder)); res.code != http.StatusOK {
		res.write(w)
		return false
	}
	return true
}

func (s *Server) redirectTarget(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("must be an absolute http or https URL, got %q", raw)
	}
	host := strings.ToLower(u.Hostname())
	for _, allowed := range s.cfg.Redirect.AllowedHosts {
		allowed = strings.ToLower(allowed)
		if host == allowed || (strings.HasPrefix(allowed, "*.") && strings.HasSuffix(host, allowed[1:])) {
			return u.String(), nil
		}
	}
	return "", fmt.Errorf("host %q is not in redirect.allowed_hosts", host)
}

// store validates the request's events and produces the valid ones,
// building their records in rb.
func (s *Server) store(r *http.Request, p payload, rb *recordBuilder) result {
	src, res, ok := s.authenticate(r, p.WriteKey)
	if !ok {
		return res
	}
	receivedAt := s.now().UTC()
	signals := s.signals(r)
	signals.TrustContextIP = src.TrustContextIP
	signals.ServerSource = src.IsServer()
	// The batch context goes into every event: it gets the per-event limits
	// once here, and each event's size is checked again with it merged.
	if len(p.Context) > s.cfg.HTTP.MaxEventBytes {
		return fail(http.StatusBadRequest, "context: is %d bytes, more than the event limit of %d", len(p.Context), s.cfg.HTTP.MaxEventBytes)
	}
	if err := s.shape.Check(p.Context); err != nil {
		return fail(http.StatusBadRequest, "context: %v", err)
	}
	batchCtx, err := parseBatchContext(p.Context)
	if err != nil {
		return fail(http.StatusBadRequest, "%v", err)
	}
	var rejected []Rejection
	rb.reset(s, p, src, receivedAt, signals)
	records := rb.ptrs
	for i := range p.Events {
		rec, reason, err := s.record(i, p, batchCtx, rb)
		if err != nil {
			rejected = append(rejected, Rejection{Index: i, Error: err.Error()})
			s.metrics.rejected.WithLabelValues(reason).Inc()
			continue
		}
		records = append(records, rec)
	}
	rb.ptrs = records
	if len(records) == 0 {
		if len(rejected) == 0 {
			return fail(http.StatusBadRequest, "batch: holds no event")
		}
		res := fail(http.StatusBadRequest, "no valid event in request")
		res.resp.Rejected = rejected
		return res
	}
	return s.admitAndProduce(src, records, rejected)
}

// Reasons an event is rejected, the values of the reason label.
const (
	reasonTooLarge = "too_large"
	reasonInvalid  = "invalid"
	// reasonOutOfTimeBounds: stamped further from its receipt than
	// http.max_event_age or http.max_future_skew allow.
	reasonOutOfTimeBounds = "out_of_time_bounds"
	reasonRateLimited     = "rate_limited"
	reasonOverloaded      = "overloaded"
	reasonProduceFailed   = "produce_failed"
)

// record validates the i-th event of the request and wraps it for the raw
// topic; reason classifies an error for the metrics.
func (s *Server) record(i int, p payload, batchCtx batchContext, rb *recordBuilder) (*kgo.Record, string, error) {
	be := &p.Events[i]
	raw := be.Raw
	if len(raw) > s.cfg.HTTP.MaxEventBytes {
		return nil, reasonTooLarge, fmt.Errorf("event is %d bytes, more than the limit of %d", len(raw), s.cfg.HTTP.MaxEventBytes)
	}
	// The shape limits, then the event (decoded already by the body's pass
	// where it could be).
	ev, err := be.Decode(s.shape, p.Type)
	if err != nil {
		return nil, reasonInvalid, err
	}
	own := len(ev.Context)
	if ev.Context, err = batchCtx.merge(ev.Context); err != nil {
		return nil, reasonInvalid, err
	}
	if size := len(raw) - own + len(ev.Context); size > s.cfg.HTTP.MaxEventBytes {
		return nil, reasonTooLarge, fmt.Errorf("event with the batch context is %d bytes, more than the limit of %d", size, s.cfg.HTTP.MaxEventBytes)
	}
	if err := ev.CorrectClock(p.SentAt, rb.receivedAt, s.cfg.HTTP.TimeBounds()); err != nil {
		if errors.Is(err, event.ErrOutOfTimeBounds) {
			return nil, reasonOutOfTimeBounds, err
		}
		return nil, reasonInvalid, err
	}
	if ev.MessageID == "" {
		ev.MessageID = event.NewID()
	}
	return rb.add(i, raw, &ev), "", nil
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate, max-age=0")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Expires", "0")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
