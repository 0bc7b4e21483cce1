package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	readyTimeout = 30 * time.Second
	// stopTimeout is longer than the collector's own 15 s shutdown budget,
	// so a SIGKILL only comes when it has failed to stop by itself.
	stopTimeout = 20 * time.Second
)

// buildCollector builds ./collector into dir, so the figures are for the
// real binary with its real config loading and wiring.
func buildCollector(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "collector")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./collector")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./collector: %w\n%s", err, out)
	}
	return bin, nil
}

// collectorProc is the collector running as a child process.
type collectorProc struct {
	cmd       *exec.Cmd
	httpAddr  string
	adminAddr string
	log       *tailBuffer
	exited    chan struct{}
	waitErr   error
	stopOnce  sync.Once
}

// startCollector starts bin with the repository's config and overrides for
// the listen addresses, brokers, topics and log level, and waits for
// /readyz. Inherited COLLECTOR_* variables are dropped so only the config
// file and these overrides decide what runs.
func startCollector(ctx context.Context, bin, root string, brokers []string, rawTopic, consentTopic string) (*collectorProc, error) {
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &collectorProc{httpAddr: httpAddr, adminAddr: adminAddr, log: newTailBuffer(8 << 10), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "--config", "configs/collector.yaml")
	p.cmd.Dir = root
	p.cmd.Env = append(envWithout("COLLECTOR_"),
		"COLLECTOR_HTTP_LISTEN="+httpAddr,
		"COLLECTOR_ADMIN_LISTEN="+adminAddr,
		"COLLECTOR_KAFKA_BROKERS="+strings.Join(brokers, ","),
		"COLLECTOR_TOPICS_RAW_NAME="+rawTopic,
		"COLLECTOR_TOPICS_CONSENT_NAME="+consentTopic,
		"COLLECTOR_LOG_LEVEL=warn",
	)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// If this process dies without cleaning up, the kernel stops the child
	// rather than leaving it listening.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start collector: %w", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *collectorProc) pid() int { return p.cmd.Process.Pid }

// waitReady polls /readyz until it answers 200, the process exits, or
// readyTimeout passes.
func (p *collectorProc) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	url := "http://" + p.adminAddr + "/readyz"
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("collector exited before ready (%v); its log:\n%s", p.waitErr, p.log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
	return fmt.Errorf("collector not ready after %v; its log:\n%s", readyTimeout, p.log)
}

// stop sends SIGTERM and waits, then SIGKILL if it has not exited after
// stopTimeout. Safe to call more than once.
func (p *collectorProc) stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.waitErr = fmt.Errorf("killed after %v without stopping on SIGTERM", stopTimeout)
		}
	})
	return p.waitErr
}

// freeAddr picks a free port on 127.0.0.1 for the collector to listen on.
// Another process could take it before the collector does; on a bench
// machine that is rare enough to retry by hand.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func envWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// tailBuffer keeps the last size bytes written to it: the collector's log,
// shown only when something went wrong, without growing without bound.
type tailBuffer struct {
	mu   sync.Mutex
	size int
	buf  []byte
}

func newTailBuffer(size int) *tailBuffer { return &tailBuffer{size: size} }

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.size; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
