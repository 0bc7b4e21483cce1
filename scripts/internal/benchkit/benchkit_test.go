package benchkit

import (
	"errors"
	"net"
	"os"
	"slices"
	"strings"
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
