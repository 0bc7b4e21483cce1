package privacyapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/consentflow/consentflow/collector/ingest"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// serverConfig is the default privacy block with one operator on a free port.
func serverConfig() ingest.Privacy {
	cfg := ingest.Default().Privacy
	cfg.Listen = "127.0.0.1:0"
	cfg.Operators = []ingest.Operator{{Name: "dpo"}}
	return cfg
}

func TestServerTakesTheConfiguredTimeouts(t *testing.T) {
	cfg := serverConfig()
	cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout = time.Second, 2*time.Second, 3*time.Second, 4*time.Second
	s, err := New(cfg, nil, discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := [4]time.Duration{s.srv.ReadHeaderTimeout, s.srv.ReadTimeout, s.srv.WriteTimeout, s.srv.IdleTimeout}; got != [4]time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second} {
		t.Errorf("server timeouts (read header, read, write, idle) = %v, want privacy.*_timeout's", got)
	}
	if s.srv.MaxHeaderBytes != maxHeaderBytes {
		t.Errorf("MaxHeaderBytes = %d, want %d", s.srv.MaxHeaderBytes, maxHeaderBytes)
	}
}

func TestStartServeShutdown(t *testing.T) {
	s, err := New(serverConfig(), map[string]http.Handler{"GET /v1/privacy/erasures/{id}": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr() + "/v1/privacy/erasures/r1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Errorf("route answered %d, want its handler's 418", resp.StatusCode)
	}
	for range 2 {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}
	if _, err := http.Get("http://" + s.Addr() + "/v1/privacy/erasures/r1"); err == nil {
		t.Error("still answers after Shutdown")
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	s, err := New(serverConfig(), nil, discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
