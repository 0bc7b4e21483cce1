package benchkit

import (
	"context"
	"errors"
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
	// ReadyTimeout bounds how long a service may take to answer /readyz.
	ReadyTimeout = 60 * time.Second
	// StopTimeout is longer than the services' own 15 s shutdown budget,
	// so a SIGKILL only comes when one has failed to stop by itself.
	StopTimeout = 20 * time.Second
)

// Build builds the commands pkgs (such as "./collector") of the
// repository at root into dir, so the figures are for the real binaries
// with their real config loading and wiring. It returns the binaries'
// paths, in the order of pkgs.
func Build(ctx context.Context, root, dir string, pkgs ...string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	bins := make([]string, len(pkgs))
	for i, p := range pkgs {
		bins[i] = filepath.Join(dir, filepath.Base(p))
	}
	return bins, nil
}

// Service is one of the repository's binaries running as a child process.
type Service struct {
	Name      string // collector, enricher or sink
	AdminAddr string // its admin listener: /readyz, /metrics
	// PrivacyAddr is the collector's privacy API listener (privacy.listen;
	// it listens only with privacy.operators), "" for the other services.
	PrivacyAddr string
	cmd         *exec.Cmd
	log         *tailBuffer
	exited      chan struct{}
	waitErr     error
	stopOnce    sync.Once
	stopErr     error
}

// StartService starts bin as service name (collector, enricher or sink)
// with its shipped config, configs/<name>.yaml relative to root, and env,
// the overrides KEY=value without the NAME_ prefix, which it adds. The
// admin listener, and the collector's privacy API, go to free 127.0.0.1
// ports. Inherited variables with
// the prefix are dropped, so only the config file and the overrides decide
// what runs. It does not wait for readiness: see WaitReady.
func StartService(bin, root, name string, env ...string) (*Service, error) {
	return StartServiceConfig(bin, root, name, filepath.Join("configs", name+".yaml"), env...)
}

// StartServiceConfig is StartService with the config file config (relative
// to root, or absolute) instead of configs/<name>.yaml: another shipped
// file of the same binary (configs/sink-intl.yaml), or a temporary copy
// changing what no environment variable can set (lists such as the
// collector's privacy.operators).
func StartServiceConfig(bin, root, name, config string, env ...string) (*Service, error) {
	adminAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	prefix := strings.ToUpper(name) + "_"
	s := &Service{Name: name, AdminAddr: adminAddr, log: &tailBuffer{size: 16 << 10}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "--config", config)
	s.cmd.Dir = root
	s.cmd.Env = envWithout(prefix)
	for _, kv := range env {
		s.cmd.Env = append(s.cmd.Env, prefix+kv)
	}
	s.cmd.Env = append(s.cmd.Env, prefix+"ADMIN_LISTEN="+adminAddr)
	if name == "collector" {
		if s.PrivacyAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
		s.cmd.Env = append(s.cmd.Env, prefix+"PRIVACY_LISTEN="+s.PrivacyAddr)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// If this process dies without cleaning up, the kernel stops the child
	// rather than leaving it listening and consuming.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// PID is the service's process id.
func (s *Service) PID() int { return s.cmd.Process.Pid }

// WaitReady polls /readyz every 10 ms until it answers 200 and returns
// when that was, or fails when the process exits or ReadyTimeout passes.
func (s *Service) WaitReady(ctx context.Context) (time.Time, error) {
	client := &http.Client{Timeout: time.Second}
	url := "http://" + s.AdminAddr + "/readyz"
	deadline := time.Now().Add(ReadyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return time.Time{}, fmt.Errorf("%s exited before ready (%v); its log:\n%s", s.Name, s.waitErr, s.log)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return time.Now(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s not ready after %v; its log:\n%s", s.Name, ReadyTimeout, s.log)
}

// Alive fails once the process has exited.
func (s *Service) Alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("%s exited (%v); its log:\n%s", s.Name, s.waitErr, s.log)
	default:
		return nil
	}
}

// Stop sends SIGTERM and waits, then SIGKILL if it has not exited after
// StopTimeout. Safe to call more than once. Anything but a clean exit
// after the SIGTERM (an exit before it, a failed exit, a kill) is an error
// carrying the end of the service's log.
func (s *Service) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
			s.stopErr = fmt.Errorf("%s had exited (%v); its log:\n%s", s.Name, s.waitErr, s.log)
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
			if s.waitErr != nil {
				s.stopErr = fmt.Errorf("%s stop: %w; its log:\n%s", s.Name, s.waitErr, s.log)
			}
		case <-time.After(StopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.exited
			s.stopErr = fmt.Errorf("%s killed after %v without stopping on SIGTERM; its log:\n%s", s.Name, StopTimeout, s.log)
		}
	})
	return s.stopErr
}

// FreeAddr picks a free port on 127.0.0.1 for a service to listen on.
// Another process could take it before the service does; on a bench
// machine that is rare enough to retry by hand.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// envWithout is this process's environment without the variables that
// start with prefix.
func envWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// tailBuffer keeps the last size bytes written to it: a service's log,
// shown only when something went wrong, without growing without bound.
type tailBuffer struct {
	mu   sync.Mutex
	size int
	buf  []byte
}

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

// Services are services started in order: Stop stops them in reverse
// (the first started, those others feed, last, so they finish what is in
// flight), once.
type Services struct {
	Procs    []*Service // in start order
	stopOnce sync.Once
	stopErr  error
}

// Add records a started service.
func (s *Services) Add(svc *Service) { s.Procs = append(s.Procs, svc) }

// Stop stops the services in reverse start order. Safe to call twice.
func (s *Services) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		for i := len(s.Procs) - 1; i >= 0; i-- {
			errs = append(errs, s.Procs[i].Stop())
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// Alive fails once a service has exited.
func (s *Services) Alive() error {
	for _, svc := range s.Procs {
		if err := svc.Alive(); err != nil {
			return err
		}
	}
	return nil
}
