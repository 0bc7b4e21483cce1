// Package ingest is the collector's public HTTP API, compatible with the
// Segment Tracking API: it authenticates requests by write key, validates
// each event, wraps it in an event.Envelope and produces it to
// events.raw.<region>; consent updates go to the compacted privacy.consent
// topic, if their source may say them (consent.go: who may say what,
// judged against the consent in force, which the collector follows).
//
// Routes: POST /v1/batch, /v1/track, /v1/identify, /v1/page, /v1/screen,
// /v1/group, /v1/alias, /v1/consent; GET /v1/pixel and /v1/redirect; CORS
// preflight on all of them. The privacy admin API (collector/privacyapi)
// writes through Produce and reads the consent the server follows
// (ConsentStore, WaitConsent).
//
// Delivery: a request is answered 200 only after Kafka acknowledged every
// accepted event of it (acks=all, idempotent producer). On a produce error
// or timeout the answer is 503 with Retry-After; when the producer's buffer
// is full the answer is 503 at once. A client retry may then duplicate
// events that did land; the enricher drops copies with the same source and
// messageId within its de-duplication window. Invalid events are listed in the response
// and never produced.
//
// Slow clients (body.go): a request takes an in-flight slot
// (http.max_in_flight_requests) only once its body is read; a body has
// http.body_timeout to arrive, and the bodies held at once are bounded
// by http.max_body_memory_bytes.
//
// Events and consent updates stamped further from their receipt than
// http.max_event_age or http.max_future_skew are refused; events carry
// their source's trust (signals.serverSource) to the enricher.
//
// Metrics: collector_http_requests_total{route,code},
// collector_http_request_duration_seconds{route},
// collector_http_requests_in_flight, collector_http_request_body_bytes{route},
// collector_http_body_memory_bytes, collector_http_bodies_cut_total{reason},
// collector_events_accepted_total, collector_events_rejected_total{reason},
// collector_produce_duration_seconds,
// collector_consent_updates_refused_total{reason}, the consent store's
// collector_consent_* metrics, and franz-go's client metrics under
// collector_.
package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/obs"
)

var _ obs.Component = (*Server)(nil)

// Server is the collector component.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	client  *kgo.Client
	sources []*source
	// consent judges consent updates by who may say what.
	consent *consentGate
	proxies []netip.Prefix
	shape   event.Shape
	// slots holds a token per request being served, once its body is read
	// (http.max_in_flight_requests).
	slots chan struct{}
	// bodies bounds the bytes of request bodies held (http.max_body_memory_bytes).
	bodies bodyBudget
	// reserved counts events handed to the producer and not yet acknowledged.
	reserved atomic.Int64
	http     *http.Server
	ln       net.Listener
	now      func() time.Time
	done     chan error // the HTTP server's error if it stops on its own

	shutdownOnce sync.Once
	shutdownErr  error
}

// source is a configured source with its rate limiter (nil: unlimited).
type source struct {
	Source
	// keyHash is what requests are compared against: hashes are all the
	// same length, so the comparison's time does not reveal the key's.
	keyHash [sha256.Size]byte
	limiter *rate.Limiter
}

