package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// CPU slots of the run's benchkit.CPUClock, in the report's order.
const (
	cCollector = iota
	cEnricher
	cSinkRegion
	cSinkExport
	cKafka
	cClickHouse
	cSelf
)

// cpuNames name the CPU slots in the report.
var cpuNames = []string{"collector", "enricher", "sink cn", "sink intl", "kafka", "clickhouse", "bench"}

// pollInterval is how often the bench looks for followed events in
// ClickHouse: freshness is late by at most this and the query's time.
const pollInterval = 100 * time.Millisecond

// sample is one followed event.
type sample struct {
	step           int
	acked, visible time.Time
	failed         bool
}

// tracker holds the followed events; the load and the ClickHouse poller
// write to it.
type tracker struct {
	mu      sync.Mutex
	samples map[string]*sample
	pending map[string]struct{} // acked, not yet seen in ClickHouse
}

func newTracker() *tracker {
	return &tracker{samples: map[string]*sample{}, pending: map[string]struct{}{}}
}

func (t *tracker) add(id string, step int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.samples[id] = &sample{step: step}
}

func (t *tracker) ack(id string, at time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.samples[id]
	s.acked, s.failed = at, !ok
	if ok && s.visible.IsZero() {
		t.pending[id] = struct{}{}
	}
}

// sawVisible stamps ids queryable at at. An id seen before its 200 came
// back is stamped with the 200's time later (freshness 0).
func (t *tracker) sawVisible(ids []string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		if s := t.samples[id]; s != nil && s.visible.IsZero() {
			s.visible = at
			delete(t.pending, id)
		}
	}
}

// outstanding are the ids acked and not yet seen.
func (t *tracker) outstanding() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.pending))
	for id := range t.pending {
		ids = append(ids, id)
	}
	return ids
}

// ages are the freshness of step's accepted samples: 200 to queryable, or,
// for one not queryable yet, its age at now (a lower bound). missing counts
// those.
func (t *tracker) ages(step int, now time.Time) (ages []time.Duration, missing int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.samples {
		if s.step != step || s.failed || s.acked.IsZero() {
			continue
		}
		if s.visible.IsZero() {
			missing++
			ages = append(ages, now.Sub(s.acked))
			continue
		}
		ages = append(ages, max(0, s.visible.Sub(s.acked)))
	}
	slices.Sort(ages)
	return ages, missing
}

// poll looks for the outstanding followed events in db every pollInterval
// until ctx ends, and stamps those it finds with the time the query was
// sent: queryable by then at the latest (a row inserted while the query
// runs may be missed and found on the next poll).
func poll(ctx context.Context, conn driver.Conn, db string, tr *tracker) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		ids := tr.outstanding()
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), 2000)]
			ids = ids[len(chunk):]
			at := time.Now()
			found, err := lookup(ctx, conn, db, chunk)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			tr.sawVisible(found, at)
		}
	}
}

// lookup returns which of ids db.events holds. The ids are this tool's own
// (letters, digits, -), so they are safe to quote into the query.
func lookup(ctx context.Context, conn driver.Conn, db string, ids []string) ([]string, error) {
	var q strings.Builder
	q.WriteString("SELECT message_id FROM " + db + ".events WHERE message_id IN ('")
	q.WriteString(strings.Join(ids, "','"))
	q.WriteString("')")
	rows, err := conn.Query(ctx, q.String())
	if err != nil {
		return nil, fmt.Errorf("look up followed events: %w", err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		found = append(found, id)
	}
	return found, rows.Err()
}

// countRows is how many rows db.events holds.
func countRows(ctx context.Context, conn driver.Conn, db string) (uint64, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", db, err)
	}
	return n, nil
}

// lags is the consumer lag of each of the pipeline's groups (by label),
// over every topic the group consumes.
func lags(ctx context.Context, e *benchkit.Infra, p *pipeline) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	byGroup := map[string]string{}
	var groups []string
	for label, g := range p.groups {
		byGroup[g] = label
		groups = append(groups, g)
	}
	described, err := e.Admin.Lag(ctx, groups...)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	out := map[string]int64{}
	for _, l := range described.Sorted() {
		if err := l.Error(); err != nil {
			return nil, fmt.Errorf("consumer lag of %s: %w", l.Group, err)
		}
		out[byGroup[l.Group]] = l.Lag.Total()
	}
	return out, nil
}

