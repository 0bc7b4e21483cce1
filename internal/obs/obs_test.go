package obs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/testenv"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminEndpoints(t *testing.T) {
	var kafkaDown atomic.Bool
	reg := NewRegistry()
	admin := NewAdmin(config.Admin{Listen: "127.0.0.1:0"}, reg, slog.New(slog.NewTextHandler(io.Discard, nil)), map[string]Check{
		"kafka": func(context.Context) error {
			if kafkaDown.Load() {
				return errors.New("no broker answers")
			}
			return nil
		},
	})
	reg.MustRegister(admin.ReadinessGauge("test"))
	if err := admin.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := "http://" + admin.Addr()
	readyMetric := func() string {
		_, body := get(t, base+"/metrics")
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "test_ready ") {
				return strings.TrimPrefix(line, "test_ready ")
			}
		}
		return "absent"
	}

	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Errorf("/readyz before MarkStarted = %d %q, want 503 starting", code, body)
	}
	if got := readyMetric(); got != "0" {
		t.Errorf("test_ready before MarkStarted = %s, want 0", got)
	}
	admin.MarkStarted()
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz with every check passing = %d %q", code, body)
	}
	if got := readyMetric(); got != "1" {
		t.Errorf("test_ready when ready = %s, want 1", got)
	}
	kafkaDown.Store(true)
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "kafka: no broker answers") {
		t.Errorf("/readyz with kafka down = %d %q, want 503 naming the check", code, body)
	}
	if got := readyMetric(); got != "0" {
		t.Errorf("test_ready with kafka down = %s, want 0", got)
	}
	kafkaDown.Store(false)
	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_cpu_seconds_total") {
		t.Errorf("/metrics lacks the Go and process collectors: %d", code)
	}

	admin.Drain()
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("/readyz while draining = %d, want 503", code)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz while draining = %d, want 200 (alive, just not ready)", code)
	}
	if err := admin.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := admin.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("admin server still answers after Shutdown")
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	admin := NewAdmin(config.Admin{Listen: "127.0.0.1:0"}, NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err := admin.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryLints(t *testing.T) {
	testenv.LintMetrics(t, NewRegistry())
}
