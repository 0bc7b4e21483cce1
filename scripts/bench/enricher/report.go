package enricher

import (
	"fmt"
	"io"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// goal is the enricher's throughput the issue asks for, as a share of the
// baseline's.
const goal = 0.5

type roundResult struct {
	round                                              int
	baseline, passthrough, floor                       baselineResult
	enricher                                           enricherResult
	baselineCPU, passthroughCPU, floorCPU, enricherCPU benchkit.CPUUsage // by the slots cpuSelf, cpuKafka
}

func (r roundResult) ratio() float64 {
	return r.enricher.eventsPerSec() / r.baseline.eventsPerSec()
}

type report struct {
	opts         options
	runID        string
	eventBytes   float64
	kafkaWatched bool
	background   float64 // share of the machine busy before the run
	rounds       []roundResult
}

func (rep *report) print(w io.Writer) {
	o := rep.opts
	fmt.Fprintf(w, "\nenricherbench run %s: %d raw events (%.0f bytes of envelope JSON each), %d subjects, %d rounds; %d CPUs, %.0f%% busy before the run\n",
		rep.runID, o.events, rep.eventBytes, o.subjects, o.rounds, runtime.NumCPU(), 100*rep.background)
	fmt.Fprintf(w, "baseline: consume raw -> produce unchanged (async, no transactions); enricher: pipeline.Default(), max_poll_records %d, transactions, consent + in-region and export profiles\n\n",
		rep.maxPollRecords())

	tw := benchkit.NewTable(w)
	fmt.Fprintln(tw, "round\tbaseline ev/s\tenricher ev/s\tenricher/baseline\t\tenricher ev/s from 1st fetch\tratio\tpassthrough ev/s\tpassthrough/baseline\tenricher/passthrough\tfloor ev/s\tfloor/baseline\tenricher/floor\t")
	for _, r := range rep.rounds {
		pt, fl, base := r.passthrough.eventsPerSec(), r.floor.eventsPerSec(), r.baseline.eventsPerSec()
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f\t%s\t%.0f\t%.2f\t%.0f\t%.2f\t%.2f\t%.0f\t%.2f\t%.2f\t\n", r.round, base, r.enricher.eventsPerSec(),
			r.ratio(), verdict(r.ratio()), r.enricher.eventsPerSecFromFetch(), r.enricher.eventsPerSecFromFetch()/base,
			pt, pt/base, r.enricher.eventsPerSec()/pt, fl, fl/base, r.enricher.eventsPerSec()/fl)
	}
	tw.Flush()
	fmt.Fprintln(w, "passthrough: the same copy in transactions, as the enricher moves records (no transform): passthrough/baseline is what")
	fmt.Fprintln(w, "exactly-once costs on this broker, enricher/passthrough the share of that ceiling the enricher keeps")
	fmt.Fprintln(w, "floor: the passthrough writing the enricher's records (clean, a third also export) and computing its keyed pseudonyms,")
	fmt.Fprintln(w, "reading no JSON: floor/baseline bounds any enricher of this policy here, enricher/floor is what its JSON work leaves of that")

	fmt.Fprintf(w, "\nCPU per event (µs; this process is the baseline loop or the enricher; busy = whole machine, of %d CPUs):\n", runtime.NumCPU())
	tw = benchkit.NewTable(w)
	fmt.Fprintln(tw, "round\tphase\tseconds\tself\tkafka\tother\tbusy\tself cores\t")
	for _, r := range rep.rounds {
		for _, p := range []struct {
			name string
			cpu  benchkit.CPUUsage
		}{{"baseline", r.baselineCPU}, {"passthrough", r.passthroughCPU}, {"floor", r.floorCPU}, {"enricher", r.enricherCPU}} {
			per := func(d time.Duration) string { return benchkit.MicrosPer(d, int64(o.events)) }
			self := p.cpu.Procs[cpuSelf]
			// /proc/stat and getrusage tick apart, so a small negative is read as zero.
			kafka, other := per(p.cpu.Procs[cpuKafka]), per(max(p.cpu.Other(), 0))
			if !rep.kafkaWatched {
				kafka = "-"
			}
			fmt.Fprintf(tw, "%d\t%s\t%.2f\t%s\t%s\t%s\t%.0f%%\t%.2f\t\n", r.round, p.name, p.cpu.Wall.Seconds(), per(self), kafka, other,
				100*benchkit.MachineShare(p.cpu.Busy, p.cpu.Wall), self.Seconds()/p.cpu.Wall.Seconds())
		}
	}
	tw.Flush()

	fmt.Fprintln(w, "\nenricher, per round (counts from its metrics; every event should be kept, about a third exported;")
	fmt.Fprintln(w, "Start->1st fetch 0s: raw records were fetched before Start returned, the group being joined during the rebuild):")
	tw = benchkit.NewTable(w)
	fmt.Fprintln(tw, "round\tconsent rebuild\tNew->Start\tStart->1st fetch\tin\tkept\texported\tdropped\ttxns\taborted\tev/txn\ttxn mean\tEnd mean\t")
	for _, r := range rep.rounds {
		e := r.enricher
		fmt.Fprintf(tw, "%d\t%v\t%v\t%v\t%.0f\t%.0f\t%.0f (%.1f%%)\t%s\t%.0f\t%.0f\t%.0f\t%v\t%v\t\n", r.round,
			e.rebuild.Round(time.Millisecond), e.start.Round(time.Millisecond), e.firstFetch.Round(time.Millisecond),
			e.in, e.kept, e.exported, 100*e.exported/math.Max(e.in, 1), droppedText(e.dropped), e.committed, e.aborted,
			e.in/math.Max(e.committed, 1), e.txnMean.Round(100*time.Microsecond), e.commitMean.Round(100*time.Microsecond))
	}
	tw.Flush()
	fmt.Fprintf(w, "consent store: %.0f consent records applied at each start (enricher_consent_store_rebuild_seconds above)\n",
		rep.rounds[0].enricher.consentRecords)

	ratios, floors := make([]float64, len(rep.rounds)), make([]float64, len(rep.rounds))
	for i, r := range rep.rounds {
		ratios[i], floors[i] = r.ratio(), r.floor.eventsPerSec()/r.baseline.eventsPerSec()
	}
	fmt.Fprintf(w, "\nenricher/baseline: min %.2f, median %.2f, max %.2f over %d rounds (goal: at least %.1f) -> %s\n",
		slices.Min(ratios), median(ratios), slices.Max(ratios), len(ratios), goal, verdict(slices.Min(ratios)))
	fmt.Fprintf(w, "floor/baseline:    min %.2f, median %.2f, max %.2f (the most any enricher of this policy reaches here)\n",
		slices.Min(floors), median(floors), slices.Max(floors))
}

