package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times: 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuUsage is CPU time spent during one measurement: by this process (load
// generator, plus the no-op server or the raw producer), by the collector
// process, by the Kafka broker, and by the whole machine. What is left of
// busy is other tenants of the machine and kernel work not charged to a
// process.
type cpuUsage struct {
	self, collector, kafka, busy time.Duration
}

// other is busy time that none of the three watched processes accounts for.
func (c cpuUsage) other() time.Duration { return c.busy - c.self - c.collector - c.kafka }

// watched are the processes whose CPU time is read besides this one; 0 means
// not watched.
type watched struct{ collector, kafka int }

// cpuSnapshot is a reading of the counters; two make a cpuUsage.
type cpuSnapshot cpuUsage

func readCPU(w watched) cpuSnapshot {
	var s cpuSnapshot
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if w.collector > 0 {
		s.collector, _ = processCPU(w.collector)
	}
	if w.kafka > 0 {
		s.kafka, _ = processCPU(w.kafka)
	}
	s.busy, _ = machineBusy()
	return s
}

func (s cpuSnapshot) since(before cpuSnapshot) cpuUsage {
	return cpuUsage{
		self:      s.self - before.self,
		collector: s.collector - before.collector,
		kafka:     s.kafka - before.kafka,
		busy:      s.busy - before.busy,
	}
}

// processCPU is utime+stime of pid from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it do not.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state), so utime (14) and stime (15) are f[11], f[12].
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// machineBusy is the non-idle CPU time of all cores from /proc/stat.
func machineBusy() (time.Duration, error) {
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

// peakRSS is VmHWM (the high-water mark of resident memory) of pid, in KiB.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// listenerPID finds the process listening on TCP port (the Kafka broker, to
// charge its CPU time separately): the socket's inode from /proc/net/tcp*,
// then the process holding that inode among its file descriptors.
func listenerPID(port int) (int, error) {
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
