package sink

import (
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// Goals the figures are judged against (the issue's).
const (
	goalThroughputRatio = 0.9             // sink/raw rows/s, at least
	goalFreshP99        = 2 * time.Second // collector 200 to queryable at 5,000 events/s, below
)

// report is everything one run found.
type report struct {
	opts       options
	runID      string
	nproc      int
	background float64 // share of the machine busy before any load
	tput       *tputReport
	fresh      []*freshReport
	cleanupErr error
}

func (r *report) print(out io.Writer) {
	fmt.Fprintf(out, "\nsinkbench: run %s, nproc %d, GOMAXPROCS %d\n", r.runID, r.nproc, runtime.GOMAXPROCS(0))
	fmt.Fprintf(out, "background: %.0f%% of the machine busy before any load (other tenants)\n", 100*r.background)
	if r.tput != nil {
		r.tput.print(out, r.opts)
	}
	for _, f := range r.fresh {
		f.print(out, r.opts)
	}
	if r.cleanupErr != nil {
		fmt.Fprintf(out, "\ncleanup FAILED: %v\n", r.cleanupErr)
	} else {
		fmt.Fprintln(out, "\ncleanup: processes stopped; topics, consumer groups and databases of this run deleted")
	}
}

func (t *tputReport) print(out io.Writer, o options) {
	fmt.Fprintf(out, "\nThroughput: %d clean events pre-filled (%.0f bytes of JSON each, zstd batches) in %v; partitions %v\n",
		t.events, float64(t.valueBytes)/float64(max(t.events, 1)), t.prefill.Round(time.Millisecond), t.partitions)
	if t.decodeRows > 0 {
		fmt.Fprintf(out, "reference decode (event.DecodeClean + flatten properties, the sink's fallback; its one-pass decoder: BenchmarkDecodeRow, %d rows): one goroutine %.1f µs/row (%.0f rows/s); %d goroutines %.1f µs/row (%.0f rows/s)\n",
			t.decodeRows, t.decodeNs/1000, 1e9/t.decodeNs, runtime.GOMAXPROCS(0), t.decodeParNs/1000, 1e9/t.decodeParNs)
	}
	fmt.Fprintf(out, "sink: binary with configs/sink.yaml, timed from /readyz to count() = %d (polled every %v); raw: clickhouse-go PrepareBatch/Append/Send of %d rows, decoded beforehand\n\n",
		t.events, o.countPoll, o.insertBatch)
	tw := benchkit.NewTable(out)
	fmt.Fprintln(tw, "round\ttarget\trows/s\ttime\tstart-up\tfirst row\tin insert\tinserts\tpeak RSS\t\tcpu µs/row: bench\tsink\tclickhouse\tkafka\tother\tbusy\tsettle\t")
	phases := t.phases
	if t.profile != nil {
		phases = append(phases[:len(phases):len(phases)], *t.profile)
	}
	for _, p := range phases {
		round := fmt.Sprint(p.round)
		if p.round == 0 {
			round = "-"
		}
		startup, first, inInsert, inserts, rss := "", "", "", "", ""
		if p.target != "raw" {
			startup, first = p.startup.Round(time.Millisecond).String(), p.firstRow.Round(time.Millisecond).String()
		}
		if p.target == "sink" {
			inInsert = fmt.Sprintf("%.0f%%", 100*p.insertSeconds/p.wall.Seconds())
			inserts = fmt.Sprintf("%.0f (%.0f/%.0f/%.0f)", p.inserts, p.flushes["rows"], p.flushes["bytes"], p.flushes["time"])
			rss = fmt.Sprintf("%.0f MiB", float64(p.peakRSSKiB)/1024)
		}
		c := p.cpu.Procs
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\t%s\t%s\t%s\t%s\t%s\t%.0f%%\t%s\t\n", round, p.target, p.rowsPerSec(),
			p.wall.Round(time.Millisecond), startup, first, inInsert, inserts, rss,
			perRow(c[cpuSelf], p.rows), perRow(c[cpuSink], p.rows), perRow(c[cpuClickHouse], p.rows), perRow(c[cpuKafka], p.rows),
			perRow(p.cpu.Other(), p.rows), 100*benchkit.MachineShare(p.cpu.Busy, p.wall), p.settle.Round(100*time.Millisecond))
	}
	tw.Flush()
	fmt.Fprintln(out, "(in insert: share of the sink's time inside PrepareBatch..Send; inserts: count (flushes by rows/bytes/time);")
	fmt.Fprintln(out, " sink in-process: its CPU is under bench; settle: waited for ClickHouse merges before the phase)")

	// Ratios within each round (phases seconds apart), then over the run.
	var sinkRows, rawRows uint64
	var sinkWall, rawWall time.Duration
	fmt.Fprint(out, "\nsink/raw rows/s by round:")
	for round := 1; round <= o.rounds; round++ {
		var s, r *phase
		for i := range t.phases {
			p := &t.phases[i]
			if p.round != round {
				continue
			}
			switch p.target {
			case "sink":
				s = p
				sinkRows += p.rows
				sinkWall += p.wall
			case "raw":
				r = p
				rawRows += p.rows
				rawWall += p.wall
			}
		}
		if s != nil && r != nil && r.rowsPerSec() > 0 {
			fmt.Fprintf(out, " %.2f", s.rowsPerSec()/r.rowsPerSec())
		}
	}
	fmt.Fprintln(out)
	if sinkWall > 0 && rawWall > 0 {
		ratio := (float64(sinkRows) / sinkWall.Seconds()) / (float64(rawRows) / rawWall.Seconds())
		fmt.Fprintf(out, "sink/raw rows/s over the run: %.2f (sink %.0f, raw %.0f rows/s); goal at least %.1f: %s\n", ratio,
			float64(sinkRows)/sinkWall.Seconds(), float64(rawRows)/rawWall.Seconds(), goalThroughputRatio, benchkit.Verdict(ratio >= goalThroughputRatio))
	}
	var peak int64
	for _, p := range t.phases {
		peak = max(peak, p.peakRSSKiB)
	}
	if peak > 0 {
		fmt.Fprintf(out, "sink peak RSS (VmHWM), highest of its runs: %.0f MiB\n", float64(peak)/1024)
	}
	if t.profilePath != "" {
		if t.profileError != nil {
			fmt.Fprintf(out, "CPU profile: in-process sink failed: %v\n", t.profileError)
		} else {
			fmt.Fprintf(out, "CPU profile of the in-process sink: %s (go tool pprof -top %s)\n", t.profilePath, t.profilePath)
		}
	}
}

