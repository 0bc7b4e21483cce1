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
//
// Files: server.go (lifecycle, routes, in-flight slots), handlers.go (the
// routes' handlers and their answers), body.go (reading bodies), request.go
// (decoding them), produce.go (records, rate limits, producing), edge.go
// (write keys, client signals and IP, CORS), consent.go (consent updates),
// config.go.
package ingest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
