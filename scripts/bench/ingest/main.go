// Package ingest is the bench tool's collector benchmark (go run
// ./scripts/bench ingest). It measures how close the collector comes to what the
// machine and the broker allow. In one run (about two minutes with the
// defaults) it loads three targets with the same Segment track events
// (about 780 bytes of JSON each, unique messageIds), and a fourth, relay
// (below):
//
//   - collector: the real binary, built from ./collector and started with
//     configs/collector.yaml, its listeners on free 127.0.0.1 ports and its
//     topics renamed to fresh ingestbench.* ones. Its 200 means Kafka has
//     acknowledged every event of the request.
//   - noop: an in-process net/http server on a real 127.0.0.1 listener that
//     reads each body and answers {"success":true}: the cost of HTTP alone.
//   - raw: a franz-go producer with the collector's settings (acks=all,
//     idempotent, lz4, no linger) writing each event as a record keyed by
//     anonymousId, one ProduceSync per batch, to its own topic: the cost of
//     Kafka alone, and the ceiling for the collector. -raw-async makes the
//     baseline produce the collector's way instead (Produce per record,
//     then wait for every promise).
//
// For batches of 1 and 20 events it runs a closed loop (-workers clients,
// each sending the next batch when the last is answered, for -duration) and
// reports events/s and request latency p50/p99. Then, at batch 20, it runs
// an open loop at half the collector's maximum events/s against the
// collector, the relay (below) and the no-op server, timing each request
// from when it was due, so queueing counts. Finally it reads the
// collector's peak RSS (VmHWM) and stops it with SIGTERM, and deletes every
// topic it created.
//
// How to read it: the machine is shared and has few cores, so the load
// generator, the collector and Kafka compete for the same CPUs and absolute
// figures drift from run to run. Read the ratios, which compare targets
// measured seconds apart under the same conditions:
//
//   - collector/raw events/s: the share of the bare producer's throughput
//     the collector keeps (goal at batch 20: at least 0.5).
//   - collector p99 / noop p99 at half load: what the collector adds to tail
//     latency when it is not saturated (goal: below 3).
//
// The cpu columns show where time goes: CPU time per event of this process
// (load generator, plus the no-op server or the raw producer), of the
// collector process, of the Kafka broker, and the rest of the machine's busy
// time (other tenants, unattributed kernel work); busy is the whole
// machine's utilisation, and background what other tenants used before any
// load was applied.
//
// A fourth target splits the gap to raw in two. relay is an in-process
// net/http server that produces each event of a body as a record and
// answers once all are acknowledged, nothing more (no authentication,
// validation, limits or envelope): relay/raw is the ceiling of any
// collector built on net/http and franz-go on this machine, and
// collector/relay the share of that ceiling the collector keeps; relay/noop
// p99 at half load is what waiting for Kafka's acknowledgement alone adds
// to the tail.
//
// Usage, from the repository root with Kafka running (scripts/deps.sh up):
//
//	go run ./scripts/bench ingest [-workers 32] [-duration 10s] [-warmup 1s]
//	go run ./scripts/bench ingest -check-topics   # lists ingestbench.* topics left behind
package ingest

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// options are the benchmark's flags.
type options struct {
	benchkit.BrokerFlags
	root        string
	writeKey    string
	workers     int
	duration    time.Duration
	warmup      time.Duration
	kafkaPID    int
	rawAsync    bool
	checkTopics bool
}

