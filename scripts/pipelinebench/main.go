// Command pipelinebench measures what a user buys: how many events per
// second the whole pipeline sustains on this machine, from the collector's
// 200 to rows queryable in ClickHouse. It is a benchmark, not a test: it
// prints figures and the knee, and judges nothing.
//
// The collector, the enricher (catalogue on, configs/catalogue.yaml) and
// both sinks (configs/sink.yaml, the region cn; configs/sink-intl.yaml, the
// export destination intl) are built from the repository and started as
// processes with the shipped configs and dev_mode on, as `make run` does,
// every topic, consumer group, transactional id and database renamed for
// this run by environment variables. Kafka and ClickHouse are the ones on
// the machine.
//
// Consent (analytics; cross-border for a third of the subjects) is
// recorded for -subjects subjects first, since the enricher fails closed.
// Then the load, Segment-shaped (page views, product views, checkouts and
// one event in ten an identify; half the subjects signed in), is posted
// open-loop in /v1/batch requests of -batch events, at a rate starting at
// -start events/s and multiplied by -factor each step of -step, until
// -misses steps in a row are not sustained or -max-steps have run. After each step the load
// pauses until the step's followed events are queryable (at most -settle),
// so each step starts from an empty pipeline.
//
// Per step it reports: events/s offered and accepted (200), rows/s
// queryable in each database, the consumer lag of the enricher and both
// sinks at the end of the step, freshness p50/p99 (from the 200 to
// queryable in the region's database, of about 100 followed events a
// second; an event not queryable by the end of the settle counts at its
// age then), CPU per accepted event of each service, the broker, ClickHouse
// and the bench itself (over the step and its settle), and peak RSS of each
// service. A step is sustained when at least 95% of the offered events
// were accepted, no request failed, the lag at its end is under what the
// offered rate brings in 2 s, and freshness p99 is at most 2 s; the answer
// is the highest such rate. The knee is the first step missed after the
// last one sustained, and the stage that fell behind in it (the collector
// if it refused load, else the consumer group lagging most) holds it. The report is printed and written, with a
// chart (chart.svg: offered vs accepted and queryable rate, and freshness
// p99, per step), to -out, which it prints.
//
// Everything created (topics, consumer groups, databases, processes, the
// binaries) is removed at the end, also after an error or Ctrl-C; -check
// lists what an interrupted run left behind.
//
// Usage, from the repository root with Kafka and ClickHouse running:
//
//	go run ./scripts/pipelinebench [-start 2000] [-factor 1.5] [-step 30s] [-max-steps 8]
//	go run ./scripts/pipelinebench -step 10s -start 4000 -factor 1.4 -max-steps 6
//	go run ./scripts/pipelinebench -check
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// bench names the tool's topics, consumer groups and databases (see
// benchkit.Prefixes) and its temporary directory.
const bench = "pipelinebench"

// options are the command's flags.
type options struct {
	brokers    []string
	clickhouse string
	root       string
	out        string
	writeKey   string
	consentKey string
	// overlay is -env-file's settings by service (COLLECTOR, ENRICHER,
	// SINK), without the prefix: applied before the bench's own.
	overlay map[string][]string

	start    int
	factor   float64
	step     time.Duration
	settle   time.Duration
	maxSteps int
	misses   int
	batch    int
	senders  int
	subjects int

	check bool
}

func main() {
	benchkit.Main(bench, parseFlags, func(o options) bool { return o.check },
		func(o options) error { return benchkit.CheckLeftovers(bench, o.brokers, o.clickhouse) }, run)
}

