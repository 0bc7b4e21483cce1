// Package obs holds what every service shares for operations: the metrics
// registry, the structured logger, and the admin HTTP server with /metrics,
// /healthz and /readyz.
//
// Metrics: NewRegistry registers the Go and process collectors; components
// add their own through the registry they are given.
package obs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/consentflow/consentflow/internal/config"
)

// NewRegistry returns a fresh registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// NewLogger returns a slog logger writing to w as cfg says, tagged with the
// service name.
func NewLogger(cfg config.Log, service string, w io.Writer) *slog.Logger {
	level, _ := cfg.SlogLevel() // validated with the config
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if strings.EqualFold(cfg.Format, "text") {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("service", service)
}

// Check reports whether one dependency is usable; nil means yes.
type Check func(ctx context.Context) error

// Admin is the operational HTTP server. /healthz answers 200 while the
// process serves; /readyz answers 200 only after MarkStarted, while every
// readiness check passes, and until shutdown begins.
type Admin struct {
	log      *slog.Logger
	srv      *http.Server
	mux      *http.ServeMux
	ln       net.Listener
	checks   map[string]Check
	started  atomic.Bool
	draining atomic.Bool
	stopOnce sync.Once
	stopErr  error
}

// checkTimeout bounds one /readyz probe so a hung dependency reads as not ready.
const checkTimeout = 2 * time.Second

// NewAdmin builds the admin server; checks are run on every /readyz request.
func NewAdmin(cfg config.Admin, gatherer prometheus.Gatherer, log *slog.Logger, checks map[string]Check) *Admin {
	mux := http.NewServeMux()
	a := &Admin{log: log, checks: checks, mux: mux}
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	a.srv = &http.Server{
		Addr:              cfg.Listen,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	return a
}

func (a *Admin) readyz(w http.ResponseWriter, r *http.Request) {
	if err := a.ready(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// ready is /readyz's verdict: nil when ready.
func (a *Admin) ready(ctx context.Context) error {
	switch {
	case a.draining.Load():
		return errors.New("shutting down")
	case !a.started.Load():
		return errors.New("starting")
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var failed []string
	for name, check := range a.checks {
		if err := check(ctx); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		return errors.New("not ready: " + strings.Join(failed, "; "))
	}
	return nil
}

// ReadinessGauge is <service>_ready: 1 when /readyz would answer 200, 0
// otherwise, evaluated at each scrape, so alerts see what a load balancer
// sees. Register it in the service's registry.
func (a *Admin) ReadinessGauge(service string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: service + "_ready",
		Help: "1 when the service is ready (/readyz answers 200: started, dependencies answering, not shutting down), else 0.",
	}, func() float64 {
		if a.ready(context.Background()) != nil {
			return 0
		}
		return 1
	})
}

// Handle adds a route to the admin server, such as the collector's privacy
// API, with a net/http ServeMux pattern ("POST /v1/privacy/erasures"). Call
// it before Start; like ServeMux.Handle it panics on a pattern that is
// invalid or already registered (/metrics, /healthz and /readyz are).
// Routes added here share the admin listener and its timeouts, and are not
// gated by /readyz.
func (a *Admin) Handle(pattern string, h http.Handler) {
	a.mux.Handle(pattern, h)
}

// Start listens and serves in the background.
func (a *Admin) Start(context.Context) error {
	ln, err := net.Listen("tcp", a.srv.Addr)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", a.srv.Addr, err)
	}
	a.ln = ln
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin server stopped", "err", err)
		}
	}()
	a.log.Info("admin server listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the address the server listens on (useful with port 0).
func (a *Admin) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// MarkStarted lets /readyz pass once the service's component has started:
// the admin server comes up first so /metrics and /healthz cover start-up.
func (a *Admin) MarkStarted() { a.started.Store(true) }

// Drain makes /readyz fail so load balancers stop sending work, before the
// rest of the service shuts down.
func (a *Admin) Drain() { a.draining.Store(true) }

// Shutdown stops the server. It is idempotent and safe without Start.
func (a *Admin) Shutdown(ctx context.Context) error {
	a.Drain()
	a.stopOnce.Do(func() {
		if a.ln != nil {
			a.stopErr = a.srv.Shutdown(ctx)
		}
	})
	return a.stopErr
}
