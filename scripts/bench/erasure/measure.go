package erasure

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// CPU slots of the run's benchkit.CPUClock.
const (
	cSelf = iota
	cCollector
	cEnricher
	cSinkRegion
	cSinkExport
	cClickHouse
	cKafka
)

// settleLimit bounds the wait, after the load, for the pipeline to load
// every accepted event, before the final check.
const settleLimit = time.Minute

// measure runs the load and the erasures against the started pipeline and
// fills rep: consent, load with erasures, wait for the receipts, settle,
// metrics, status cross-check and the final ClickHouse check.
func measure(ctx context.Context, e *infra, p *benchkit.Pipeline, keys keyrings, token string, rep *report) error {
	o := e.o
	pop, err := newPopulation(e.RunID, o.subjects)
	if err != nil {
		return err
	}
	rep.pop = pop
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 300, MaxIdleConns: 300}}
	defer client.CloseIdleConnections()
	baseURL, privacyURL := "http://"+p.HTTPAddr, "http://"+p.Collector.PrivacyAddr

	benchkit.Progress("recording consent for %d subjects", o.subjects)
	start := time.Now()
	if err := benchkit.GrantConsent(ctx, client, baseURL, o.ConsentKey, len(pop.People), pop.consent); err != nil {
		return err
	}
	rep.consentTime = time.Since(start)

	receipts := newReceiptLog()
	rep.receipts = receipts
	followCtx, stopFollow := context.WithCancel(ctx)
	var followErr atomic.Pointer[error]
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := followReceipts(followCtx, o.Brokers, p.Topics.Receipts, receipts); err != nil && followCtx.Err() == nil {
			followErr.Store(&err)
		}
	})
	defer func() { stopFollow(); wg.Wait() }()

	clock := benchkit.CPUClock{cSelf: benchkit.Self, cCollector: p.Collector.PID(), cEnricher: p.Enricher.PID(),
		cSinkRegion: p.Sinks[benchkit.DestRegion].PID(), cSinkExport: p.Sinks[benchkit.DestExport].PID(), cClickHouse: e.ClickHousePID, cKafka: e.KafkaPID}
	before := clock.Read()
	benchkit.Progress("load: %d events/s in batches of %d from %d senders; erasures start in %v", o.rate, o.batch, o.senders, o.warmup)
	ld := startLoad(ctx, client, baseURL, o, pop)
	loading := true
	stopLoad := func() {
		if loading {
			loading = false
			rep.load = ld.stop()
			rep.cpu = clock.Read().Since(before)
		}
	}
	defer stopLoad()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.warmup):
	}
	if err := p.Alive(); err != nil {
		return err
	}

	benchkit.Progress("erasures: %d over %v, by userId", o.erasures, o.spread)
	tickCtx, stopTick := context.WithCancel(ctx)
	wg.Go(func() { // a word every 15 s, so a slow run shows where it is
		for {
			select {
			case <-tickCtx.Done():
				return
			case <-time.After(15 * time.Second):
			}
			benchkit.Progress("  %d events accepted, %d erasures done so far", ld.accepted.Load(), receipts.doneCount())
		}
	})
	rep.erasures, rep.skipped, err = eraseAll(ctx, client, privacyURL, token, o, pop, uint64(time.Now().UnixNano()))
	lastAsked := time.Now()
	if err != nil {
		stopTick()
		return err
	}
	ids := rep.acceptedIDs()
	benchkit.Progress("%d erasures asked, %d accepted; waiting up to %v for all to be done, the load going on", len(rep.erasures), len(ids), o.drain)
	for {
		done, failed := receipts.progress(ids)
		if done+failed == len(ids) {
			rep.allDoneAfter = time.Since(lastAsked)
			break
		}
		if time.Since(lastAsked) > o.drain {
			rep.drainTimedOut = true
			break
		}
		if p := followErr.Load(); p != nil {
			stopTick()
			return *p
		}
		if err := p.Alive(); err != nil {
			stopTick()
			return err
		}
		select {
		case <-ctx.Done():
			stopTick()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	rep.waited = true
	stopTick()
	stopLoad()
	// How far behind each stage was when the load stopped: what the
	// erasures had to queue behind.
	rep.lagAtStop = map[string]float64{}
	if m, err := p.Enricher.Metrics(); err == nil {
		rep.lagAtStop["enricher"] = m.Sum("enricher_consumer_lag_records")
	}
	for d, s := range p.Sinks {
		if m, err := s.Metrics(); err == nil {
			rep.lagAtStop["sink "+d] = m.Sum("sink_consumer_lag_records")
		}
	}
	benchkit.Progress("load stopped: %.0f events/s accepted over %v; waiting for the pipeline to load them", rep.load.eventsPerSec(), rep.load.elapsed.Round(time.Millisecond))

	rep.settle, rep.settled = settle(ctx, p, rep.load.events)
	if err := p.Alive(); err != nil {
		return err
	}
	if rep.enricherMetrics, err = p.Enricher.Metrics(); err != nil {
		return err
	}
	rep.sinkMetrics = map[string]benchkit.Metrics{}
	for d, s := range p.Sinks {
		if rep.sinkMetrics[d], err = s.Metrics(); err != nil {
			return err
		}
	}
	if m, err := p.Collector.Metrics(); err == nil {
		rep.collectorMetrics = m
	}
	rep.status = crossCheck(ctx, client, privacyURL, token, ids, o.statusChecks, receipts)
	benchkit.Progress("final check: rows of erased subjects in %s and %s", p.Databases[benchkit.DestRegion], p.Databases[benchkit.DestExport])
	if err := finalCheck(ctx, e, p, keys, rep); err != nil {
		return err
	}
	if p := followErr.Load(); p != nil {
		return *p
	}
	return ctx.Err()
}

// settle waits, for at most settleLimit, until the enricher has consumed
// the accepted events and each sink has loaded (or refused) every event
// the enricher sent its way, so the final check sees everything the run
// will ever load. It returns how long that took and whether it happened.
func settle(ctx context.Context, p *benchkit.Pipeline, accepted int64) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < settleLimit && ctx.Err() == nil {
		if settled(p, accepted) {
			return time.Since(start), true
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	return time.Since(start), false
}

func settled(p *benchkit.Pipeline, accepted int64) bool {
	em, err := p.Enricher.Metrics()
	if err != nil || em.Sum("enricher_events_in_total") < float64(accepted) {
		return false
	}
	for d, route := range map[string]string{benchkit.DestRegion: "clean", benchkit.DestExport: "export"} {
		sm, err := p.Sinks[d].Metrics()
		if err != nil {
			return false
		}
		loaded := sm.Sum("sink_rows_inserted_total") + sm.Sum("sink_rows_suppressed_total") + sm.Sum("sink_dead_lettered_total")
		if loaded < em.Sum("enricher_events_out_total", `route="`+route+`"`) {
			return false
		}
	}
	return true
}

// acceptedIDs are the request ids of the erasures answered 202.
func (r *report) acceptedIDs() []string {
	var ids []string
	for _, e := range r.erasures {
		if e.err == nil && e.id != "" {
			ids = append(ids, e.id)
		}
	}
	return ids
}
