package benchkit

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProcReaders(t *testing.T) {
	for _, pid := range []int{Self, os.Getpid()} {
		if _, err := ProcessCPU(pid); err != nil {
			t.Errorf("ProcessCPU(%d): %v", pid, err)
		}
		rss, err := RSS(pid)
		if err != nil || rss <= 0 {
			t.Errorf("RSS(%d) = %d, %v; want > 0", pid, rss, err)
		}
		peak, err := PeakRSS(pid)
		if err != nil || peak < rss {
			t.Errorf("PeakRSS(%d) = %d, %v; want at least RSS %d", pid, peak, err, rss)
		}
	}
	if busy, err := MachineBusy(); err != nil || busy <= 0 {
		t.Errorf("MachineBusy() = %v, %v; want > 0", busy, err)
	}
	if _, err := ProcessCPU(1 << 30); err == nil {
		t.Error("ProcessCPU of a pid that cannot exist: no error")
	}
}

func TestCPUClock(t *testing.T) {
	clock := CPUClock{Self, None}
	before := clock.Read()
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	u := clock.Read().Since(before)
	if len(u.Procs) != 2 || u.Procs[0] <= 0 || u.Procs[1] != 0 {
		t.Errorf("Procs = %v; want this process's CPU time > 0, then 0 for None", u.Procs)
	}
	if u.Wall < 50*time.Millisecond {
		t.Errorf("Wall = %v; want at least the 50 ms spun", u.Wall)
	}
	if got := u.Other(); got != u.Busy-u.Procs[0] {
		t.Errorf("Other() = %v; want Busy - Procs = %v", got, u.Busy-u.Procs[0])
	}
}

func TestListenerPID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if pid, err := ListenerPID(ln.Addr().String()); err != nil || pid != os.Getpid() {
		t.Errorf("ListenerPID(%s) = %d, %v; want this process, %d", ln.Addr(), pid, err, os.Getpid())
	}
	if _, err := ListenerPID("no-port"); err == nil {
		t.Error("ListenerPID of an address without a port: no error")
	}
}

func TestCheckLoopback(t *testing.T) {
	if err := CheckLoopback("-brokers", "127.0.0.1:9092", "localhost:9092", "[::1]:9092"); err != nil {
		t.Errorf("loopback refused: %v", err)
	}
	for _, a := range []string{"10.0.0.5:9092", "kafka.example.com:9092", "127.0.0.1"} {
		if err := CheckLoopback("-brokers", "127.0.0.1:9092", a); err == nil || !strings.Contains(err.Error(), "-brokers") {
			t.Errorf("CheckLoopback(%q) = %v; want an error naming the flag", a, err)
		}
	}
}

