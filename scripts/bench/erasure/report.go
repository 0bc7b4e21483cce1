package erasure

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// sloP99 is the erasure SLO: p99 from request to verified deletion in
// every destination, below.
const sloP99 = 60 * time.Second

// report is everything one run found.
type report struct {
	opts       options
	runID      string
	nproc      int
	background float64 // share of the machine busy before any load
	databases  map[string]string

	pop         *population
	consentTime time.Duration
	load        loadStats
	cpu         benchkit.CPUUsage // during the load, by the slots cSelf ... cKafka
	erasures    []*erasure
	skipped     int // subjects passed over: no event accepted yet
	receipts    *receiptLog

	waited        bool          // the wait for the requests to be done ended (done or timed out)
	allDoneAfter  time.Duration // after the last request
	drainTimedOut bool
	settle        time.Duration
	settled       bool
	lagAtStop     map[string]float64 // records each stage had yet to consume when the load stopped

	enricherMetrics, collectorMetrics benchkit.Metrics
	sinkMetrics                       map[string]benchkit.Metrics

	status                  statusCheck
	checked                 bool
	erasedRows, controlRows map[string]uint64 // by destination
	controlSubjects         int

	stopErr, cleanupErr error
	completed           bool // the run went to its end: the verdict applies
}

// summary is what the receipts say of the accepted requests.
type summary struct {
	asked, accepted, refused, retried int
	firstRefusal                      error
	post                              []time.Duration // POST to 202

	done, failed, notDone int
	failures              []string
	linked                int

	latency, toEnricher []time.Duration            // request to verified in every destination; to the enricher's notice
	toDest, fromNotice  map[string][]time.Duration // request to verified; notice to verified, by destination
	rows                map[string]int64
	windows             map[string]int // distinct deletion windows
	windowMutations     map[string]int // their mutations, added up
	receiptsRead        int
	otherRequests       int // erasure requests in the receipts the bench did not make
	otherDone           int
	receiptsRepeated    int
	receiptsInvalid     int
	firstInvalid        error
}

func (r *report) summarize() summary {
	s := summary{toDest: map[string][]time.Duration{}, fromNotice: map[string][]time.Duration{},
		rows: map[string]int64{}, windows: map[string]int{}, windowMutations: map[string]int{}}
	for _, e := range r.erasures {
		s.asked++
		if e.attempts > 1 {
			s.retried++
		}
		if e.err != nil || e.id == "" {
			s.refused++
			if s.firstRefusal == nil {
				s.firstRefusal = e.err
			}
			continue
		}
		s.accepted++
		s.post = append(s.post, e.accepted.Sub(e.sent))
	}
	if r.receipts == nil {
		return s
	}
	l := r.receipts
	l.mu.Lock()
	defer l.mu.Unlock()
	s.receiptsRead, s.receiptsRepeated, s.receiptsInvalid, s.firstInvalid = l.records, l.repeated, l.invalid, l.firstBad
	for _, id := range r.acceptedIDs() {
		q := l.requests[id]
		switch {
		case q != nil && q.done():
			s.done++
		case q != nil && len(q.failed) > 0:
			s.failed++
			s.failures = append(s.failures, id+": "+strings.Join(q.failed, "; "))
			continue
		default:
			s.notDone++
			continue
		}
		s.linked += q.linked
		s.latency = append(s.latency, q.verifiedAt().Sub(q.requestedAt))
		s.toEnricher = append(s.toEnricher, q.enricherAt.Sub(q.requestedAt))
		for _, d := range q.destinations {
			d2 := q.sinks[d]
			s.toDest[d] = append(s.toDest[d], d2.at.Sub(q.requestedAt))
			s.fromNotice[d] = append(s.fromNotice[d], d2.at.Sub(q.enricherAt))
			s.rows[d] += d2.rows
		}
	}
	ours := map[string]bool{}
	for _, id := range r.acceptedIDs() {
		ours[id] = true
	}
	for id, q := range l.requests {
		if !ours[id] {
			s.otherRequests++
			if q.done() {
				s.otherDone++
			}
		}
	}
	for w, m := range l.windows {
		s.windows[w.dest]++
		s.windowMutations[w.dest] += m
	}
	for _, d := range [][]time.Duration{s.post, s.latency, s.toEnricher} {
		durations(d)
	}
	for d := range s.toDest {
		durations(s.toDest[d])
		durations(s.fromNotice[d])
	}
	return s
}

