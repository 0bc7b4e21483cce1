package ingest

import (
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// Goals the ratios are judged against.
const (
	goalThroughputRatio = 0.5 // collector/raw events/s at batch 20, at least
	goalP99Ratio        = 3.0 // collector/noop p99 at half load, below
)

// result is one measurement of one target at one batch size.
type result struct {
	target string
	batch  int
	st     stats
}

// report is everything one run found.
type report struct {
	opts                  options
	nproc                 int
	eventBytes, bodyBytes int
	closed, open          []result
	halfRate              float64
	peakRSSKiB            int64
	background            float64 // share of the machine busy before any load
	kafkaWatched          bool
	cleanupErr            error
}

func (r *report) find(rs []result, target string, batch int) result {
	for _, x := range rs {
		if x.target == target && x.batch == batch {
			return x
		}
	}
	return result{}
}

func (r *report) print(out io.Writer) {
	fmt.Fprintf(out, "\ningestbench: nproc %d, GOMAXPROCS %d, %d workers, %v per measurement (+%v warm-up)\n",
		r.nproc, runtime.GOMAXPROCS(0), r.opts.workers, r.opts.duration, r.opts.warmup)
	fmt.Fprintf(out, "events: %d bytes of JSON each; a batch-%d request body is %d bytes\n", r.eventBytes, latencyBatch, r.bodyBytes)
	fmt.Fprintf(out, "background: %.0f%% of the machine busy before any load (other tenants)\n", 100*r.background)
	if r.opts.rawAsync {
		fmt.Fprint(out, "raw: Produce per record, then wait for every promise, as the collector does (lz4, no linger)\n\n")
	} else {
		fmt.Fprint(out, "raw: ProduceSync per batch, with the collector's producer settings (lz4, no linger; -raw-async produces as the collector does)\n\n")
	}

	fmt.Fprintf(out, "Maximum throughput (closed loop, %d workers)\n", r.opts.workers)
	tw := benchkit.NewTable(out)
	fmt.Fprintln(tw, "target\tbatch\tevents/s\treq/s\tp50\tp99\terrors\t\tcpu µs/event: bench\tcollector\tkafka\tother\tbusy\t")
	for _, x := range r.closed {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%s\t%s\t%d\t\t%s\t%s\t%s\t%s\t%s\t\n", x.target, x.batch,
			x.st.eventsPerSec(), x.st.requestsPerSec(), ms(x.st.percentile(0.50)), ms(x.st.percentile(0.99)), x.st.errors,
			benchkit.MicrosPer(x.st.cpu.Procs[cpuSelf], x.st.events), collectorCPU(x), r.kafkaCPU(x), benchkit.MicrosPer(x.st.cpu.Other(), x.st.events),
			r.busy(x.st))
	}
	tw.Flush()

	fmt.Fprintf(out, "\nLatency at half the collector's maximum (open loop, batch %d, %.0f events/s, from when each request was due)\n", latencyBatch, r.halfRate)
	tw = benchkit.NewTable(out)
	fmt.Fprintln(tw, "target\tevents/s\tp50\tp99\tmax\terrors\tbusy\t")
	for _, x := range r.open {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%d\t%s\t\n", x.target, x.st.eventsPerSec(),
			ms(x.st.percentile(0.50)), ms(x.st.percentile(0.99)), ms(x.st.percentile(1)), x.st.errors, r.busy(x.st))
	}
	tw.Flush()

	r.printRatios(out)
	r.printErrors(out)
	if r.cleanupErr != nil {
		fmt.Fprintf(out, "cleanup FAILED: %v\n", r.cleanupErr)
	} else {
		fmt.Fprintln(out, "cleanup: collector stopped by SIGTERM (exit 0), bench topics deleted")
	}
}

func (r *report) printRatios(out io.Writer) {
	fmt.Fprintln(out, "\nRatios (read these: absolute figures drift on a shared machine)")
	for _, b := range benchSizes {
		ratio := r.find(r.closed, "collector", b).st.eventsPerSec() / r.find(r.closed, "raw", b).st.eventsPerSec()
		goal := ""
		if b == latencyBatch {
			goal = verdict(ratio >= goalThroughputRatio, fmt.Sprintf("goal >= %.1f", goalThroughputRatio))
		}
		fmt.Fprintf(out, "  collector/raw events/s, batch %2d:         %5.2f  %s\n", b, ratio, goal)
	}
	for _, b := range benchSizes {
		relay := r.find(r.closed, "relay", b).st.eventsPerSec()
		fmt.Fprintf(out, "  relay/raw, collector/relay, batch %2d:     %5.2f, %.2f  (the HTTP hop's ceiling; the collector's share of it)\n",
			b, relay/r.find(r.closed, "raw", b).st.eventsPerSec(), r.find(r.closed, "collector", b).st.eventsPerSec()/relay)
	}
	c, n := r.find(r.open, "collector", latencyBatch).st, r.find(r.open, "noop", latencyBatch).st
	p99 := float64(c.percentile(0.99)) / float64(n.percentile(0.99))
	fmt.Fprintf(out, "  collector/noop p99 at half load, batch %d: %5.2f  %s\n", latencyBatch, p99,
		verdict(p99 < goalP99Ratio, fmt.Sprintf("goal < %.0f", goalP99Ratio)))
	relay := r.find(r.open, "relay", latencyBatch).st
	fmt.Fprintf(out, "  relay/noop p99 at half load, batch %d:     %5.2f  (what waiting for Kafka's acknowledgement alone adds)\n", latencyBatch,
		float64(relay.percentile(0.99))/float64(n.percentile(0.99)))
	fmt.Fprintf(out, "  collector peak RSS (VmHWM):              %5.1f MiB\n", float64(r.peakRSSKiB)/1024)
}

// printErrors shows the first error of each measurement that had any, since
// a fast target that fails is not fast.
func (r *report) printErrors(out io.Writer) {
	for _, x := range append(append([]result{}, r.closed...), r.open...) {
		if x.st.errors > 0 {
			fmt.Fprintf(out, "errors: %s batch %d: %d of %d requests failed; first: %v\n", x.target, x.batch, x.st.errors, x.st.requests, x.st.firstErr)
		}
	}
}

// busy is the machine's CPU utilisation over the measurement, all cores.
func (r *report) busy(st stats) string {
	return fmt.Sprintf("%.0f%%", 100*benchkit.MachineShare(st.cpu.Busy, st.elapsed))
}

// collectorCPU is only meaningful for the collector's rows: on the others
// the collector is idle.
func collectorCPU(x result) string {
	if x.target != "collector" {
		return "-"
	}
	return benchkit.MicrosPer(x.st.cpu.Procs[cpuCollector], x.st.events)
}

// kafkaCPU is the broker's CPU time per event, when it was found.
func (r *report) kafkaCPU(x result) string {
	if !r.kafkaWatched {
		return "-"
	}
	return benchkit.MicrosPer(x.st.cpu.Procs[cpuKafka], x.st.events)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool, goal string) string { return goal + ": " + benchkit.Verdict(ok) }