func (f *freshReport) print(out io.Writer, o options) {
	wait := f.maxWait
	if wait == "shipped" {
		wait = "shipped (configs/sink.yaml, 1s)"
	} else {
		wait += " (SINK_BATCH_MAX_WAIT)"
	}
	fmt.Fprintf(out, "\nFreshness, sink batch.max_wait %s: collector 200 -> queryable in ClickHouse\n", wait)
	l := f.load
	fmt.Fprintf(out, "  load: %d events/s asked, %.0f accepted (%d requests of %d, %d failed, %d started >100ms late, at most %s); request p50 %s, p99 %s; %v measured after %v warm-up; consent for %d subjects took %v\n",
		o.rate, l.eventsPerSec(), l.requests, o.batch, l.errors, l.late, ms(l.maxLate), ms(benchkit.Quantile(l.latencies, 0.5)), ms(benchkit.Quantile(l.latencies, 0.99)),
		o.duration, o.warmup, f.subjects, f.consentTime.Round(time.Millisecond))
	if l.firstErr != nil {
		fmt.Fprintf(out, "  first failed request: %v\n", l.firstErr)
	}
	fmt.Fprintf(out, "  samples: %d followed, %d acknowledged, %d seen in the clean topic, %d queryable (%d missing after %v)\n",
		f.samples, f.acked, f.inClean, f.visible, f.acked-f.visible, f.drain.Round(time.Millisecond))
	tw := benchkit.NewTable(out)
	fmt.Fprintln(tw, "  \tp50\tp90\tp99\tmax\t")
	for _, x := range []struct {
		name string
		d    []time.Duration
	}{{"200 -> queryable", f.fresh}, {"  enricher: 200 -> clean topic", f.enricherLeg}, {"  sink: clean topic -> queryable", f.sinkLeg}} {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t\n", x.name, ms(benchkit.Quantile(x.d, 0.5)), ms(benchkit.Quantile(x.d, 0.9)), ms(benchkit.Quantile(x.d, 0.99)), ms(benchkit.Quantile(x.d, 1)))
	}
	tw.Flush()
	if f.polls > 0 && f.lookups > 0 {
		fmt.Fprintf(out, "  resolution: count() every %v took %s on average; %d lookups after a change, %s each; %d stamped at the lookup's end since rows came meanwhile, the others at the count's\n",
			o.freshPoll, ms(f.pollTime/time.Duration(f.polls)), f.lookups, ms(f.lookupTime/time.Duration(f.lookups)), f.lateStamps)
	}
	p99 := benchkit.Quantile(f.fresh, 0.99)
	fmt.Fprintf(out, "  goal p99 below %v: %s\n", goalFreshP99, benchkit.Verdict(len(f.fresh) > 0 && f.visible == f.acked && p99 < goalFreshP99))
	if f.sinkInserts > 0 {
		fmt.Fprintf(out, "  sink: %.0f inserts of %.0f rows on average, %s each on average; flushes by rows/bytes/time %.0f/%.0f/%.0f\n",
			f.sinkInserts, f.sinkRows/f.sinkInserts, ms(time.Duration(f.sinkInsertSeconds/f.sinkInserts*1e9)),
			f.sinkFlushes["rows"], f.sinkFlushes["bytes"], f.sinkFlushes["time"])
	}
	if f.enricherTxns > 0 {
		fmt.Fprintf(out, "  enricher: %.0f events in, %.0f out, %.0f dropped; %.0f transactions of %.0f events, %s each on average, %s of it ending the transaction; a transaction open %.0f%% of the time\n",
			f.enricherIn, f.enricherOut, f.enricherDropped, f.enricherTxns, f.enricherIn/f.enricherTxns,
			ms(time.Duration(f.enricherTxnSeconds/f.enricherTxns*1e9)), ms(time.Duration(f.enricherCommitSeconds/f.enricherTxns*1e9)),
			100*f.enricherTxnSeconds/(f.warmup.elapsed+f.load.elapsed+f.drain).Seconds())
		fmt.Fprintln(out, "    (its loop runs transactions back to back, so batches grow with the load up to max_poll_records)")
	}
	fmt.Fprintf(out, "  peak RSS: collector %.0f MiB, enricher %.0f MiB, sink %.0f MiB\n",
		float64(f.peak["collector"])/1024, float64(f.peak["enricher"])/1024, float64(f.peak["sink"])/1024)
	if secs := l.elapsed.Seconds(); secs > 0 && len(f.cpu.Procs) > fKafka {
		c := f.cpu.Procs
		share := func(d time.Duration) string { return fmt.Sprintf("%.0f%%", 100*d.Seconds()/secs) }
		fmt.Fprintf(out, "  cpu (%% of one core) during the load: collector %s, enricher %s, sink %s, clickhouse %s, kafka %s, bench %s; machine busy %.0f%%\n",
			share(c[fCollector]), share(c[fEnricher]), share(c[fSink]), share(c[fClickHouse]), share(c[fKafka]), share(c[fSelf]),
			100*benchkit.MachineShare(f.cpu.Busy, l.elapsed))
	}
	if f.stopErr != nil {
		fmt.Fprintf(out, "  stop: %v\n", f.stopErr)
	}
}

func perRow(d time.Duration, rows uint64) string {
	if rows == 0 || d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(d.Nanoseconds())/1000/float64(rows))
}