func TestCleanupsRunInReverseAndJoinErrors(t *testing.T) {
	var order []int
	var c Cleanups
	errA := errors.New("a")
	c.Add(func() error { order = append(order, 1); return errA })
	c.Add(func() error { order = append(order, 2); return nil })
	err := c.Run()
	if !slices.Equal(order, []int{2, 1}) || !errors.Is(err, errA) {
		t.Errorf("order %v, error %v; want [2 1] and the first cleanup's error", order, err)
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	b := &tailBuffer{size: 8}
	for _, s := range []string{"0123", "4567", "89ab"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := b.String(); got != "456789ab" {
		t.Errorf("String() = %q; want the last 8 bytes", got)
	}
}

func TestPersonIsStable(t *testing.T) {
	a, b := NewPerson(7), NewPerson(7)
	if a.AnonymousID != b.AnonymousID || a.DeviceID != b.DeviceID || a.AdID != b.AdID || len(a.AnonymousID) != 36 {
		t.Errorf("NewPerson(7) differs between calls or has a malformed id: %+v, %+v", a, b)
	}
	if NewPerson(8).AnonymousID == a.AnonymousID {
		t.Error("two subjects share an anonymous id")
	}
	for i := range 2 * len(Browsers) {
		p := NewPerson(i)
		ctx := p.SDKContext()
		device := ctx["device"].(map[string]any)
		if (p.Browser.Model != "") != (p.AdID != "") || (device["advertisingId"] != nil) != (p.AdID != "") {
			t.Errorf("subject %d: advertising id %q on a %q browser, context device %v", i, p.AdID, p.Browser.Model, device)
		}
		if (i%2 == 0) != (p.UserID != "") {
			t.Errorf("subject %d: user id %q; want one on even subjects only", i, p.UserID)
		}
		if ctx["ip"] != p.IP || ctx["userAgent"] != p.Browser.UA {
			t.Errorf("subject %d: context ip %v, userAgent %v", i, ctx["ip"], ctx["userAgent"])
		}
	}
}

func TestMicrosPerAndVerdict(t *testing.T) {
	if got := MicrosPer(1500*time.Microsecond, 1000); got != "1.5" {
		t.Errorf("MicrosPer = %q; want 1.5", got)
	}
	if got := MicrosPer(time.Second, 0); got != "-" {
		t.Errorf("MicrosPer of nothing = %q; want -", got)
	}
	if Verdict(true) != "met" || Verdict(false) != "MISSED" {
		t.Error("Verdict: want met and MISSED")
	}
}

func TestParseMetricsAndSum(t *testing.T) {
	m := ParseMetrics([]byte(`# HELP sink_flushes_total Flushes.
# TYPE sink_flushes_total counter
sink_flushes_total{reason="time",destination="cn"} 3
sink_flushes_total{reason="size",destination="cn"} 2
sink_flushes_total{reason="time",destination="intl"} 4

sink_insert_duration_seconds_sum 1.5
not_a_sample
bad_value NaNx
`))
	if got := m.Sum("sink_flushes_total"); got != 9 {
		t.Errorf("Sum of all flushes = %v; want 9", got)
	}
	if got := m.Sum("sink_flushes_total", `reason="time"`); got != 7 {
		t.Errorf("Sum of time flushes = %v; want 7", got)
	}
	if got := m.Sum("sink_flushes_total", `reason="time"`, `destination="cn"`); got != 3 {
		t.Errorf("Sum of time flushes in cn = %v; want 3", got)
	}
	if s := m["sink_insert_duration_seconds_sum"]; len(s) != 1 || s[0] != (Sample{"", 1.5}) {
		t.Errorf("unlabelled sample = %+v; want one, 1.5 without labels", s)
	}
	if len(m) != 2 || m.Sum("missing") != 0 {
		t.Errorf("metrics %v; want only the two well-formed names", m)
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0, time.Millisecond}, {0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		if got := Quantile(d, c.p); got != c.want {
			t.Errorf("Quantile(1..100 ms, %v) = %v; want %v", c.p, got, c.want)
		}
	}
	if got := Quantile(nil, 0.5); got != 0 {
		t.Errorf("Quantile of none = %v; want 0", got)
	}
}

func TestParallelCallsEachOnceOrStopsAtAnError(t *testing.T) {
	var calls [1000]atomic.Int32
	if err := Parallel(context.Background(), len(calls), 16, func(i int) error { calls[i].Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range calls {
		if n := calls[i].Load(); n != 1 {
			t.Fatalf("f(%d) called %d times; want once", i, n)
		}
	}
	boom := errors.New("boom")
	var done atomic.Int32
	err := Parallel(context.Background(), 100000, 4, func(i int) error {
		done.Add(1)
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || done.Load() == 100000 {
		t.Errorf("error %v after %d calls; want boom, and the rest not started", err, done.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Parallel(ctx, 10, 2, func(int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Parallel on an ended context = %v; want its error", err)
	}
}

func TestCheckRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "configs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "configs", "sink.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckRoot(root, "configs/sink.yaml"); err != nil {
		t.Errorf("CheckRoot with the file there: %v", err)
	}
	if err := CheckRoot(root, "configs/sink.yaml", "configs/collector.yaml"); err == nil || !strings.Contains(err.Error(), "is not the repository root") {
		t.Errorf("CheckRoot with a file missing = %v; want an error", err)
	}
}

func TestInfraNamesAndRecordsAfterTheBench(t *testing.T) {
	e := &Infra{Prefixes: PrefixesOf("sinkbench"), RunID: "1p2"}
	if got := e.Topic("clean"); got != "sinkbench.1p2.clean" {
		t.Errorf("Topic = %q", got)
	}
	if got := e.Group("sink"); got != "sinkbench-1p2-sink" {
		t.Errorf("Group = %q", got)
	}
	if got := e.Database("f0"); got != "sinkbench_1p2_f0" {
		t.Errorf("Database = %q", got)
	}
	if len(e.topics) != 1 || len(e.groups) != 1 || len(e.databases) != 1 {
		t.Errorf("recorded %v, %v, %v; want one of each, to delete at the end", e.topics, e.groups, e.databases)
	}
}