// verdict fails the run when a request was refused or not done, a row of
// an erased subject remains, or the control found nothing.
func (r *report) verdict() error {
	s := r.summarize()
	var errs []error
	if s.refused > 0 {
		errs = append(errs, fmt.Errorf("%d erasure requests refused (first: %v)", s.refused, s.firstRefusal))
	}
	if s.notDone+s.failed > 0 {
		errs = append(errs, fmt.Errorf("%d erasure requests not done at the end (%d with a failed stage)", s.notDone+s.failed, s.failed))
	}
	if !r.checked {
		errs = append(errs, errors.New("the final ClickHouse check did not run"))
	}
	for _, d := range []string{benchkit.DestRegion, benchkit.DestExport} {
		if r.checked && r.erasedRows[d] > 0 {
			errs = append(errs, fmt.Errorf("%s: %d rows of erased subjects remain", r.databases[d], r.erasedRows[d]))
		}
		if r.checked && r.controlRows[d] == 0 {
			errs = append(errs, fmt.Errorf("%s: no row of the %d control subjects found: the check's pseudonyms are not the pipeline's", r.databases[d], r.controlSubjects))
		}
	}
	return errors.Join(errs...)
}

func (r *report) print(out io.Writer) {
	o := r.opts
	s := r.summarize()
	fmt.Fprintf(out, "\nerasurebench: run %s, nproc %d, GOMAXPROCS %d\n", r.runID, r.nproc, runtime.GOMAXPROCS(0))
	fmt.Fprintf(out, "background: %.0f%% of the machine busy before any load (other tenants)\n", 100*r.background)
	if r.pop == nil {
		r.printEnd(out)
		return
	}
	fmt.Fprintf(out, "\npipeline: collector, enricher, sink %s (configs/sink.yaml -> %s), sink %s (configs/sink-intl.yaml -> %s); shipped configs, erasure.window as shipped\n",
		benchkit.DestRegion, r.databases[benchkit.DestRegion], benchkit.DestExport, r.databases[benchkit.DestExport])
	fmt.Fprintf(out, "subjects: %d, each a userId and an anonymousId, consent (analytics, cross-border) recorded in %v; 1 event in 20 an identify\n",
		o.subjects, r.consentTime.Round(time.Millisecond))
	l := r.load
	fmt.Fprintf(out, "load: target %d events/s in batches of %d from %d senders; achieved %.0f events/s (%d events accepted in %v), %d of %d requests failed",
		o.rate, o.batch, o.senders, l.eventsPerSec(), l.events, l.elapsed.Round(time.Millisecond), l.failed, l.requests)
	if l.firstErr != nil {
		fmt.Fprintf(out, " (first: %v)", l.firstErr)
	}
	fmt.Fprintf(out, "; %d requests started >100 ms late (at most %v)\n", l.late, l.maxLate.Round(time.Millisecond))
	fmt.Fprintf(out, "erasures: %d asked over %v by userId after %v of load, %d accepted (202 in p50 %s, p99 %s; %d retried after a 503), %d refused",
		s.asked, o.spread, o.warmup, s.accepted, secs(benchkit.Quantile(s.post, 0.5)), secs(benchkit.Quantile(s.post, 0.99)), s.retried, s.refused)
	if s.firstRefusal != nil {
		fmt.Fprintf(out, " (first: %v)", s.firstRefusal)
	}
	fmt.Fprintf(out, "; %d subjects passed over (no event accepted yet); %d linked anonymousIds erased with them\n", r.skipped, s.linked)
	if r.cpu.Wall > 0 {
		c := r.cpu.Procs
		core := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()/r.cpu.Wall.Seconds()) }
		fmt.Fprintf(out, "CPU during the load, in cores: bench %s, collector %s, enricher %s, sink %s %s, sink %s %s, clickhouse %s, kafka %s, other %s; machine %.0f%% busy\n",
			core(c[cSelf]), core(c[cCollector]), core(c[cEnricher]), benchkit.DestRegion, core(c[cSinkRegion]), benchkit.DestExport, core(c[cSinkExport]),
			core(c[cClickHouse]), core(c[cKafka]), core(r.cpu.Other()), 100*benchkit.MachineShare(r.cpu.Busy, r.cpu.Wall))
	}

	fmt.Fprintf(out, "\nerasure latency of the %d requests done, from the receipts (requestedAt, the enricher's and each sink's at):\n\n", s.done)
	tw := benchkit.NewTable(out)
	fmt.Fprintln(tw, "\tp50\tp99\tmax\t")
	row := func(name string, d []time.Duration) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, secs(benchkit.Quantile(d, 0.5)), secs(benchkit.Quantile(d, 0.99)), secs(benchkit.Quantile(d, 1)))
	}
	row("request -> verified in both (the figure)", s.latency)
	row("request -> notified (enricher)", s.toEnricher)
	for _, d := range []string{benchkit.DestRegion, benchkit.DestExport} {
		row("notified -> verified "+d+" (sink)", s.fromNotice[d])
	}
	for _, d := range []string{benchkit.DestRegion, benchkit.DestExport} {
		row("request -> verified "+d, s.toDest[d])
	}
	tw.Flush()

	fmt.Fprintln(out)
	tw = benchkit.NewTable(out)
	fmt.Fprintln(tw, "destination\tmutations\twindows\trows deleted\trows suppressed\tfailures\t")
	for _, d := range []string{benchkit.DestRegion, benchkit.DestExport} {
		m := r.sinkMetrics[d]
		fmt.Fprintf(tw, "%s\t%s\t%d (%d mutations)\t%d (%s)\t%s\t%s\t\n", d, metric(m, "privacy_erasure_mutations_total"),
			s.windows[d], s.windowMutations[d], s.rows[d], metric(m, "privacy_erasure_rows_deleted_total"),
			metric(m, "sink_rows_suppressed_total"), metric(m, "privacy_erasure_failures_total"))
	}
	tw.Flush()
	fmt.Fprintln(out, "mutations: the sink's privacy_erasure_mutations_total, every ALTER TABLE ... DELETE it issued; windows: distinct")
	fmt.Fprintln(out, "deletions (`at`) in its receipts, with the mutations they report (fewer than the metric: the rest were issued")
	fmt.Fprintln(out, "outside an erasure window); rows deleted: the bench's requests' rows, from their receipts (in brackets:")
	fmt.Fprintln(out, "privacy_erasure_rows_deleted_total, every deletion the sink made);")
	fmt.Fprintln(out, "rows suppressed: rows of erased subjects the sink refused to load (sink_rows_suppressed_total); failures:")
	fmt.Fprintln(out, "privacy_erasure_failures_total")

	fmt.Fprintln(out)
	fmt.Fprintf(out, "requests not done at the end: %d (must be 0)", s.notDone+s.failed)
	if s.failed > 0 {
		fmt.Fprintf(out, ", %d with a failed stage (first: %s)", s.failed, s.failures[0])
	}
	switch {
	case !r.waited:
		fmt.Fprintln(out, "; the run ended before the wait for them")
	case r.drainTimedOut:
		fmt.Fprintf(out, "; gave up waiting %v after the last request\n", o.drain)
	default:
		fmt.Fprintf(out, "; all done %v after the last request\n", r.allDoneAfter.Round(time.Millisecond))
	}
	fmt.Fprintf(out, "receipts read: %d records of privacy.receipts, %d repeating an earlier one's key (a stage did its part again; the first counts), %d invalid",
		s.receiptsRead, s.receiptsRepeated, s.receiptsInvalid)
	if s.firstInvalid != nil {
		fmt.Fprintf(out, " (first: %v)", s.firstInvalid)
	}
	fmt.Fprintln(out)
	if s.otherRequests > 0 {
		fmt.Fprintf(out, "other erasure requests in the receipts: %d (%d done), not the bench's: the pipeline's own, such as the enricher's\n", s.otherRequests, s.otherDone)
		fmt.Fprintln(out, "erasure of a device an identify links to an erased userId; they share the sinks' windows and mutations")
	}
	if r.checked {
		fmt.Fprintf(out, "final check, rows of the %d erased subjects left in ClickHouse: %s %d, %s %d (must be 0); control: %s %d, %s %d rows of %d subjects not erased (must be > 0)\n",
			s.accepted, benchkit.DestRegion, r.erasedRows[benchkit.DestRegion], benchkit.DestExport, r.erasedRows[benchkit.DestExport],
			benchkit.DestRegion, r.controlRows[benchkit.DestRegion], benchkit.DestExport, r.controlRows[benchkit.DestExport], r.controlSubjects)
	} else {
		fmt.Fprintln(out, "final check: NOT RUN")
	}
	if r.status.asked > 0 {
		fmt.Fprintf(out, "status API: %d of %d sampled requests done with the receipts' rows (GET /v1/privacy/erasures/{id})", r.status.agree, r.status.asked)
		if len(r.status.problems) > 0 {
			fmt.Fprintf(out, "; first disagreement: %s", r.status.problems[0])
		}
		fmt.Fprintln(out)
	}
	if m := r.enricherMetrics; m != nil {
		fmt.Fprintf(out, "enricher: %.0f events in; out: clean %.0f, export %.0f; dropped: %s; erasures notified %.0f\n",
			m.Sum("enricher_events_in_total"), m.Sum("enricher_events_out_total", `route="clean"`), m.Sum("enricher_events_out_total", `route="export"`),
			byLabel(m, "enricher_events_dropped_total"), m.Sum("privacy_erasures_notified_total"))
	}
	settled := "settled"
	if !r.settled {
		settled = "NOT settled"
	}
	if r.lagAtStop != nil {
		fmt.Fprintf(out, "pipeline %s %v after the load (every accepted event consumed, every routed one loaded or refused); lag when the load stopped: enricher %.0f, sink %s %.0f, sink %s %.0f records\n",
			settled, r.settle.Round(time.Millisecond), r.lagAtStop["enricher"], benchkit.DestRegion, r.lagAtStop["sink "+benchkit.DestRegion], benchkit.DestExport, r.lagAtStop["sink "+benchkit.DestExport])
	}
	for _, d := range []string{benchkit.DestRegion, benchkit.DestExport} {
		if m := r.sinkMetrics[d]; m != nil {
			n := m.Sum("sink_insert_duration_seconds_count")
			fmt.Fprintf(out, "sink %s: %.0f rows in %.0f inserts, %.2f s each on average\n", d, m.Sum("sink_rows_inserted_total"), n,
				m.Sum("sink_insert_duration_seconds_sum")/max(n, 1))
		}
	}
	if len(s.latency) > 0 {
		p99 := benchkit.Quantile(s.latency, 0.99)
		fmt.Fprintf(out, "SLO, p99 request -> verified in every destination below %v: %s (%s)\n", sloP99, secs(p99), benchkit.Verdict(p99 < sloP99))
	}
	r.printEnd(out)
}

func (r *report) printEnd(out io.Writer) {
	if r.stopErr != nil {
		fmt.Fprintf(out, "\nservices did not stop cleanly: %v\n", r.stopErr)
	}
	if r.cleanupErr != nil {
		fmt.Fprintf(out, "\ncleanup FAILED: %v\n", r.cleanupErr)
	} else {
		fmt.Fprintln(out, "\ncleanup: processes stopped; topics, consumer groups and databases of this run deleted")
	}
}

// metric is a counter of a scrape, or "-" without one.
func metric(m benchkit.Metrics, name string) string {
	if m == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f", m.Sum(name))
}

// byLabel lists the non-zero samples of name as labels=value.
func byLabel(m benchkit.Metrics, name string) string {
	var parts []string
	for _, s := range m[name] {
		if s.Value != 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", strings.Trim(s.Labels, "{}"), s.Value))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// secs is d in seconds with three decimals, "-" for none.
func secs(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", d.Seconds())
}