// New builds the collector from a validated config. It does not touch the
// network until Start.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Server, error) {
	client, err := kafkax.NewClient(&cfg.Kafka, reg, "collector", log,
		kgo.DefaultProduceTopic(cfg.Topics.Raw.Name),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// lz4 over zstd: the collector is CPU-bound, and raw events live hours.
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		// No linger: every request already waits for its acknowledgement, so
		// holding batches open only adds to its latency; under load,
		// requests in flight fill the batches anyway.
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(cfg.HTTP.ProduceTimeout),
		// produce reserves room below this itself; the margin keeps the
		// client's own limit from ever refusing a reserved record.
		kgo.MaxBufferedRecords(2*cfg.HTTP.MaxBufferedRecords),
	)
	if err != nil {
		return nil, err
	}
	m := newMetrics(reg)
	s := &Server{
		cfg:     cfg,
		log:     log,
		metrics: m,
		client:  client,
		shape:   event.Shape{MaxDepth: cfg.HTTP.MaxJSONDepth, MaxKeys: cfg.HTTP.MaxJSONKeys},
		slots:   make(chan struct{}, cfg.HTTP.MaxInFlightRequests),
		done:    make(chan error, 1),
		now:     time.Now,
		bodies:  bodyBudget{limit: cfg.HTTP.MaxBodyMemoryBytes, gauge: m.bodyMemory},
	}
	for _, src := range cfg.Sources {
		s.sources = append(s.sources, &source{Source: src, keyHash: sha256.Sum256([]byte(src.WriteKey.Reveal())), limiter: newLimiter(src.RateLimit)})
	}
	if s.consent, err = newConsentGate(&s.cfg, reg, log); err != nil {
		client.Close()
		return nil, err
	}
	for _, cidr := range cfg.TrustedProxies {
		s.proxies = append(s.proxies, netip.MustParsePrefix(cidr)) // validated
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/batch", s.route("batch", s.handleEvents("batch", func(body []byte, sc *scratch) (payload, error) {
		return decodeBatch(body, s.shape, &sc.batch)
	})))
	for _, typ := range event.Types {
		mux.Handle("POST /v1/"+typ, s.route(typ, s.handleEvents(typ, func(body []byte, _ *scratch) (payload, error) {
			return decodeSingle(body, typ, s.shape)
		})))
	}
	mux.Handle("POST /v1/consent", s.route("consent", s.handleConsent))
	mux.Handle("GET /v1/pixel", s.route("pixel", s.slotted(s.handlePixel)))
	mux.Handle("GET /v1/redirect", s.route("redirect", s.slotted(s.handleRedirect)))
	mux.Handle("/", s.route("other", s.slotted(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, response{Error: fmt.Sprintf("no route %s %s (see the API reference in README.md)", r.Method, r.URL.Path)})
	})))
	s.http = &http.Server{
		Addr:              cfg.HTTP.Listen,
		Handler:           s.cors(mux),
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

func newLimiter(rl RateLimit) *rate.Limiter {
	if rl.EventsPerSecond == 0 {
		return nil
	}
	burst := rl.Burst
	if burst == 0 {
		// At least a full SDK batch (analytics-go flushes 250), or a
		// low-rate source could never send one.
		burst = max(int(math.Ceil(rl.EventsPerSecond)), 500)
	}
	return rate.NewLimiter(rate.Limit(rl.EventsPerSecond), burst)
}

// Start creates or checks the topics, then serves HTTP in the background.
func (s *Server) Start(ctx context.Context) error {
	// The privacy API's own topics are its to ensure (collector/privacyapi).
	owned := []kafkax.TopicSpec{s.cfg.Topics.Raw, s.cfg.Topics.Consent, s.cfg.Topics.Erasures}
	if err := kafkax.EnsureTopics(ctx, s.client, owned, nil, s.log); err != nil {
		return fmt.Errorf("collector topics: %w", err)
	}
	if err := s.consent.follower.Start(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("collector listen %s: %w", s.cfg.HTTP.Listen, err)
	}
	s.ln = ln
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.done <- fmt.Errorf("ingest server: %w", err)
		}
	}()
	s.log.Info("ingest server listening", "addr", ln.Addr().String(), "topic", s.cfg.Topics.Raw.Name)
	return nil
}

// Addr is the address the ingest server listens on (useful with port 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Ready reports whether Kafka answers.
func (s *Server) Ready(ctx context.Context) error { return s.client.Ping(ctx) }

// Done yields the HTTP server's error if it stops on its own, so the
// process exits rather than stay up and ready with no listener.
func (s *Server) Done() <-chan error { return s.done }

// Shutdown stops accepting requests, waits for those in flight (each bounded
// by the produce timeout), flushes the producer and closes the client. It is
// idempotent and safe without Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		var errs []error
		if s.ln != nil {
			errs = append(errs, s.http.Shutdown(ctx))
		}
		errs = append(errs, s.client.Flush(ctx))
		s.client.Close()
		errs = append(errs, s.consent.follower.Shutdown(ctx))
		s.shutdownErr = errors.Join(errs...)
	})
	return s.shutdownErr
}

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

