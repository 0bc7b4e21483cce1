// Package obs holds what every service shares for operations: the metrics
// registry, the structured logger, and the admin HTTP server with /metrics,
// /healthz and /readyz.
//
// /readyz answers only 200 "ready" or 503 "not ready": the port is reached
// by probes and Prometheus, and a dependency's error (a broker's address,
// a user name) is no business of theirs. Why a check fails goes to the log,
// when it starts failing, at most once a minute while it fails, and when
// it passes again, and to the metrics.
//
// Metrics: NewRegistry registers the Go and process collectors; components
// add their own through the registry they are given. ReadinessGauge is
// <service>_ready and <service>_ready_check{check}, one series per
// readiness check the service wires (a fixed set).
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
	names    []string // of checks, sorted
	started  atomic.Bool
	draining atomic.Bool
	stopOnce sync.Once
	stopErr  error

	mu      sync.Mutex
	results map[string]*checkResult // by check name
	now     func() time.Time
}

// checkResult is what a readiness check said last, for the log and the
// per-check gauge.
type checkResult struct {
	run    bool   // it has run at least once
	failed string // its error, "" when it passed
	logged time.Time
}

// checkTimeout bounds one /readyz probe so a hung dependency reads as not ready.
const checkTimeout = 2 * time.Second

// failingLogEvery is how often a check that keeps failing is logged again.
const failingLogEvery = time.Minute

// Admin server timeouts: its requests are small GETs.
const (
	adminReadHeaderTimeout = 5 * time.Second
	adminReadTimeout       = 10 * time.Second
	adminWriteTimeout      = 30 * time.Second
	adminIdleTimeout       = 60 * time.Second
)

// NewAdmin builds the admin server; checks are run on every /readyz request
// and scrape. Their names label <service>_ready_check: fixed names such as
// "kafka", never a value from outside.
func NewAdmin(cfg config.Admin, gatherer prometheus.Gatherer, log *slog.Logger, checks map[string]Check) *Admin {
	mux := http.NewServeMux()
	a := &Admin{log: log, checks: checks, mux: mux, results: map[string]*checkResult{}, now: time.Now}
	for name := range checks {
		a.names = append(a.names, name)
		a.results[name] = &checkResult{}
	}
	slices.Sort(a.names)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	a.srv = &http.Server{
		Addr:              cfg.Listen,
		Handler:           mux,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return a
}

// readyz says ready or not, and nothing of why (see the package doc).
func (a *Admin) readyz(w http.ResponseWriter, r *http.Request) {
	if !a.ready(r.Context()) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// ready is /readyz's verdict. It runs the checks only once started and
// until draining: before Start a component's check may not be safe to run.
func (a *Admin) ready(ctx context.Context) bool {
	if a.draining.Load() || !a.started.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	ok := true
	for _, name := range a.names {
		err := a.checks[name](ctx)
		a.record(name, err)
		ok = ok && err == nil
	}
	return ok
}

// record keeps a check's result and logs a change: failing (with the
// error), failing still (at most every failingLogEvery), passing again.
func (a *Admin) record(name string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, now := a.results[name], a.now()
	switch {
	case err == nil:
		if r.failed != "" {
			a.log.Info("readiness check passing again", "check", name)
		}
		r.failed = ""
	case r.failed == "":
		r.failed, r.logged = err.Error(), now
		a.log.Warn("readiness check failing", "check", name, "err", err)
	default:
		r.failed = err.Error()
		if now.Sub(r.logged) >= failingLogEvery {
			r.logged = now
			a.log.Warn("readiness check still failing", "check", name, "err", err)
		}
	}
	r.run = true
}

// checkPassed reports whether the check passed when it last ran (false if
// it never has).
func (a *Admin) checkPassed(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.results[name]
	return r.run && r.failed == ""
}

// ReadinessGauge is <service>_ready: 1 when /readyz would answer 200, 0
// otherwise, evaluated at each scrape, so alerts see what a load balancer
// sees; and <service>_ready_check{check}: whether each check passed when
// it last ran. Register it in the service's registry.
func (a *Admin) ReadinessGauge(service string) prometheus.Collector {
	return &readiness{
		a: a,
		ready: prometheus.NewDesc(service+"_ready",
			"1 when the service is ready (/readyz answers 200: started, dependencies answering, not shutting down), else 0.", nil, nil),
		check: prometheus.NewDesc(service+"_ready_check",
			"1 when the readiness check passed when it last ran (at /readyz or a scrape), else 0; why it fails is in the service's log.", []string{"check"}, nil),
	}
}

// readiness is the collector ReadinessGauge returns: one run of the checks
// per scrape gives both gauges.
type readiness struct {
	a            *Admin
	ready, check *prometheus.Desc
}

func (r *readiness) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.ready
	ch <- r.check
}

func (r *readiness) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	if r.a.ready(context.Background()) {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(r.ready, prometheus.GaugeValue, v)
	for _, name := range r.a.names {
		v := 0.0
		if r.a.checkPassed(name) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(r.check, prometheus.GaugeValue, v, name)
	}
}

// Handle adds a route to the admin server, such as the enricher's
// catalogue violations, with a net/http ServeMux pattern ("GET
// /catalogue/violations"). Call it before Start; like ServeMux.Handle it
// panics on a pattern that is invalid or already registered (/metrics,
// /healthz and /readyz are). Routes added here share the admin listener
// and its timeouts, are not gated by /readyz, and are reached by whoever
// reaches /metrics: nothing that needs a secret or returns personal data
// belongs here (the collector's privacy API has its own listener).
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
