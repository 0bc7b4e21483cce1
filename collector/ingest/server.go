// Package ingest is the collector's public HTTP API: it authenticates
// Segment-compatible requests by write key, validates each event, wraps it in
// an event.Envelope and produces it to events.raw.<region>.
//
// Delivery: a request is answered 200 only after Kafka acknowledged every
// accepted event of it (acks=all, idempotent producer). On a produce error or
// timeout the answer is 503 with Retry-After; a client retry may then
// duplicate events that did land, which messageId de-duplication downstream
// absorbs. Invalid events are listed in the response and never produced.
//
// Metrics: collector_http_requests_total{route,code},
// collector_events_total{outcome}, collector_produce_duration_seconds, and
// franz-go's client metrics under collector_.
package ingest

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
)

// Server is the collector component.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	client  *kgo.Client
	proxies []netip.Prefix
	http    *http.Server
	ln      net.Listener
	now     func() time.Time

	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds the collector from a validated config. It does not touch the
// network until Start.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Server, error) {
	client, err := kafkax.NewClient(&cfg.Kafka, reg, "collector", log,
		kgo.DefaultProduceTopic(cfg.Topics.Raw.Name),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(cfg.HTTP.ProduceTimeout),
	)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, metrics: newMetrics(reg), client: client, now: time.Now}
	for _, cidr := range cfg.TrustedProxies {
		s.proxies = append(s.proxies, netip.MustParsePrefix(cidr)) // validated
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/batch", s.handleBatch)
	s.http = &http.Server{
		Addr:              cfg.HTTP.Listen,
		Handler:           mux,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Start creates or checks the raw topic, then serves HTTP in the background.
func (s *Server) Start(ctx context.Context) error {
	if err := kafkax.EnsureTopics(ctx, s.client, []kafkax.TopicSpec{s.cfg.Topics.Raw}, s.log); err != nil {
		return fmt.Errorf("collector topics: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("collector listen %s: %w", s.cfg.HTTP.Listen, err)
	}
	s.ln = ln
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("ingest server stopped", "err", err)
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
		s.shutdownErr = errors.Join(errs...)
	})
	return s.shutdownErr
}

// Rejection names one event of a batch that was not accepted.
type Rejection struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

type response struct {
	Success  bool        `json:"success"`
	Error    string      `json:"error,omitempty"`
	Rejected []Rejection `json:"rejected,omitempty"`
}

// batchBody is Segment's /v1/batch request body.
type batchBody struct {
	Batch []json.RawMessage `json:"batch"`
}

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	code, resp := s.batch(r)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, resp)
	s.metrics.requests.WithLabelValues("batch", strconv.Itoa(code)).Inc()
}

func (s *Server) batch(r *http.Request) (int, response) {
	src, code, msg := s.authenticate(r)
	if code != http.StatusOK {
		return code, response{Error: msg}
	}
	body, err := readBody(r, s.cfg.HTTP.MaxRequestBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, response{Error: fmt.Sprintf("request body exceeds %d bytes", s.cfg.HTTP.MaxRequestBytes)}
		}
		return http.StatusBadRequest, response{Error: "read body: " + err.Error()}
	}
	var b batchBody
	if err := json.Unmarshal(body, &b); err != nil {
		return http.StatusBadRequest, response{Error: "invalid JSON: " + err.Error()}
	}
	if b.Batch == nil {
		return http.StatusBadRequest, response{Error: "batch: is required and must be an array of events"}
	}

	receivedAt := s.now().UTC()
	signals := s.signals(r)
	var rejected []Rejection
	records := make([]*kgo.Record, 0, len(b.Batch))
	for i, raw := range b.Batch {
		rec, err := s.record(raw, src, receivedAt, signals)
		if err != nil {
			rejected = append(rejected, Rejection{Index: i, Error: err.Error()})
			continue
		}
		records = append(records, rec)
	}
	s.metrics.events.WithLabelValues("rejected").Add(float64(len(rejected)))
	if len(records) == 0 {
		return http.StatusBadRequest, response{Error: "no valid event in batch", Rejected: rejected}
	}

	// Detached from the request: a client that hangs up must not cancel
	// half a batch; the produce timeout still bounds the wait.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.HTTP.ProduceTimeout)
	defer cancel()
	start := time.Now()
	if err := s.client.ProduceSync(ctx, records...).FirstErr(); err != nil {
		s.metrics.events.WithLabelValues("failed").Add(float64(len(records)))
		s.log.Warn("produce failed; answering 503", "source", src, "events", len(records), "err", err)
		return http.StatusServiceUnavailable, response{Error: "events not stored, retry later: " + err.Error(), Rejected: rejected}
	}
	s.metrics.produceDuration.Observe(time.Since(start).Seconds())
	s.metrics.events.WithLabelValues("accepted").Add(float64(len(records)))
	return http.StatusOK, response{Success: true, Rejected: rejected}
}

// record validates one event of a batch and wraps it for the raw topic.
func (s *Server) record(raw json.RawMessage, source string, receivedAt time.Time, signals event.Signals) (*kgo.Record, error) {
	if len(raw) > s.cfg.HTTP.MaxEventBytes {
		return nil, fmt.Errorf("event is %d bytes, more than the limit of %d", len(raw), s.cfg.HTTP.MaxEventBytes)
	}
	ev, err := event.DecodeEvent(raw)
	if err != nil {
		return nil, err
	}
	if ev.MessageID == "" {
		ev.MessageID = newMessageID()
	}
	value, err := json.Marshal(event.Envelope{
		SchemaVersion: event.SchemaVersion,
		MessageID:     ev.MessageID,
		ReceivedAt:    receivedAt,
		SourceID:      source,
		Region:        s.cfg.Region,
		Signals:       signals,
		Event:         ev,
	})
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return &kgo.Record{Key: []byte(ev.PartitionKey()), Value: value}, nil
}

// authenticate finds the source whose write key is the Basic username. Every
// key is compared in constant time, and the loop never exits early, so the
// time taken says nothing about which key nearly matched.
func (s *Server) authenticate(r *http.Request) (source string, code int, msg string) {
	key, _, ok := r.BasicAuth()
	if !ok || key == "" {
		return "", http.StatusUnauthorized, "missing write key (send it as the HTTP Basic username)"
	}
	var match *Source
	for i := range s.cfg.Sources {
		src := &s.cfg.Sources[i]
		if subtle.ConstantTimeCompare([]byte(key), []byte(src.WriteKey.Reveal())) == 1 {
			match = src
		}
	}
	switch {
	case match == nil:
		return "", http.StatusUnauthorized, "unknown write key"
	case match.Disabled:
		return "", http.StatusForbidden, "source is disabled"
	}
	return match.Name, http.StatusOK, ""
}

func (s *Server) signals(r *http.Request) event.Signals {
	return event.Signals{
		DNT:       r.Header.Get("DNT") == "1",
		GPC:       r.Header.Get("Sec-GPC") == "1",
		IP:        s.clientIP(r),
		UserAgent: r.UserAgent(),
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

// readBody reads at most limit bytes of the body, after gzip decoding when
// the request says so, so a small compressed bomb cannot expand past limit.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	var body io.Reader = http.MaxBytesReader(nil, r.Body, limit)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		body = http.MaxBytesReader(nil, zr, limit)
	}
	return io.ReadAll(body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// newMessageID returns a random UUID (version 4) for events sent without a
// messageId.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