// measure records consent, then runs the steps, each followed by its
// settle, until o.misses in a row are not sustained or o.maxSteps have run.
func measure(ctx context.Context, e *benchkit.Infra, o options, p *pipeline, rep *report) error {
	pop, err := newPopulation(e.RunID, o.subjects)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.senders + 16, MaxIdleConns: o.senders + 16}}
	defer client.CloseIdleConnections()
	baseURL := "http://" + p.httpAddr
	benchkit.Progress("recording consent for %d subjects (a third cross-border)", o.subjects)
	if err := grantConsent(ctx, client, baseURL, o.consentKey, pop); err != nil {
		return err
	}

	tr := newTracker()
	pollCtx, stopPoll := context.WithCancel(ctx)
	pollErr := make(chan error, 1)
	go func() { pollErr <- poll(pollCtx, e.Conn, p.databases[destRegion], tr) }()
	defer func() { stopPoll(); <-pollErr }()

	clock := benchkit.CPUClock{cCollector: p.collector.PID(), cEnricher: p.enricher.PID(), cSinkRegion: p.sinks[destRegion].PID(),
		cSinkExport: p.sinks[destExport].PID(), cKafka: e.KafkaPID, cClickHouse: e.ClickHousePID, cSelf: benchkit.Self}
	l := &loader{client: client, baseURL: baseURL, o: o, pop: pop, tr: tr}
	rate := float64(o.start)
	missed := 0
	for n := range o.maxSteps {
		s := step{n: n + 1}
		benchkit.Progress("step %d: %d events/s for %v", s.n, int(rate), o.step)
		before := clock.Read()
		rows0, err := rowsByDest(ctx, e.Conn, p)
		if err != nil {
			return err
		}
		s.load = l.run(ctx, s.n, int(rate), o.step)
		rows1, err := rowsByDest(ctx, e.Conn, p)
		if err != nil {
			return err
		}
		s.queryable = map[string]float64{}
		for d := range rows1 {
			s.queryable[d] = float64(rows1[d]-rows0[d]) / s.load.elapsed.Seconds()
		}
		if s.lag, err = lags(ctx, e, p); err != nil {
			return err
		}
		// The settle: the step's followed events are given time to become
		// queryable, and the pipeline to empty, before the next step.
		deadline := time.Now().Add(o.settle)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if _, missing := tr.ages(s.n, time.Now()); missing == 0 {
				break
			}
			time.Sleep(pollInterval)
		}
		s.cpu = clock.Read().Since(before)
		ages, missing := tr.ages(s.n, time.Now())
		s.fresh = summarize(ages, missing)
		s.peakRSS = map[string]int64{}
		for _, svc := range p.Procs {
			label := svc.Name
			for d, sk := range p.sinks {
				if sk == svc {
					label += " " + d
				}
			}
			s.peakRSS[label], _ = benchkit.PeakRSS(svc.PID())
		}
		s.verdict = judge(s.load, s.lag, s.fresh)
		rep.steps = append(rep.steps, s)
		benchkit.Progress("step %d: accepted %.0f/s, freshness p99 %v, lag %v: %s", s.n, s.accepted(), s.fresh.p99, s.lag, s.verdict)
		if err := p.Alive(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		missed++
		if s.verdict.ok() {
			missed = 0
		}
		if missed == o.misses {
			break
		}
		rate *= o.factor
	}
	return nil
}

// rowsByDest counts the rows of each destination's database.
func rowsByDest(ctx context.Context, conn driver.Conn, p *pipeline) (map[string]uint64, error) {
	out := map[string]uint64{}
	for d, db := range p.databases {
		n, err := countRows(ctx, conn, db)
		if err != nil {
			return nil, err
		}
		out[d] = n
	}
	return out, nil
}
