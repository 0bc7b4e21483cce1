package pipeline

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// Bounds of a sustained step.
const (
	minAccepted = 0.95            // share of the offered events answered 200
	maxFreshP99 = 2 * time.Second // freshness p99, 200 to queryable
	lagBudget   = 2 * time.Second // lag at the end: at most what the offered rate brings in this long
)

// step is what one step of the load found.
type step struct {
	n         int
	load      loadStats
	queryable map[string]float64 // rows/s by destination, during the step
	lag       map[string]int64   // by group label, at the end of the step
	fresh     freshness
	cpu       benchkit.CPUUsage // over the step and its settle, by the cpuNames slots
	peakRSS   map[string]int64  // KiB by service label, after the step
	verdict   verdict
}

// accepted is the events/s answered 200.
func (s step) accepted() float64 {
	if s.load.elapsed <= 0 {
		return 0
	}
	return float64(s.load.accepted) / s.load.elapsed.Seconds()
}

// freshness summarizes a step's followed events.
type freshness struct {
	n, missing    int // followed, of which not queryable by the end of the settle
	p50, p99, max time.Duration
}

// summarize is the freshness of sorted ages, missing of which are lower
// bounds (events not yet queryable, counted at their age).
func summarize(sorted []time.Duration, missing int) freshness {
	f := freshness{n: len(sorted), missing: missing, p50: benchkit.Quantile(sorted, 0.5), p99: benchkit.Quantile(sorted, 0.99)}
	if len(sorted) > 0 {
		f.max = sorted[len(sorted)-1]
	}
	return f
}

// verdict is why a step was not sustained; none: it was.
type verdict []string

func (v verdict) ok() bool { return len(v) == 0 }

func (v verdict) String() string {
	if v.ok() {
		return "sustained"
	}
	return "NOT sustained: " + strings.Join(v, "; ")
}

// judge says whether a step was sustained: nearly every offered event
// accepted, no request failed, the lag at its end bounded and freshness
// p99 within maxFreshP99.
func judge(l loadStats, lag map[string]int64, f freshness) verdict {
	var v verdict
	offered := float64(l.offered) * l.elapsed.Seconds()
	if float64(l.accepted) < minAccepted*offered {
		v = append(v, fmt.Sprintf("accepted %.0f%% of the offered events (want %.0f%%)", 100*float64(l.accepted)/max(offered, 1), 100*minAccepted))
	}
	if l.failed > 0 {
		v = append(v, fmt.Sprintf("%d requests failed (%v)", l.failed, l.firstErr))
	}
	bound := int64(float64(l.offered) * lagBudget.Seconds())
	for _, g := range slices.Sorted(maps.Keys(lag)) {
		if lag[g] > bound {
			v = append(v, fmt.Sprintf("%s lag %d > %d (%v of load)", g, lag[g], bound, lagBudget))
		}
	}
	switch {
	case f.n == 0:
		v = append(v, "no followed event")
	case f.p99 > maxFreshP99:
		v = append(v, fmt.Sprintf("freshness p99 %v > %v", f.p99.Round(time.Millisecond), maxFreshP99))
	}
	return v
}

// best is the step with the highest accepted rate among the sustained,
// and whether there is one.
func best(steps []step) (step, bool) {
	var b step
	found := false
	for _, s := range steps {
		if s.verdict.ok() && (!found || s.accepted() > b.accepted()) {
			b, found = s, true
		}
	}
	return b, found
}

// report is what the run found.
type report struct {
	opts       options
	runID      string
	nproc      int
	dir        string
	background float64
	steps      []step
	stopErr    error
	cleanupErr error
}

