package pipeline

import (
	"context"
	"fmt"
	"net/http"
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

// poll looks for the outstanding followed events in db every pollInterval
// until ctx ends, and stamps those it finds with the time the query was
// sent: queryable by then at the latest (a row inserted while the query
// runs may be missed and found on the next poll).
func poll(ctx context.Context, conn driver.Conn, db string, tr *benchkit.Tracker) error {
	return benchkit.Every(ctx, pollInterval, func() error {
		found, err := tr.Lookup(ctx, conn, db)
		for _, f := range found {
			tr.SawVisible(f.IDs, f.Sent)
		}
		if ctx.Err() != nil {
			return nil
		}
		return err
	})
}

// lags is the consumer lag of each of the pipeline's groups (by label),
// over every topic the group consumes.
func lags(ctx context.Context, e *benchkit.Infra, p *benchkit.Pipeline) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	byGroup := map[string]string{}
	var groups []string
	for label, g := range p.Groups {
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
func measure(ctx context.Context, e *benchkit.Infra, o options, p *benchkit.Pipeline, rep *report) error {
	pop, err := newPopulation(e.RunID, o.subjects)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.senders + 16, MaxIdleConns: o.senders + 16}}
	defer client.CloseIdleConnections()
	baseURL := "http://" + p.HTTPAddr
	benchkit.Progress("recording consent for %d subjects (a third cross-border)", o.subjects)
	if err := benchkit.GrantConsent(ctx, client, baseURL, o.ConsentKey, len(pop.People), pop.consent); err != nil {
		return err
	}

	tr := benchkit.NewTracker()
	pollCtx, stopPoll := context.WithCancel(ctx)
	pollErr := make(chan error, 1)
	go func() { pollErr <- poll(pollCtx, e.Conn, p.Databases[benchkit.DestRegion], tr) }()
	defer func() { stopPoll(); <-pollErr }()

	clock := benchkit.CPUClock{cCollector: p.Collector.PID(), cEnricher: p.Enricher.PID(), cSinkRegion: p.Sinks[benchkit.DestRegion].PID(),
		cSinkExport: p.Sinks[benchkit.DestExport].PID(), cKafka: e.KafkaPID, cClickHouse: e.ClickHousePID, cSelf: benchkit.Self}
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
			if _, missing := tr.Ages(s.n, time.Now()); missing == 0 {
				break
			}
			time.Sleep(pollInterval)
		}
		s.cpu = clock.Read().Since(before)
		ages, missing := tr.Ages(s.n, time.Now())
		s.fresh = summarize(ages, missing)
		s.peakRSS = map[string]int64{}
		for _, svc := range p.Procs {
			label := svc.Name
			for d, sk := range p.Sinks {
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
func rowsByDest(ctx context.Context, conn driver.Conn, p *benchkit.Pipeline) (map[string]uint64, error) {
	out := map[string]uint64{}
	for d, db := range p.Databases {
		n, err := benchkit.CountRows(ctx, conn, db)
		if err != nil {
			return nil, err
		}
		out[d] = n
	}
	return out, nil
}
