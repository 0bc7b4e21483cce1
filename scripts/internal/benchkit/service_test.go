package benchkit

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for a service: started by
// StartService as "fake", it finds FAKE_ADMIN_LISTEN, answers /readyz
// there and exits 0 on SIGTERM, or given FAIL=1 exits 3 at once. Started
// as the collector, enricher or sink (StartPipeline's tests), it first
// writes its arguments and environment to a file in BENCHKIT_FAKE_DIR.
func TestMain(m *testing.M) {
	for _, name := range []string{"SINK", "ENRICHER", "COLLECTOR"} {
		if addr := os.Getenv(name + "_ADMIN_LISTEN"); addr != "" && os.Getenv("BENCHKIT_FAKE_DIR") != "" {
			fakeService(name, addr)
		}
	}
	if addr := os.Getenv("FAKE_ADMIN_LISTEN"); addr != "" {
		if os.Getenv("FAKE_FAIL") != "" {
			os.Stderr.WriteString("fake: failing as asked\n")
			os.Exit(3)
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		mux := http.NewServeMux()
		mux.HandleFunc("/readyz", func(http.ResponseWriter, *http.Request) {})
		go func() { _ = http.ListenAndServe(addr, mux) }()
		<-sig
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeService records how it was started, as <name>-<pid>.env (its
// arguments, then its environment, a line each), and serves /readyz on
// addr until SIGTERM.
func fakeService(name, addr string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	record := strings.Join(append(os.Args[1:], os.Environ()...), "\n")
	file := filepath.Join(os.Getenv("BENCHKIT_FAKE_DIR"), fmt.Sprintf("%s-%d.env", strings.ToLower(name), os.Getpid()))
	if err := os.WriteFile(file, []byte(record), 0o600); err != nil {
		os.Exit(4)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(http.ResponseWriter, *http.Request) {})
	go func() { _ = http.ListenAndServe(addr, mux) }()
	<-sig
	os.Exit(0)
}

func TestServiceStartsReadiesAndStops(t *testing.T) {
	t.Setenv("FAKE_FAIL", "1") // inherited FAKE_* variables are not passed on
	svc, err := StartService(os.Args[0], t.TempDir(), "fake")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.WaitReady(context.Background()); err != nil {
		_ = svc.Stop()
		t.Fatal(err)
	}
	if err := svc.Alive(); err != nil {
		t.Errorf("Alive: %v", err)
	}
	if rss, err := PeakRSS(svc.PID()); err != nil || rss <= 0 {
		t.Errorf("PeakRSS of the service = %d, %v", rss, err)
	}
	if err := svc.Stop(); err != nil {
		t.Errorf("Stop after SIGTERM and exit 0: %v", err)
	}
	if err := svc.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestServiceThatExitsIsReportedWithItsLog(t *testing.T) {
	start := time.Now()
	svc, err := StartService(os.Args[0], t.TempDir(), "fake", "FAIL=1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.WaitReady(context.Background())
	if err == nil || !strings.Contains(err.Error(), "fake exited before ready") || !strings.Contains(err.Error(), "failing as asked") {
		t.Errorf("WaitReady = %v; want the exit and the log", err)
	}
	if time.Since(start) > ReadyTimeout/2 {
		t.Errorf("WaitReady took %v to see the exit", time.Since(start))
	}
	if err := svc.Alive(); err == nil {
		t.Error("Alive after the exit: no error")
	}
	if err := svc.Stop(); err == nil || !strings.Contains(err.Error(), "had exited") {
		t.Errorf("Stop = %v; want an error: it had exited by itself", err)
	}
}