func (r *report) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "pipelinebench run %s: collector, enricher (catalogue on), sinks cn and intl as processes, shipped configs, dev_mode on\n", r.runID)
	fmt.Fprintf(w, "machine: %d cores, shared; %.0f%% busy before any load (other tenants skew every figure;\n", r.nproc, 100*r.background)
	fmt.Fprintln(w, "  Kafka's and ClickHouse's CPU includes their other clients' work, most visible per event at low rates)")
	fmt.Fprintf(w, "load: open loop, batches of %d, %d senders, %d subjects (a third cross-border), 10%% identify; steps of %v from %d events/s x%.2f, settle up to %v\n\n",
		o.batch, o.senders, o.subjects, o.step, o.start, o.factor, o.settle)

	t := benchkit.NewTable(w)
	fmt.Fprintln(t, "step\toffered/s\taccepted/s\tqueryable cn/s\tqueryable intl/s\tlag enricher\tlag sink cn\tlag sink intl\tfresh p50\tfresh p99\tfollowed\tmissing\t")
	for _, s := range r.steps {
		fmt.Fprintf(t, "%d\t%d\t%.0f\t%.0f\t%.0f\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t\n", s.n, s.load.offered, s.accepted(),
			s.queryable[benchkit.DestRegion], s.queryable[benchkit.DestExport], s.lag["enricher"], s.lag["sink "+benchkit.DestRegion], s.lag["sink "+benchkit.DestExport],
			ms(s.fresh.p50), ms(s.fresh.p99), s.fresh.n, s.fresh.missing)
	}
	t.Flush()

	fmt.Fprintln(w, "\nCPU per accepted event, µs (over the step and its settle), and the machine's busy share:")
	t = benchkit.NewTable(w)
	fmt.Fprint(t, "step\t")
	for _, n := range cpuNames {
		fmt.Fprint(t, n+"\t")
	}
	fmt.Fprintln(t, "other\ttotal\tmachine busy\t")
	for _, s := range r.steps {
		fmt.Fprintf(t, "%d\t", s.n)
		for _, d := range s.cpu.Procs {
			fmt.Fprint(t, benchkit.MicrosPer(d, s.load.accepted)+"\t")
		}
		fmt.Fprintf(t, "%s\t%s\t%.0f%%\t\n", benchkit.MicrosPer(s.cpu.Other(), s.load.accepted), benchkit.MicrosPer(s.cpu.Busy, s.load.accepted),
			100*benchkit.MachineShare(s.cpu.Busy, s.cpu.Wall))
	}
	t.Flush()

	fmt.Fprintln(w, "\nPeak RSS, MiB (high-water mark so far):")
	t = benchkit.NewTable(w)
	labels := []string{"collector", "enricher", "sink " + benchkit.DestRegion, "sink " + benchkit.DestExport}
	fmt.Fprintln(t, "step\t"+strings.Join(labels, "\t")+"\t")
	for _, s := range r.steps {
		fmt.Fprintf(t, "%d\t", s.n)
		for _, l := range labels {
			fmt.Fprintf(t, "%.0f\t", float64(s.peakRSS[l])/1024)
		}
		fmt.Fprintln(t)
	}
	t.Flush()

	fmt.Fprintln(w)
	for _, s := range r.steps {
		fmt.Fprintf(w, "step %d (%d/s): %s\n", s.n, s.load.offered, s.verdict)
	}
	if b, ok := best(r.steps); ok {
		fmt.Fprintf(w, "\nSUSTAINED: %.0f events/s (step %d, offered %d/s) with bounded lag and freshness p99 %s <= %v\n",
			b.accepted(), b.n, b.load.offered, ms(b.fresh.p99), maxFreshP99)
		if hot, us := hottest(b); hot != "" {
			fmt.Fprintf(w, "most CPU per event of the pipeline's services at that rate: %s, %.1f µs\n", hot, us)
		}
	} else {
		fmt.Fprintln(w, "\nSUSTAINED: no step (lower -start)")
	}
	if k, stage, ok := knee(r.steps); ok {
		fmt.Fprintf(w, "knee: step %d (%d/s offered) was not kept up with by %s (lag %d at its end)", k.n, k.load.offered, stage, k.lag[stage])
		if hot, us := hottest(k); hot != "" {
			fmt.Fprintf(w, "; most CPU per event there: %s, %.1f µs", hot, us)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "knee: not reached (raise -max-steps or -factor)")
	}
	if r.stopErr != nil {
		fmt.Fprintf(w, "services stop: %v\n", r.stopErr)
	}
	if r.cleanupErr != nil {
		fmt.Fprintf(w, "cleanup: %v\n", r.cleanupErr)
	}
}

// hottest is the pipeline's own service (Kafka, ClickHouse, which other
// tenants share, and the bench aside) with the most CPU per accepted event
// in s.
func hottest(s step) (string, float64) {
	name, most := "", 0.0
	for i := cCollector; i <= cSinkExport && s.load.accepted > 0; i++ {
		if us := float64(s.cpu.Procs[i].Microseconds()) / float64(s.load.accepted); us > most {
			name, most = cpuNames[i], us
		}
	}
	return name, most
}

// knee is the first step not sustained after the last sustained one (a
// miss before it is taken for noise of the shared machine), and the stage
// that fell behind in it: the collector when it did not accept the load,
// else the consumer group with the most lag at the step's end. ok is false
// when the last step was sustained.
func knee(steps []step) (s step, stage string, ok bool) {
	from := 0
	for i, s := range steps {
		if s.verdict.ok() {
			from = i + 1
		}
	}
	if from == len(steps) {
		return step{}, "", false
	}
	s = steps[from]
	offered := float64(s.load.offered) * s.load.elapsed.Seconds()
	if s.load.failed > 0 || float64(s.load.accepted) < minAccepted*offered {
		return s, "collector", true
	}
	var most int64 = -1
	for _, g := range slices.Sorted(maps.Keys(s.lag)) {
		if s.lag[g] > most {
			stage, most = g, s.lag[g]
		}
	}
	return s, stage, true
}

// text is the report as printed.
func (r *report) text() []byte {
	var b bytes.Buffer
	r.print(&b)
	return b.Bytes()
}

// chart is the steps as an SVG: offered, accepted and queryable rate
// above, freshness p99 against its 2 s bound below.
func (r *report) chart() []byte {
	var labels []string
	var offered, accepted, qCN, qIntl, p99 []float64
	for _, s := range r.steps {
		labels = append(labels, fmt.Sprint(s.load.offered))
		offered = append(offered, float64(s.load.offered))
		accepted = append(accepted, s.accepted())
		qCN = append(qCN, s.queryable[benchkit.DestRegion])
		qIntl = append(qIntl, s.queryable[benchkit.DestExport])
		p99 = append(p99, s.fresh.p99.Seconds())
	}
	return svgChart("pipelinebench "+r.runID+": offered rate per step (events/s)", labels, []panel{
		{title: "events/s", series: []series{{"offered", "#888888", offered}, {"accepted (200)", "#1f77b4", accepted},
			{"queryable cn", "#2ca02c", qCN}, {"queryable intl", "#9467bd", qIntl}}},
		{title: "freshness p99, s", series: []series{{"p99 200 to queryable", "#d62728", p99}}, limit: maxFreshP99.Seconds(), limitLabel: "2 s bound"},
	})
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0fms", float64(d.Microseconds())/1000)
}
