// Package sink is the bench tool's sink benchmark (go run ./scripts/bench
// sink). It measures the sink against what ClickHouse allows on the
// same machine, and how fresh the data is at a steady load through the whole
// pipeline. It is a benchmark, not a test: it prints figures and judges
// nothing but the sanity of its own run. Two parts, each on by default:
//
// Throughput (-throughput). A per-run topic (sinkbench.<run>.clean, 3
// partitions like events.clean.cn) is pre-filled with -events clean events
// as the enricher writes them (event.Clean JSON, zstd-compressed batches,
// keyed by subject pseudonym): page views and product events with purposes,
// pseudonyms of the user, anonymous id, device and advertising id, country,
// truncated IP, generalized user agent, an allow-listed context and 5-8
// properties; about 1.3 KB each. Then -rounds rounds of two phases:
//
//   - sink: the real binary, built from ./sink and started with
//     configs/sink.yaml (batch.max_rows 50000), its topic, dead-letter topic,
//     group, database and admin port overridden by SINK_* variables. Timed
//     from /readyz (schema created, topics checked) until
//     count() of <database>.events reaches -events; its peak RSS (VmHWM) is
//     read before it is stopped, and its /metrics tell how much of the time
//     was spent inside the ClickHouse insert.
//   - raw: clickhouse-go v2 over the native protocol with the sink's own
//     connection settings (internal/chx), PrepareBatch/Append/Send in
//     -insert-batch rows (50000), the same rows with the same column list
//     and values (Kafka partition and offset included), into a fresh
//     database whose events table is a copy of the one the sink created
//     (CREATE TABLE ... AS). The rows are decoded before the clock starts:
//     this is ClickHouse's ceiling, not a second sink. It counts rows every
//     -count-poll while it inserts, as the sink phase does, so the load of
//     those queries weighs on both.
//
// Rounds alternate the order (sink, raw; raw, sink; ...), so drift of the
// shared machine cancels out of the ratios. Before each phase the bench
// waits for ClickHouse's background merges to finish. Every phase counts
// its rows afterwards: exactly -events, or the phase is an error. Each
// phase reports CPU time per row of this process, the sink, ClickHouse and
// the broker. -cpuprofile adds a last phase with the sink in this process
// (chwriter.New, same config) under the CPU profiler, since the sink's
// admin port has no /debug/pprof.
//
// Freshness (-freshness). For each -max-wait (default: the shipped 1s,
// then 250ms through SINK_BATCH_MAX_WAIT) the collector, enricher and sink
// binaries start with the shipped configs on per-run topics, database,
// groups and ports. The bench records consent (analytics; every third
// subject also cross-border) for -subjects subjects through the collector's
// /v1/consent, since the enricher fails closed, then posts Segment batches
// of -batch events at -rate events/s (open loop, paced; -warmup first,
// unsampled), for -duration. For every -sample-every'th event it records
// when the collector answered 200, when the event appeared in the clean
// topic (a read_committed consumer: the enricher's transaction committed),
// and when it became queryable in ClickHouse (count() polled every -poll;
// on a change, the outstanding samples are looked up by message_id and
// stamped with the time the count returned, or the lookup's if more rows
// came meanwhile: an upper bound, late by at most one poll and the
// queries). It reports p50/p90/p99/max from the 200 to queryable, the
// enricher's and the sink's legs, the achieved rate, the sink's inserts,
// the enricher's transactions, and the peak RSS and CPU of the three
// processes. The enricher's transactional ids stay on the broker until it
// expires them (transactional.id.expiration.ms).
//
// Everything created (topics, consumer groups, databases, processes) is
// removed at the end, also after an error or Ctrl-C; -check lists what an
// interrupted run left behind.
//
// How to read it: the machine is shared and has 2 cores that the bench,
// the sink, ClickHouse and Kafka all compete for, so read the ratios of
// phases measured seconds apart, not the absolute rates. Goals: sink/raw
// rows/s at least 0.9; freshness p99 under 2 s at 5,000 events/s.
//
// Usage, from the repository root with Kafka and ClickHouse running
// (scripts/deps.sh up):
//
//	go run ./scripts/bench sink [-events 500000] [-rounds 2] [-duration 30s] [-rate 5000]
//	go run ./scripts/bench sink -freshness=false -cpuprofile /tmp/sink.pprof
//	go run ./scripts/bench sink -throughput=false -max-wait shipped
//	go run ./scripts/bench sink -check
package sink

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// bench names the benchmark's topics, consumer groups and databases (see
// benchkit.Prefixes) and its temporary directory.
const bench = "sinkbench"

// options are the benchmark's flags.
type options struct {
	benchkit.StoreFlags

	throughput  bool
	events      int
	rounds      int
	insertBatch int
	countPoll   time.Duration
	cpuProfile  string

	freshness   bool
	maxWaits    []string // "shipped" leaves batch.max_wait as configs/sink.yaml has it
	rate        int
	batch       int
	duration    time.Duration
	warmup      time.Duration
	subjects    int
	sampleEvery int
	freshPoll   time.Duration
}