// Run runs the benchmark with its flags, args.
func Run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	switch {
	case err != nil:
		return err
	case o.checkTopics:
		return checkTopics(o.Brokers)
	}
	// A hard bound on the whole run, in case a target hangs: every
	// measurement, plus build, start-up and clean-up.
	bound := 8*(o.duration+o.warmup+requestTimeout) + 3*time.Minute
	return benchkit.Measure(ctx, bound, func(ctx context.Context, cl *benchkit.Cleanups) (*report, error) {
		return benchmark(ctx, o, cl)
	})
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := benchkit.NewFlagSet("ingest")
	o.Define(fs)
	fs.StringVar(&o.root, "root", ".", "repository root (holds ./collector and configs/collector.yaml)")
	fs.StringVar(&o.writeKey, "write-key", "demo-write-key", "collector write key (HTTP Basic username)")
	fs.IntVar(&o.workers, "workers", 32, "concurrent clients per target (1-256; the collector serves 256 at once)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measurement (1s-30s)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each closed-loop measurement (0-5s)")
	fs.IntVar(&o.kafkaPID, "kafka-pid", 0, "broker process, to report its CPU time (0: the process listening on the first broker's port; -1: none)")
	fs.BoolVar(&o.rawAsync, "raw-async", false, "raw baseline produces record by record and waits for the promises, as the collector does, instead of one ProduceSync per batch")
	fs.BoolVar(&o.checkTopics, "check-topics", false, "only list bench topics left on the broker; exit 1 if any")
	return o, benchkit.Parse(fs, args, func() error {
		// The bench floods what it talks to, so it only talks to loopback.
		if err := o.Validate(); err != nil {
			return err
		}
		// Bounds keep one run within a few minutes on a shared machine.
		var l benchkit.Limits
		l.Int("workers", o.workers, 1, 256)
		l.Duration("duration", o.duration, time.Second, 30*time.Second)
		l.Duration("warmup", o.warmup, 0, 5*time.Second)
		if err := l.Err(); err != nil {
			return err
		}
		return benchkit.CheckRoot(o.root, "configs/collector.yaml")
	})
}

// Write prints the report after the cleanup.
func (r *report) Write(w io.Writer, cleanupErr error) error {
	r.cleanupErr = cleanupErr
	r.print(w)
	return nil
}

// benchSizes are the batch sizes measured: single events (a browser SDK
// flushing at once) and 20 (a typical SDK flush). latencyBatch is the one
// the half-load latency comparison uses.
var benchSizes = []int{1, 20}

const latencyBatch = 20

// target is one thing under load.
type target struct {
	name string
	send sendFunc
}