// route counts and times every request of one route. Its handler takes
// an in-flight slot itself (enter), once the request is read.
func (s *Server) route(name string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		s.metrics.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
		s.metrics.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

// slotted serves h, a route without a body, in an in-flight slot.
func (s *Server) slotted(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.enter(w) {
			return
		}
		defer s.leave()
		h(w, r)
	}
}

// enter takes an in-flight slot (http.max_in_flight_requests), or
// answers 503 at once and returns false. A request enters once it is
// read whole, body included: a client that sends its body slowly, or
// never, must not hold a slot while it does, or a few hundred such
// connections would lock every other client out.
func (s *Server) enter(w http.ResponseWriter) bool {
	select {
	case s.slots <- struct{}{}:
		s.metrics.inFlight.Inc()
		return true
	default:
		res := fail(http.StatusServiceUnavailable, "the collector is serving %d requests already, retry later", cap(s.slots))
		res.retryAfter = time.Second
		res.write(w)
		return false
	}
}

// leave gives back the slot enter took.
func (s *Server) leave() {
	s.metrics.inFlight.Dec()
	<-s.slots
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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

// authenticate finds the source whose write key the request carries: the
// HTTP Basic username (Segment's server SDKs) or else writeKey in the body
// (its browser library). Every key is compared in constant time and the
// loop never exits early, so timing says nothing about near misses.
func (s *Server) authenticate(r *http.Request, bodyKey string) (*source, result, bool) {
	key, _, ok := r.BasicAuth()
	if !ok || key == "" {
		key = bodyKey
	}
	if key == "" {
		return nil, fail(http.StatusUnauthorized, "missing write key (send it as the HTTP Basic username or as writeKey in the body)"), false
	}
	var match *source
	given := sha256.Sum256([]byte(key))
	for _, src := range s.sources {
		if subtle.ConstantTimeCompare(given[:], src.keyHash[:]) == 1 {
			match = src
		}
	}
	switch {
	case match == nil:
		return nil, fail(http.StatusUnauthorized, "unknown write key"), false
	case !match.IsEnabled():
		return nil, fail(http.StatusForbidden, "source %q is disabled", match.Name), false
	}
	return match, result{}, true
}

func (s *Server) signals(r *http.Request) event.Signals {
	// Copied into every event of the request: a 30 KB User-Agent times a
	// batch of small events would multiply the request's size.
	ua, cut := event.CapUserAgent(r.UserAgent())
	if cut {
		ua = strings.ToValidUTF8(ua, "")
	}
	return event.Signals{
		// Canonical spellings: Get would allocate to canonicalize others.
		DNT:       r.Header.Get("Dnt") == "1",
		GPC:       r.Header.Get("Sec-Gpc") == "1",
		IP:        s.clientIP(r),
		UserAgent: ua,
	}
}

// clientIP is the TCP peer, or, when the peer is a trusted proxy, the
// right-most X-Forwarded-For hop that is not itself a trusted proxy. Hops
// left of that were written by the client and prove nothing.
func (s *Server) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	addr := peer.Addr().Unmap()
	if !s.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = hop.Unmap()
		if !s.trusted(addr) {
			break
		}
	}
	return addr.String()
}

func (s *Server) trusted(addr netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// cors answers preflight requests and marks responses readable by the
// allowed origins. A request from an origin not allowed is refused: browsers
// send some cross-origin POSTs without a preflight.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" {
			allowed := s.allowedOrigin(origin)
			if allowed == "" {
				writeJSON(w, http.StatusForbidden, response{Error: fmt.Sprintf("origin %q is not in cors.allowed_origins", origin)})
				return
			}
			w.Header().Set("Access-Control-Allow-Origin", allowed)
			w.Header().Set("Access-Control-Expose-Headers", "Retry-After")
			if allowed != "*" {
				w.Header().Add("Vary", "Origin")
			}
		}
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedOrigin is the Access-Control-Allow-Origin value for origin, or ""
// when it is not allowed.
func (s *Server) allowedOrigin(origin string) string {
	origins := s.cfg.CORS.AllowedOrigins
	switch {
	case len(origins) == 0 || slices.Contains(origins, "*"):
		return "*"
	case slices.Contains(origins, origin):
		return origin
	}
	return ""
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
