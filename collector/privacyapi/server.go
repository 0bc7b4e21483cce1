package privacyapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/consentflow/consentflow/collector/ingest"
)

// maxHeaderBytes bounds a request's headers: an operator's request has a
// bearer token and little else.
const maxHeaderBytes = 16 << 10

// Server is the privacy API's HTTP server: API.Routes on a listener of
// their own (privacy.listen).
type Server struct {
	cfg      ingest.Privacy
	log      *slog.Logger
	srv      *http.Server
	tls      *tls.Config // nil: plaintext
	off      bool
	ln       net.Listener
	done     chan error
	stopOnce sync.Once
	stopErr  error
}

// New builds the server for routes (ServeMux pattern -> handler), from a
// validated config. It listens only at Start.
func New(cfg ingest.Privacy, routes map[string]http.Handler, log *slog.Logger) (*Server, error) {
	tlsCfg, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("privacy api tls: %w", err)
	}
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.Handle(pattern, h)
	}
	return &Server{
		cfg: cfg,
		log: log,
		tls: tlsCfg,
		off: len(cfg.Operators) == 0,
		srv: &http.Server{
			Addr:              cfg.Listen,
			Handler:           mux,
			TLSConfig:         tlsCfg,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		done: make(chan error, 1),
	}, nil
}

// Start listens and serves in the background; with no operators it does
// nothing.
func (s *Server) Start(context.Context) error {
	if s.off {
		s.log.Info("privacy API off: no privacy.operators")
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("privacy api listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.done <- fmt.Errorf("privacy api server: %w", err)
		}
	}()
	s.log.Info("privacy API listening", "addr", s.ln.Addr().String(), "tls", s.tls != nil, "client_certificates", s.tls != nil && s.tls.ClientCAs != nil)
	return nil
}

// Addr is the address the server listens on (useful with port 0), or ""
// before Start and when the API is off.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Ready is always nil: the API answers whatever Kafka does (its handlers
// answer 503 when they cannot do their work), and the collector's
// readiness is about the public API.
func (s *Server) Ready(context.Context) error { return nil }

// Done yields the server's error if it stops on its own, so the process
// exits rather than stay up without the privacy API.
func (s *Server) Done() <-chan error { return s.done }

// Shutdown stops accepting requests and waits for those in flight. It is
// idempotent and safe without Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		if s.ln != nil {
			s.stopErr = s.srv.Shutdown(ctx)
		}
	})
	return s.stopErr
}