// median is the middle of xs (the mean of the two middle ones for an
// even count): rounds on a shared machine have outliers either way.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (rep *report) maxPollRecords() int {
	if rep.opts.maxPollRecords > 0 {
		return rep.opts.maxPollRecords
	}
	cfg, _ := benchConfig(rep.opts, newBenchTopics("x"), "x")
	return cfg.MaxPollRecords
}

func verdict(ratio float64) string {
	if ratio >= goal {
		return "ok"
	}
	return "BELOW GOAL"
}

func droppedText(d map[string]float64) string {
	var parts []string
	for _, reason := range slices.Sorted(maps.Keys(d)) {
		if d[reason] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%.0f", reason, d[reason]))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ",")
}

// check is the sanity of the run: every event consumed once and kept,
// about a third exported, none dropped. A failure means the figures do not
// measure what they say.
func (rep *report) check() error {
	for _, r := range rep.rounds {
		e := r.enricher
		share := e.exported / math.Max(e.in, 1)
		if e.in != float64(e.events) || e.kept != e.in || e.droppedTotal() > 0 || share < 0.25 || share > 0.42 {
			return fmt.Errorf("round %d: enricher consumed %.0f, kept %.0f, exported %.0f, dropped %s of %d events: want all kept, about a third exported",
				r.round, e.in, e.kept, e.exported, droppedText(e.dropped), e.events)
		}
	}
	return nil
}
