package ingest

import "github.com/consentflow/consentflow/scripts/internal/benchkit"

// CPU slots of a measurement's benchkit.CPUClock: this process (load
// generator, plus the no-op server or the raw producer), the collector
// process and the Kafka broker. What is left of the machine's busy time is
// other tenants of the machine and kernel work not charged to a process.
const (
	cpuSelf = iota
	cpuCollector
	cpuKafka
)

// measure runs f and attaches the CPU time spent while it ran.
func measure(clock benchkit.CPUClock, f func() stats) stats {
	before := clock.Read()
	st := f()
	st.cpu = clock.Read().Since(before)
	return st
}

// brokerPID is the Kafka process to watch, or benchkit.None when it cannot
// be found (then its CPU time shows up as other).
func brokerPID(o options) int {
	if o.kafkaPID != 0 {
		return max(o.kafkaPID, benchkit.None)
	}
	return benchkit.WatchPID(o.Brokers[0], "broker")
}