// Run runs the benchmark with its flags, args.
func Run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	// A hard bound on the whole run, in case something hangs.
	bound := 10 * time.Minute
	if o.freshness {
		bound += time.Duration(len(o.maxWaits)) * (o.duration + o.warmup + 3*time.Minute)
	}
	if o.throughput {
		bound += time.Duration(o.rounds) * 4 * time.Minute * time.Duration(max(1, o.events/500000))
	}
	return benchkit.MeasureOrCheck(ctx, bench, &o.StoreFlags, bound, func(ctx context.Context, cl *benchkit.Cleanups) (*report, error) {
		return benchmark(ctx, o, cl)
	})
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := benchkit.NewFlagSet("sink")
	o.Define(fs, "./collector, ./enricher, ./sink and configs/")

	fs.BoolVar(&o.throughput, "throughput", true, "run the throughput part: sink vs raw clickhouse-go insert from a pre-filled topic")
	fs.IntVar(&o.events, "events", 500000, "clean events pre-filled and loaded per phase (10000-5000000)")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds of sink and raw, alternating their order (1-5)")
	fs.IntVar(&o.insertBatch, "insert-batch", 50000, "rows per raw insert (the sink's batch.max_rows is 50000)")
	fs.DurationVar(&o.countPoll, "count-poll", 25*time.Millisecond, "how often a throughput phase counts rows in ClickHouse (the raw phase too, so both bear the queries) (5ms-1s)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "also run the sink in this process once more and write its CPU profile here")

	fs.BoolVar(&o.freshness, "freshness", true, "run the freshness part: collector 200 to queryable at a steady rate through all three stages")
	maxWaits := fs.String("max-wait", "shipped,250ms", `sink batch.max_wait per freshness run, comma-separated; "shipped" keeps configs/sink.yaml's`)
	fs.IntVar(&o.rate, "rate", 5000, "events/s posted to the collector (100-50000)")
	fs.IntVar(&o.batch, "batch", 20, "events per /v1/batch request (1-100)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "measured load per freshness run (5s-5m)")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unsampled load before the measured load (0-30s)")
	fs.IntVar(&o.subjects, "subjects", 2000, "subjects the events are about, each with consent recorded first (10-100000)")
	fs.IntVar(&o.sampleEvery, "sample-every", 10, "follow every n-th event to ClickHouse (1-1000)")
	fs.DurationVar(&o.freshPoll, "poll", 50*time.Millisecond, "how often the freshness run counts rows in ClickHouse (10ms-1s)")

	return o, benchkit.Parse(fs, args, func() error {
		if err := o.Validate(); err != nil {
			return err
		}
		var err error
		if o.maxWaits, err = parseMaxWaits(*maxWaits); err != nil {
			return err
		}
		var l benchkit.Limits
		l.Int("events", o.events, 10000, 5000000)
		l.Int("rounds", o.rounds, 1, 5)
		l.Int("insert-batch", o.insertBatch, 1000, 1000000)
		l.Duration("count-poll", o.countPoll, 5*time.Millisecond, time.Second)
		l.Int("rate", o.rate, 100, 50000)
		l.Int("batch", o.batch, 1, 100)
		l.Duration("duration", o.duration, 5*time.Second, 5*time.Minute)
		l.Duration("warmup", o.warmup, 0, 30*time.Second)
		l.Int("subjects", o.subjects, 10, 100000)
		l.Int("sample-every", o.sampleEvery, 1, 1000)
		l.Duration("poll", o.freshPoll, 10*time.Millisecond, time.Second)
		l.Check(!o.freshness || len(o.maxWaits) > 0, "-max-wait: name at least one (shipped, 250ms, ...)")
		l.Check(o.throughput || o.freshness || o.Check, "nothing to do: -throughput and -freshness are both false")
		if err := l.Err(); err != nil {
			return err
		}
		return benchkit.CheckRoot(o.Root, "configs/sink.yaml")
	})
}

// parseMaxWaits is -max-wait's list: shipped or positive durations.
func parseMaxWaits(list string) ([]string, error) {
	var waits []string
	for _, w := range strings.Split(list, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if w != "shipped" {
			if d, err := time.ParseDuration(w); err != nil || d <= 0 {
				return nil, fmt.Errorf("-max-wait %q: want shipped or a positive duration such as 250ms", w)
			}
		}
		waits = append(waits, w)
	}
	return waits, nil
}

// Write prints the report after the cleanup.
func (r *report) Write(w io.Writer, cleanupErr error) error {
	r.cleanupErr = cleanupErr
	r.print(w)
	return nil
}

func benchmark(ctx context.Context, o options, cl *benchkit.Cleanups) (*report, error) {
	run, err := benchkit.NewRun(ctx, bench, &o.StoreFlags, cl)
	if err != nil {
		return nil, err
	}
	rep := &report{opts: o, runID: run.RunID, nproc: runtime.NumCPU(), background: run.Background}
	env := &infra{Run: run, o: o}
	if o.throughput {
		if rep.tput, err = runThroughput(ctx, env, cl); err != nil {
			return rep, fmt.Errorf("throughput: %w", err)
		}
	}
	if o.freshness {
		for i, w := range o.maxWaits {
			fr, err := runFreshness(ctx, env, i, w, cl)
			if fr != nil {
				rep.fresh = append(rep.fresh, fr)
			}
			if err != nil {
				return rep, fmt.Errorf("freshness (max_wait %s): %w", w, err)
			}
		}
	}
	return rep, ctx.Err()
}
