// Package pipeline is the bench tool's whole-pipeline benchmark (go run
// ./scripts/bench pipeline). It measures what a user buys: how many events per
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
//	go run ./scripts/bench pipeline [-start 2000] [-factor 1.5] [-step 30s] [-max-steps 8]
//	go run ./scripts/bench pipeline -step 10s -start 4000 -factor 1.4 -max-steps 6
//	go run ./scripts/bench pipeline -check
package pipeline

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// bench names the benchmark's topics, consumer groups and databases (see
// benchkit.Prefixes) and its temporary directory.
const bench = "pipelinebench"

// options are the benchmark's flags.
type options struct {
	benchkit.StoreFlags
	out string

	start    int
	factor   float64
	step     time.Duration
	settle   time.Duration
	maxSteps int
	misses   int
	batch    int
	senders  int
	subjects int
}

// Run runs the benchmark with its flags, args.
func Run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	// A hard bound on the whole run, in case something hangs: building,
	// starting, consent and stopping take a few minutes at worst.
	bound := 8*time.Minute + time.Duration(o.maxSteps)*(o.step+o.settle+10*time.Second)
	return benchkit.MeasureOrCheck(ctx, bench, &o.StoreFlags, bound, func(ctx context.Context, cl *benchkit.Cleanups) (*report, error) {
		return benchmark(ctx, o, cl)
	})
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := benchkit.NewFlagSet("pipeline")
	o.Define(fs, "./collector, ./enricher, ./sink and configs/")
	fs.StringVar(&o.out, "out", "", "folder of the report and chart (default .deps/bench/pipeline-<run> under -root)")
	fs.IntVar(&o.start, "start", 2000, "events/s offered in the first step (100-200000)")
	fs.Float64Var(&o.factor, "factor", 1.5, "each step offers this many times the rate of the one before (1.05-4)")
	fs.DurationVar(&o.step, "step", 30*time.Second, "duration of each step (5s-10m)")
	fs.DurationVar(&o.settle, "settle", 15*time.Second, "after each step, wait at most this long for its followed events to be queryable (2s-5m)")
	fs.IntVar(&o.maxSteps, "max-steps", 8, "at most this many steps (1-30)")
	fs.IntVar(&o.misses, "misses", 2, "stop after this many steps in a row not sustained: on a shared machine one can be noise (1-5)")
	fs.IntVar(&o.batch, "batch", 50, "events per /v1/batch request (1-100)")
	fs.IntVar(&o.senders, "senders", 64, "concurrent clients posting the events (1-512)")
	fs.IntVar(&o.subjects, "subjects", 3000, "subjects the events are about, each with consent recorded first (30-100000)")
	return o, benchkit.Parse(fs, args, func() error {
		if err := o.Validate(); err != nil {
			return err
		}
		var l benchkit.Limits
		l.Int("start", o.start, 100, 200000)
		l.Float("factor", o.factor, 1.05, 4)
		l.Duration("step", o.step, 5*time.Second, 10*time.Minute)
		l.Duration("settle", o.settle, 2*time.Second, 5*time.Minute)
		l.Int("max-steps", o.maxSteps, 1, 30)
		l.Int("misses", o.misses, 1, 5)
		l.Int("batch", o.batch, 1, 100)
		l.Int("senders", o.senders, 1, 512)
		l.Int("subjects", o.subjects, 30, 100000)
		if err := l.Err(); err != nil {
			return err
		}
		if err := benchkit.CheckRoot(o.Root, "configs/collector.yaml", "configs/enricher.yaml", "configs/catalogue.yaml",
			"configs/sink-intl.yaml", benchkit.DevPseudonymKey, benchkit.DevExportKey); err != nil {
			return err
		}
		var err error
		o.Root, err = filepath.Abs(o.Root)
		return err
	})
}

// Write prints the report after the cleanup, and writes it with its chart
// to its folder.
func (r *report) Write(w io.Writer, cleanupErr error) error {
	r.cleanupErr = cleanupErr
	r.print(w)
	if err := benchkit.WriteFiles(r.dir, map[string][]byte{"report.txt": r.text(), "chart.svg": r.chart()}); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nReport and chart: %s\n", r.dir)
	return nil
}

func benchmark(ctx context.Context, o options, cl *benchkit.Cleanups) (*report, error) {
	run, err := benchkit.NewRun(ctx, bench, &o.StoreFlags, cl)
	if err != nil {
		return nil, err
	}
	dir := o.out
	if dir == "" {
		dir = filepath.Join(o.Root, ".deps", "bench", "pipeline-"+run.RunID)
	}
	rep := &report{opts: o, runID: run.RunID, nproc: runtime.NumCPU(), dir: dir, background: run.Background}
	p, err := benchkit.StartPipeline(ctx, run, &o.StoreFlags, benchkit.PipelineSpec{Export: true}, cl)
	if err != nil {
		return rep, err
	}
	err = measure(ctx, run.Infra, o, p, rep)
	rep.stopErr = p.Stop()
	if err == nil {
		err = ctx.Err()
	}
	return rep, err
}