func parseFlags() (options, error) {
	var o options
	stores := benchkit.StoreFlags()
	flag.StringVar(&o.root, "root", ".", "repository root (holds ./collector, ./enricher, ./sink and configs/)")
	flag.StringVar(&o.out, "out", "", "folder of the report and chart (default .deps/bench/pipeline-<run> under -root)")
	flag.StringVar(&o.writeKey, "write-key", "demo-write-key", "collector write key of the events")
	flag.StringVar(&o.consentKey, "consent-write-key", "demo-backend-write-key", "collector write key of the consent updates: a server source's (they grant cross-border transfer)")
	flag.IntVar(&o.start, "start", 2000, "events/s offered in the first step (100-200000)")
	flag.Float64Var(&o.factor, "factor", 1.5, "each step offers this many times the rate of the one before (1.05-4)")
	flag.DurationVar(&o.step, "step", 30*time.Second, "duration of each step (5s-10m)")
	flag.DurationVar(&o.settle, "settle", 15*time.Second, "after each step, wait at most this long for its followed events to be queryable (2s-5m)")
	flag.IntVar(&o.maxSteps, "max-steps", 8, "at most this many steps (1-30)")
	flag.IntVar(&o.misses, "misses", 2, "stop after this many steps in a row not sustained: on a shared machine one can be noise (1-5)")
	flag.IntVar(&o.batch, "batch", 50, "events per /v1/batch request (1-100)")
	flag.IntVar(&o.senders, "senders", 64, "concurrent clients posting the events (1-512)")
	flag.IntVar(&o.subjects, "subjects", 3000, "subjects the events are about, each with consent recorded first (30-100000)")
	envFile := flag.String("env-file", "", "PREFIX_KEY=VALUE lines applied to each service before the bench's own settings, e.g. configs/cluster/kafka.env (with -brokers of the cluster) for replication factor 3")
	flag.BoolVar(&o.check, "check", false, "only list topics, groups and databases left by earlier runs; exit 1 if any")
	flag.Parse()

	var err error
	if o.brokers, o.clickhouse, err = stores(); err != nil {
		return o, err
	}
	// Bounds keep one run within minutes and inside the machine's memory.
	switch {
	case o.start < 100 || o.start > 200000:
		return o, fmt.Errorf("-start %d: want 100-200000", o.start)
	case o.factor < 1.05 || o.factor > 4:
		return o, fmt.Errorf("-factor %v: want 1.05-4", o.factor)
	case o.step < 5*time.Second || o.step > 10*time.Minute:
		return o, fmt.Errorf("-step %v: want 5s-10m", o.step)
	case o.settle < 2*time.Second || o.settle > 5*time.Minute:
		return o, fmt.Errorf("-settle %v: want 2s-5m", o.settle)
	case o.maxSteps < 1 || o.maxSteps > 30:
		return o, fmt.Errorf("-max-steps %d: want 1-30", o.maxSteps)
	case o.misses < 1 || o.misses > 5:
		return o, fmt.Errorf("-misses %d: want 1-5", o.misses)
	case o.batch < 1 || o.batch > 100:
		return o, fmt.Errorf("-batch %d: want 1-100", o.batch)
	case o.senders < 1 || o.senders > 512:
		return o, fmt.Errorf("-senders %d: want 1-512", o.senders)
	case o.subjects < 30 || o.subjects > 100000:
		return o, fmt.Errorf("-subjects %d: want 30-100000", o.subjects)
	}
	if err := benchkit.CheckRoot(o.root, "configs/collector.yaml", "configs/enricher.yaml", "configs/catalogue.yaml",
		"configs/sink-intl.yaml", devPseudonymKey, devExportKey); err != nil {
		return o, err
	}
	if o.root, err = filepath.Abs(o.root); err != nil {
		return o, err
	}
	if *envFile != "" {
		if o.overlay, err = readEnvFile(*envFile); err != nil {
			return o, err
		}
	}
	return o, nil
}

// run benchmarks, then always cleans up before writing the report, so the
// report can say whether the cleanup worked.
func run(ctx context.Context, o options) error {
	// A hard bound on the whole run, in case something hangs: building,
	// starting, consent and stopping take a few minutes at worst.
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute+time.Duration(o.maxSteps)*(o.step+o.settle+10*time.Second))
	defer cancel()

	var cl benchkit.Cleanups
	rep, err := benchmark(ctx, o, &cl)
	cerr := cl.Run()
	if rep == nil {
		return errors.Join(err, cerr)
	}
	rep.cleanupErr = cerr
	rep.print(os.Stdout) // also what was measured before an error
	if werr := rep.write(); werr != nil {
		err = errors.Join(err, werr)
	} else {
		fmt.Printf("\nReport and chart: %s\n", rep.dir)
	}
	return errors.Join(err, cerr)
}

func benchmark(ctx context.Context, o options, cl *benchkit.Cleanups) (*report, error) {
	runID := fmt.Sprintf("%dp%d", time.Now().Unix(), os.Getpid())
	dir := o.out
	if dir == "" {
		dir = filepath.Join(o.root, ".deps", "bench", "pipeline-"+runID)
	}
	rep := &report{opts: o, runID: runID, nproc: runtime.NumCPU(), dir: dir}
	benchkit.PrefixesOf(bench).Announce(runID)

	kit, err := benchkit.NewInfra(bench, runID, o.brokers, o.clickhouse, cl)
	if err != nil {
		return nil, err
	}
	_, bins, err := benchkit.BuildTemp(ctx, bench, o.root, cl, "./collector", "./enricher", "./sink")
	if err != nil {
		return nil, err
	}
	rep.background = benchkit.BackgroundLoad(time.Second)
	benchkit.Progress("background: %.0f%% of the machine busy before any load", 100*rep.background)

	p, err := startPipeline(ctx, kit, o, binaries{collector: bins[0], enricher: bins[1], sink: bins[2]}, cl)
	if err != nil {
		return rep, err
	}
	err = measure(ctx, kit, o, p, rep)
	rep.stopErr = p.Stop()
	if err == nil {
		err = ctx.Err()
	}
	return rep, err
}

// readEnvFile reads PREFIX_KEY=VALUE lines (blank lines and # comments
// skipped) into each prefix's KEY=VALUE settings.
func readEnvFile(path string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-env-file: %w", err)
	}
	out := map[string][]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		prefix, kv, ok := strings.Cut(line, "_")
		if !ok || !strings.Contains(kv, "=") || strings.Contains(prefix, "=") {
			return nil, fmt.Errorf("-env-file %s:%d: want PREFIX_KEY=VALUE, got %q", path, i+1, line)
		}
		out[prefix] = append(out[prefix], kv)
	}
	return out, nil
}
