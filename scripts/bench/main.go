// Command bench runs the load benchmarks against the real services on
// this machine: go run ./scripts/bench <name> [flags], from the
// repository root with Kafka and ClickHouse running (scripts/deps.sh up).
// Without a name, or with -h, it lists them; <name> -h lists a
// benchmark's flags. The make targets bench-<name> run them with
// <NAME>BENCH_FLAGS.
//
// Each benchmark is a package of its own below this folder; what they
// share (flags, building and running the services, cleanup, Ctrl-C, load,
// freshness, reports) is scripts/internal/benchkit.
package main

import (
	"os"

	"github.com/consentflow/consentflow/scripts/bench/consent"
	"github.com/consentflow/consentflow/scripts/bench/enricher"
	"github.com/consentflow/consentflow/scripts/bench/erasure"
	"github.com/consentflow/consentflow/scripts/bench/ingest"
	"github.com/consentflow/consentflow/scripts/bench/pipeline"
	"github.com/consentflow/consentflow/scripts/bench/sink"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

var benches = []benchkit.Bench{
	{Name: "ingest", Summary: "collector vs raw franz-go producer, HTTP-to-Kafka relay and no-op HTTP (~2 min)", Run: ingest.Run},
	{Name: "enricher", Summary: "enricher vs plain consume-then-produce on the same broker, alternating rounds", Run: enricher.Run},
	{Name: "sink", Summary: "sink vs raw clickhouse-go insert, then freshness 200 -> queryable at 5,000 events/s (~3.5 min)", Run: sink.Run},
	{Name: "erasure", Summary: "erasure latency request -> verified deletion in both destinations under load (~2.5 min)", Run: erasure.Run},
	{Name: "pipeline", Summary: "the whole pipeline stepped up open-loop to the highest rate it sustains (~6 min)", Run: pipeline.Run},
	{Name: "consent", Summary: "consent store memory per 1M subjects and rebuild from Kafka", Run: consent.Run},
}

func main() {
	os.Exit(benchkit.Main(os.Args[1:], benches, os.Stdout, os.Stderr))
}
