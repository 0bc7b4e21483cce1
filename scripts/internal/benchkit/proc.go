// Package benchkit is what the load benchmarks of the bench tool
// (scripts/bench, `go run ./scripts/bench <name>`) share, written once:
// the tool's dispatch, exit status and Ctrl-C handling (Main), flag
// parsing with clear errors (Parse, Limits, BrokerFlags, StoreFlags), a
// run's setup (NewRun: names, connections, binaries built, background
// load) and its cleanup before the report (Measure, Cleanups), starting
// the pipeline's services on the run's names (StartPipeline) and stopping
// them in reverse, the load's subjects and events (Population,
// BatchBody), requests to the collector (PostJSON, GrantConsent),
// freshness (Tracker, LookupIDs, CountRows), reading CPU time and memory
// of processes from /proc, the machine's background load, creating and
// deleting a run's topics, groups and databases, scraping metrics, and
// report formatting (NewTable, Quantile, WriteFiles). It is Linux-only, as
// the benchmarks are.
package benchkit

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times: 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// Self and None are the special pids of a CPUClock. Self also stands for
// this process in RSS and PeakRSS.
const (
	Self = 0  // this process
	None = -1 // not watched: reads as zero
)

// procFile is /proc/<pid>/name, /proc/self/name for Self.
func procFile(pid int, name string) string {
	if pid == Self {
		return "/proc/self/" + name
	}
	return fmt.Sprintf("/proc/%d/%s", pid, name)
}

// SelfCPU is the user and system CPU time of this process so far
// (getrusage, to the nanosecond), or 0 if it cannot be read.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcessCPU is utime+stime of pid from /proc/<pid>/stat, to the clock
// tick (10 ms).
func ProcessCPU(pid int) (time.Duration, error) {
	path := procFile(pid, "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it do not.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no ')'", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields", path, len(f))
	}
	// f[0] is field 3 (state), so utime (14) and stime (15) are f[11], f[12].
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: bad utime/stime", path)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// MachineBusy is the non-idle CPU time of all cores from /proc/stat: user,
// nice, system, irq, softirq and steal, not idle or iowait.
func MachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line)) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		busy += n
	}
	return time.Duration(busy) * clockTick, nil
}

// MachineShare is busy CPU time as a share (0 to 1) of what every core of
// the machine could have done in wall.
func MachineShare(busy, wall time.Duration) float64 {
	return busy.Seconds() / (wall.Seconds() * float64(runtime.NumCPU()))
}

// BackgroundLoad is the share of the machine busy over d, sampled before
// any load is applied: other tenants of the machine. It says how far to
// trust absolute figures.
func BackgroundLoad(d time.Duration) float64 {
	before, _ := MachineBusy()
	time.Sleep(d)
	after, _ := MachineBusy()
	return MachineShare(after-before, d)
}

// RSS is VmRSS (resident memory now) of pid, in KiB.
func RSS(pid int) (int64, error) { return statusKiB(pid, "VmRSS") }

// PeakRSS is VmHWM (the high-water mark of resident memory) of pid, in
// KiB. It is gone once the process has exited, so read it before stopping
// the process.
func PeakRSS(pid int) (int64, error) { return statusKiB(pid, "VmHWM") }

// statusKiB reads a "kB" field of /proc/<pid>/status.
func statusKiB(pid int, field string) (int64, error) {
	path := procFile(pid, "status")
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}

// ListenerPID finds the process listening on addr's TCP port (the broker,
// ClickHouse), to charge its CPU time separately: the socket's inode from
// /proc/net/tcp*, then the process holding that inode among its file
// descriptors. Processes of other users cannot be searched.
func ListenerPID(addr string) (int, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return 0, fmt.Errorf("port of %q: %w", addr, err)
	}
	inode, err := listenInode(port)
	if err != nil {
		return 0, err
	}
	want := "socket:[" + inode + "]"
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			if link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); link == want {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process holds the socket listening on port %d", port)
}

// listenInode is the inode of the socket listening on port.
func listenInode(port int) (string, error) {
	suffix := fmt.Sprintf(":%04X", port)
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) >= 10 && f[3] == "0A" && strings.HasSuffix(f[1], suffix) { // 0A: LISTEN
				return f[9], nil
			}
		}
	}
	return "", fmt.Errorf("nothing listens on port %d", port)
}

// CPUClock reads the CPU time of a set of processes, by pid (Self for this
// process, None for a slot not watched), and of the whole machine. A
// benchmark names the slots with constants of its own.
type CPUClock []int

// CPUReading is one reading of a CPUClock.
type CPUReading struct {
	at    time.Time
	procs []time.Duration
	busy  time.Duration
}

// CPUUsage is the CPU time spent between two readings: per slot of the
// clock, and by the whole machine (all cores), over Wall.
type CPUUsage struct {
	Procs      []time.Duration
	Busy, Wall time.Duration
}

// Read reads every slot and the machine. A process that cannot be read
// (gone, not ours) reads as zero.
func (c CPUClock) Read() CPUReading {
	r := CPUReading{at: time.Now(), procs: make([]time.Duration, len(c))}
	for i, pid := range c {
		switch {
		case pid == Self:
			r.procs[i] = SelfCPU()
		case pid > 0:
			r.procs[i], _ = ProcessCPU(pid)
		}
	}
	r.busy, _ = MachineBusy()
	return r
}

// Since is the CPU time spent from before to r.
func (r CPUReading) Since(before CPUReading) CPUUsage {
	u := CPUUsage{Procs: make([]time.Duration, len(r.procs)), Busy: r.busy - before.busy, Wall: r.at.Sub(before.at)}
	for i := range r.procs {
		u.Procs[i] = r.procs[i] - before.procs[i]
	}
	return u
}

// Other is the machine's busy time that none of the watched processes
// accounts for: other tenants, kernel work not charged to a process.
// /proc/stat and getrusage tick apart, so it can come out slightly
// negative.
func (u CPUUsage) Other() time.Duration {
	d := u.Busy
	for _, p := range u.Procs {
		d -= p
	}
	return d
}