func benchmark(ctx context.Context, o options, cl *benchkit.Cleanups) (*report, error) {
	runID := fmt.Sprintf("%d-%d", time.Now().Unix(), os.Getpid())
	gen, err := newEventGen(runID)
	if err != nil {
		return nil, err
	}
	rep := &report{opts: o, nproc: runtime.NumCPU(), eventBytes: gen.eventSize(), bodyBytes: len(gen.batchBody(latencyBatch))}
	fmt.Fprintf(os.Stderr, "ingestbench: run %s, %d workers, %v per measurement; topics %s%s.*\n", runID, o.workers, o.duration, topicPrefix, runID)

	r, err := setUp(ctx, o, runID, gen, cl)
	if err != nil {
		return nil, err
	}
	clock := benchkit.CPUClock{cpuSelf: benchkit.Self, cpuCollector: r.proc.PID(), cpuKafka: brokerPID(o)}
	rep.kafkaWatched = clock[cpuKafka] > 0
	rep.background = benchkit.BackgroundLoad(time.Second)
	targets := []target{r.collector, r.raw, r.relay, r.noop} // collector and raw adjacent: their ratio is the headline

	for _, batch := range benchSizes {
		for _, t := range targets {
			benchkit.Progress("closed loop: %s, batch %d", t.name, batch)
			if o.warmup > 0 {
				closedLoop(ctx, t.send, batch, o.workers, o.warmup)
			}
			st := measure(clock, func() stats { return closedLoop(ctx, t.send, batch, o.workers, o.duration) })
			progressResult(st)
			rep.closed = append(rep.closed, result{target: t.name, batch: batch, st: st})
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}

	peak := rep.find(rep.closed, "collector", latencyBatch).st
	rep.halfRate = peak.eventsPerSec() / 2
	if rep.halfRate <= 0 {
		return nil, fmt.Errorf("the collector accepted no events at batch %d: %v", latencyBatch, peak.firstErr)
	}
	for _, t := range []target{r.collector, r.relay, r.noop} {
		benchkit.Progress("open loop at %.0f events/s: %s, batch %d", rep.halfRate, t.name, latencyBatch)
		st := measure(clock, func() stats {
			return openLoop(ctx, t.send, latencyBatch, o.workers, rep.halfRate, o.duration)
		})
		progressResult(st)
		rep.open = append(rep.open, result{target: t.name, batch: latencyBatch, st: st})
	}

	// VmHWM is gone once the process exits, so read it before cleanup stops it.
	if rep.peakRSSKiB, err = benchkit.PeakRSS(r.proc.PID()); err != nil {
		return nil, err
	}
	return rep, ctx.Err()
}

// rig is the targets and the collector process behind one of them.
type rig struct {
	proc                        *benchkit.Service
	collector, relay, noop, raw target
}

// setUp builds and starts the collector, starts the no-op server, the raw
// producer and the relay, and registers how to undo each step.
func setUp(ctx context.Context, o options, runID string, gen *eventGen, cl *benchkit.Cleanups) (*rig, error) {
	adm, err := benchkit.NewAdmin(o.Brokers, "ingestbench-admin")
	if err != nil {
		return nil, err
	}
	cl.Add(func() error { adm.Close(); return nil })
	topics := newBenchTopics(runID)
	// Registered before the collector starts so it runs after the collector
	// has stopped writing.
	cl.Add(func() error { return benchkit.DeleteTopicsAndGroups(adm, topics.all(), nil) })

	_, bins, err := benchkit.BuildTemp(ctx, "ingestbench", o.root, cl, "./collector")
	if err != nil {
		return nil, err
	}
	benchkit.Progress("starting the collector")
	httpAddr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	// The repository's config, with overrides for the listen address,
	// brokers, topics and log level; dev mode for its demo write keys.
	proc, err := benchkit.StartService(bins[0], o.root, "collector", "HTTP_LISTEN="+httpAddr,
		"KAFKA_BROKERS="+strings.Join(o.Brokers, ","), "TOPICS_RAW_NAME="+topics.raw,
		"TOPICS_CONSENT_NAME="+topics.consent, "LOG_LEVEL=warn", "DEV_MODE=true")
	if err != nil {
		return nil, err
	}
	if _, err := proc.WaitReady(ctx); err != nil {
		_ = proc.Stop()
		return nil, err
	}
	cl.Add(proc.Stop)
	collectorSend, closeIdle := newHTTPSender(gen, "http://"+httpAddr, o.writeKey, o.workers)
	cl.Add(func() error { closeIdle(); return nil })

	srv, err := startNoop()
	if err != nil {
		return nil, err
	}
	cl.Add(func() error { srv.close(); return nil })
	noopSend, closeIdle := newHTTPSender(gen, "http://"+srv.addr, o.writeKey, o.workers)
	cl.Add(func() error { closeIdle(); return nil })

	// Like the collector's raw topic: 3 partitions, one replica.
	if err := benchkit.CreateTopic(ctx, adm, topics.baseline, 3, nil); err != nil {
		return nil, err
	}
	producer, err := newRawProducer(o.Brokers, topics.baseline)
	if err != nil {
		return nil, err
	}
	cl.Add(func() error { producer.Close(); return nil })

	relayProducer, err := newRawProducer(o.Brokers, topics.baseline)
	if err != nil {
		return nil, err
	}
	cl.Add(func() error { relayProducer.Close(); return nil })
	relay, err := startRelay(relayProducer)
	if err != nil {
		return nil, err
	}
	cl.Add(func() error { relay.close(); return nil })
	relaySend, closeIdle := newHTTPSender(gen, "http://"+relay.addr, o.writeKey, o.workers)
	cl.Add(func() error { closeIdle(); return nil })

	return &rig{
		proc:      proc,
		collector: target{"collector", collectorSend},
		relay:     target{"relay", relaySend},
		noop:      target{"noop", noopSend},
		raw:       target{"raw", rawSender(producer, gen, o.rawAsync)},
	}, nil
}

func progressResult(st stats) {
	benchkit.Progress("  %.0f events/s, p50 %s, p99 %s, %d errors", st.eventsPerSec(), ms(st.percentile(0.5)), ms(st.percentile(0.99)), st.errors)
	if st.firstErr != nil {
		benchkit.Progress("  first error: %v", st.firstErr)
	}
}
