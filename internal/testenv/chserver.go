package testenv

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/chx"
)

// ClickHouseServer is a clickhouse-server of a test's own, on free ports
// with its data in a temporary folder, for tests that stop and start
// ClickHouse: the shared server on 9000 serves the tests of other packages,
// which go test runs at the same time.
type ClickHouseServer struct {
	// Addr is the native-protocol address, 127.0.0.1:<port>.
	Addr string

	dir      string
	uid, gid int
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process started last has exited
}

// Where the Debian package puts the server and its stock config, which
// scripts/deps.sh runs too.
const (
	stockConfig = "/etc/clickhouse-server/config.xml"
	stockUsers  = "/etc/clickhouse-server/users.xml"
)

// StartClickHouseServer starts a private server the way scripts/deps.sh
// starts the shared one (the package's clickhouse-server binary and stock
// config with every path moved under a temporary folder, run as the
// package's clickhouse user) and waits until it answers. It needs root and
// the package; without them it skips the test, or fails it when CI=true.
// The server is stopped and its folder removed when the test ends.
func StartClickHouseServer(t testing.TB) *ClickHouseServer {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping test that needs a private ClickHouse server")
	}
	s, err := newClickHouseServer()
	if err != nil {
		unavailable(t, "cannot run a private ClickHouse server (needs root, clickhouse-server from scripts/deps.sh up, setpriv): "+err.Error())
	}
	t.Cleanup(func() {
		s.stop(10 * time.Second)
		if err := os.RemoveAll(s.dir); err != nil {
			t.Errorf("remove private ClickHouse folder: %v", err)
		}
	})
	s.Start(t)
	return s
}

func newClickHouseServer() (*ClickHouseServer, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("not root: the server must run as the clickhouse user")
	}
	for _, bin := range []string{"clickhouse-server", "setpriv"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, err
		}
	}
	u, err := user.Lookup("clickhouse")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	config, err := os.ReadFile(stockConfig)
	if err != nil {
		return nil, err
	}
	users, err := os.ReadFile(stockUsers)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "consentflow-clickhouse-")
	if err != nil {
		return nil, err
	}
	s := &ClickHouseServer{Addr: "127.0.0.1:" + ports[0], dir: dir, uid: uid, gid: gid}
	if err := s.writeConfig(string(config), string(users), ports); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// writeConfig writes the stock config with the paths under s.dir, the
// ports given, loopback only, as scripts/deps.sh does for the shared one.
func (s *ClickHouseServer) writeConfig(config, users string, ports []string) error {
	// MkdirTemp makes the folder 0700: the clickhouse user must get in.
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return err
	}
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(s.dir, sub), 0o755); err != nil {
			return err
		}
	}
	d := s.dir
	for _, r := range [][2]string{
		{"/var/lib/clickhouse/tmp/", d + "/tmp/"},
		{"/var/lib/clickhouse/user_files/", d + "/user_files/"},
		{"/var/lib/clickhouse/format_schemas/", d + "/format_schemas/"},
		{"/var/lib/clickhouse/", d + "/data/"},
		{"/var/log/clickhouse-server/", d + "/log/"},
		{"<tcp_port>9000</tcp_port>", "<tcp_port>" + ports[0] + "</tcp_port>"},
		{"<http_port>8123</http_port>", "<http_port>" + ports[1] + "</http_port>"},
		{"<interserver_http_port>9009</interserver_http_port>", "<interserver_http_port>" + ports[2] + "</interserver_http_port>"},
		{"<listen_host>::1</listen_host>", ""},
	} {
		if !strings.Contains(config, r[0]) {
			return fmt.Errorf("%s has no %s to replace: not the config this helper knows", stockConfig, r[0])
		}
		config = strings.ReplaceAll(config, r[0], r[1])
	}
	users = strings.ReplaceAll(users, "<ip>::/0</ip>", "<ip>127.0.0.1</ip><ip>::1</ip>")
	if err := os.WriteFile(filepath.Join(d, "config.xml"), []byte(config), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "users.xml"), []byte(users), 0o644); err != nil {
		return err
	}
	// The server refuses data owned by another user.
	return filepath.WalkDir(d, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, s.uid, s.gid)
	})
}

// Start starts the server on its folder (again, after Kill or Stop) and
// waits until it answers a ping.
func (s *ClickHouseServer) Start(t testing.TB) {
	t.Helper()
	if s.running() {
		t.Fatal("private ClickHouse server: already running")
	}
	out, err := os.OpenFile(filepath.Join(s.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// setpriv execs, so the process is the server itself and a signal to
	// it reaches the server, not a wrapper.
	cmd := exec.Command("setpriv", "--reuid="+strconv.Itoa(s.uid), "--regid="+strconv.Itoa(s.gid), "--init-groups", "--",
		"clickhouse-server", "--config-file="+filepath.Join(s.dir, "config.xml"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a Ctrl-C on the test's terminal is the test's to handle
	if err := cmd.Start(); err != nil {
		t.Fatalf("start private ClickHouse server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	conn, err := chx.Open(&chx.Config{Addr: []string{s.Addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := conn.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("private ClickHouse server exited during start-up:\n%s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("private ClickHouse server did not answer within 60s (%v):\n%s", err, s.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL, as a crash or an OOM kill would, and
// waits until it has exited.
func (s *ClickHouseServer) Kill(t testing.TB) {
	t.Helper()
	if !s.running() {
		t.Fatal("private ClickHouse server: not running")
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("private ClickHouse server did not exit within 30s of SIGKILL")
	}
}

// Stop stops the server with SIGTERM, as an orderly shutdown does, and
// waits until it has exited (SIGKILL after 30s).
func (s *ClickHouseServer) Stop(t testing.TB) {
	t.Helper()
	if !s.running() {
		t.Fatal("private ClickHouse server: not running")
	}
	s.stop(30 * time.Second)
}

func (s *ClickHouseServer) stop(grace time.Duration) {
	if !s.running() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return
	case <-time.After(grace):
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

func (s *ClickHouseServer) running() bool {
	if s.exited == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// logTail is the end of the server's error log and stdout, for a failure
// message.
func (s *ClickHouseServer) logTail() string {
	var b strings.Builder
	for _, name := range []string{"clickhouse-server.err.log", "stdout.log"} {
		data, _ := os.ReadFile(filepath.Join(s.dir, "log", name))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fmt.Fprintf(&b, "--- %s\n%s\n", name, strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
	return b.String()
}

// freePorts returns n loopback ports free at the time of the call.
func freePorts(n int) ([]string, error) {
	var ports []string
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}
