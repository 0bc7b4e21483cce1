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
	"time"

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

// brokerErr is what a dependency's check says: an address and a user,
// which only the log may show.
const brokerErr = "dial tcp 10.1.2.3:9093: connection refused (user collector)"

func TestAdminEndpoints(t *testing.T) {
	var kafkaDown atomic.Bool
	reg := NewRegistry()
	logs := &testenv.LogBuffer{}
	admin := NewAdmin(config.Admin{Listen: "127.0.0.1:0"}, reg, slog.New(slog.NewTextHandler(logs, nil)), map[string]Check{
		"kafka": func(context.Context) error {
			if kafkaDown.Load() {
				return errors.New(brokerErr)
			}
			return nil
		},
	})
	reg.MustRegister(admin.ReadinessGauge("test"))
	if err := admin.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := "http://" + admin.Addr()
	metric := func(series string) string {
		_, body := get(t, base+"/metrics")
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				return v
			}
		}
		return "absent"
	}
	readyMetric := func() string { return metric("test_ready") }
	checkMetric := func() string { return metric(`test_ready_check{check="kafka"}`) }

	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || body != "not ready\n" {
		t.Errorf("/readyz before MarkStarted = %d %q, want 503 \"not ready\"", code, body)
	}
	if got := readyMetric(); got != "0" {
		t.Errorf("test_ready before MarkStarted = %s, want 0", got)
	}
	admin.MarkStarted()
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz with every check passing = %d %q", code, body)
	}
	if got := readyMetric(); got != "1" {
		t.Errorf("test_ready when ready = %s, want 1", got)
	}
	if got := checkMetric(); got != "1" {
		t.Errorf("test_ready_check{check=kafka} when it passes = %s, want 1", got)
	}

	// Kafka down: the probe learns only "not ready"; the log says why,
	// once however often it is probed, and the per-check gauge says which.
	kafkaDown.Store(true)
	for range 5 {
		if code, body := get(t, base+"/readyz"); code != 503 || body != "not ready\n" {
			t.Errorf("/readyz with kafka down = %d %q, want 503 \"not ready\" and no dependency error", code, body)
		}
	}
	if got := readyMetric(); got != "0" {
		t.Errorf("test_ready with kafka down = %s, want 0", got)
	}
	if got := checkMetric(); got != "0" {
		t.Errorf("test_ready_check{check=kafka} with kafka down = %s, want 0", got)
	}
	if n := strings.Count(logs.String(), "readiness check failing"); n != 1 || !strings.Contains(logs.String(), brokerErr) || !strings.Contains(logs.String(), "check=kafka") {
		t.Errorf("after 6 probes with kafka down, the log has %d failures logged, want 1 with the check's name and error:\n%s", n, logs)
	}
	kafkaDown.Store(false)
	get(t, base+"/readyz")
	if !strings.Contains(logs.String(), "readiness check passing again") {
		t.Errorf("the log does not say the check passes again:\n%s", logs)
	}
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

// TestReadinessLogRepeats checks a check that keeps failing is logged
// again after failingLogEvery, not at every probe.
func TestReadinessLogRepeats(t *testing.T) {
	logs := &testenv.LogBuffer{}
	admin := NewAdmin(config.Admin{Listen: "127.0.0.1:0"}, NewRegistry(), slog.New(slog.NewTextHandler(logs, nil)), map[string]Check{
		"kafka": func(context.Context) error { return errors.New(brokerErr) },
	})
	now := time.Unix(1_700_000_000, 0)
	admin.now = func() time.Time { return now }
	admin.MarkStarted()
	probe := func(n int) {
		for range n {
			if admin.ready(context.Background()) {
				t.Fatal("ready with a failing check")
			}
		}
	}
	probe(10)
	now = now.Add(failingLogEvery - time.Second)
	probe(10)
	if got := strings.Count(logs.String(), "readiness check"); got != 1 {
		t.Errorf("%d lines within a minute of failing, want 1:\n%s", got, logs)
	}
	now = now.Add(time.Second)
	probe(10)
	if got := strings.Count(logs.String(), "readiness check still failing"); got != 1 {
		t.Errorf("%d \"still failing\" lines after a minute, want 1:\n%s", got, logs)
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	admin := NewAdmin(config.Admin{Listen: "127.0.0.1:0"}, NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err := admin.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryLints(t *testing.T) {
	reg := NewRegistry()
	admin := NewAdmin(config.Admin{Listen: "127.0.0.1:0"}, reg, slog.New(slog.NewTextHandler(io.Discard, nil)), map[string]Check{
		"kafka": func(context.Context) error { return nil },
	})
	reg.MustRegister(admin.ReadinessGauge("test"))
	testenv.LintMetrics(t, reg)
}
