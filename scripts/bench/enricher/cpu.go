package enricher

import "github.com/consentflow/consentflow/scripts/internal/benchkit"

// CPU slots of a phase's benchkit.CPUClock: this process (the baseline
// loop or the enricher, plus this tool's metric polling) and the Kafka
// broker. The rest of the machine's busy time is other tenants and
// unattributed kernel work.
const (
	cpuSelf = iota
	cpuKafka
)

// brokerPID is the process listening on the broker's port, or
// benchkit.None when it cannot be found (then its CPU time counts as
// other).
func brokerPID(broker string) int {
	pid, err := benchkit.ListenerPID(broker)
	if err != nil {
		return benchkit.None
	}
	return pid
}
