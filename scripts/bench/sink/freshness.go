package sink

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// CPU slots of a freshness run's benchkit.CPUClock.
const (
	fSelf = iota
	fCollector
	fEnricher
	fSink
	fClickHouse
	fKafka
)

// freshReport is what one freshness run found.
type freshReport struct {
	maxWait     string // as given: shipped or a duration
	subjects    int
	consentTime time.Duration

	load   loadStats         // the measured load
	warmup loadStats         // the unsampled load before it
	cpu    benchkit.CPUUsage // during the measured load, by the slots fSelf ... fKafka
	peak   map[string]int64  // peak RSS in KiB by service

	samples, acked, visible, inClean int
	// Sorted: collector 200 to queryable; the enricher's leg (200 to the
	// clean topic, transaction committed); the sink's leg (clean topic to
	// queryable).
	fresh, enricherLeg, sinkLeg []time.Duration
	drain                       time.Duration // after the load, until the last sample was queryable

	polls, lookups, lateStamps               int
	pollTime, lookupTime                     time.Duration
	sinkFlushes                              map[string]float64
	sinkInserts                              float64
	sinkInsertSeconds                        float64
	sinkRows                                 float64
	enricherTxns                             float64
	enricherTxnSeconds                       float64
	enricherCommitSeconds                    float64
	enricherIn, enricherOut, enricherDropped float64
	stopErr                                  error
}

func runFreshness(ctx context.Context, e *infra, idx int, maxWait string, cl *benchkit.Cleanups) (*freshReport, error) {
	o := e.o
	tag := fmt.Sprintf("f%d", idx+1)
	rep := &freshReport{maxWait: maxWait, subjects: o.subjects, peak: map[string]int64{}}
	benchkit.Progress("freshness %s: sink batch.max_wait %s; starting sink, enricher, collector", tag, maxWait)
	spec := benchkit.PipelineSpec{Tag: tag}
	if maxWait != "shipped" {
		spec.SinkEnv = []string{"BATCH_MAX_WAIT=" + maxWait}
	}
	p, err := benchkit.StartPipeline(ctx, e.Run, &o.StoreFlags, spec, cl)
	if err != nil {
		return nil, err
	}
	sink, enricher, collector := p.Sinks[benchkit.DestRegion], p.Enricher, p.Collector
	db := p.Databases[benchkit.DestRegion]
	baseURL := "http://" + p.HTTPAddr

	gen, err := newSegGen(e.RunID+tag, o.subjects)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxIdleConns: 128}}
	defer client.CloseIdleConnections()
	benchkit.Progress("  recording consent for %d subjects", o.subjects)
	start := time.Now()
	if err := benchkit.GrantConsent(ctx, client, baseURL, o.ConsentKey, o.subjects, gen.consent); err != nil {
		return rep, err
	}
	rep.consentTime = time.Since(start)

	tr := benchkit.NewTracker()
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var watchErr atomic.Pointer[error]
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := watchClean(watchCtx, o.Brokers, p.Topics.Clean, tr); err != nil && watchCtx.Err() == nil {
			watchErr.Store(&err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := pollClickHouse(watchCtx, e, db, tr, rep); err != nil && watchCtx.Err() == nil {
			watchErr.Store(&err)
		}
	}()
	defer func() { stopWatch(); wg.Wait() }()

	if o.warmup > 0 {
		benchkit.Progress("  warm-up: %d events/s for %v", o.rate, o.warmup)
		rep.warmup = paced(ctx, client, baseURL, o, gen, "w", o.warmup, nil)
	}
	benchkit.Progress("  measured: %d events/s in batches of %d for %v, following every %d. event", o.rate, o.batch, o.duration, o.sampleEvery)
	clock := benchkit.CPUClock{fSelf: benchkit.Self, fCollector: collector.PID(), fEnricher: enricher.PID(), fSink: sink.PID(),
		fClickHouse: e.ClickHousePID, fKafka: e.KafkaPID}
	before := clock.Read()
	rep.load = paced(ctx, client, baseURL, o, gen, "m", o.duration, tr)
	rep.cpu = clock.Read().Since(before)
	benchkit.Progress("  %.0f events/s accepted, %d failed requests; waiting for the last samples", rep.load.eventsPerSec(), rep.load.errors)

	// Every acknowledged sample should arrive within a batch wait and an
	// insert; give it far longer before calling it missing.
	drainStart := time.Now()
	for tr.WaitingAcked() > 0 && time.Since(drainStart) < 60*time.Second && ctx.Err() == nil {
		if p := watchErr.Load(); p != nil {
			return rep, *p
		}
		if err := p.Alive(); err != nil {
			return rep, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep.drain = time.Since(drainStart)
	stopWatch()
	wg.Wait()
	if p := watchErr.Load(); p != nil {
		return rep, *p
	}

	for _, s := range p.Procs {
		if rep.peak[s.Name], err = benchkit.PeakRSS(s.PID()); err != nil {
			return rep, err
		}
	}
	if m, err := sink.Metrics(); err == nil {
		rep.sinkFlushes = map[string]float64{}
		for _, r := range []string{"rows", "bytes", "time"} {
			rep.sinkFlushes[r] = m.Sum("sink_flushes_total", `reason="`+r+`"`)
		}
		rep.sinkInserts, rep.sinkInsertSeconds = m.Sum("sink_insert_duration_seconds_count"), m.Sum("sink_insert_duration_seconds_sum")
		rep.sinkRows = m.Sum("sink_rows_inserted_total")
	}
	if m, err := enricher.Metrics(); err == nil {
		rep.enricherTxns, rep.enricherTxnSeconds = m.Sum("enricher_transaction_duration_seconds_count"), m.Sum("enricher_transaction_duration_seconds_sum")
		rep.enricherCommitSeconds = m.Sum("enricher_commit_duration_seconds_sum")
		rep.enricherIn, rep.enricherOut, rep.enricherDropped = m.Sum("enricher_events_in_total"), m.Sum("enricher_events_out_total"), m.Sum("enricher_events_dropped_total")
	}
	rep.stopErr = p.Stop()
	rep.summarize(tr)
	benchkit.Progress("  freshness p50 %s, p99 %s, max %s (%d of %d samples queryable)", ms(benchkit.Quantile(rep.fresh, 0.5)), ms(benchkit.Quantile(rep.fresh, 0.99)), ms(benchkit.Quantile(rep.fresh, 1)), rep.visible, rep.acked)
	return rep, ctx.Err()
}

func (r *freshReport) summarize(tr *benchkit.Tracker) {
	for _, s := range tr.Samples() {
		r.samples++
		if s.Failed || s.Acked.IsZero() {
			continue
		}
		r.acked++
		if !s.Clean.IsZero() {
			r.inClean++
			r.enricherLeg = append(r.enricherLeg, s.Clean.Sub(s.Acked))
		}
		if s.Visible.IsZero() {
			continue
		}
		r.visible++
		r.fresh = append(r.fresh, s.Visible.Sub(s.Acked))
		if !s.Clean.IsZero() {
			r.sinkLeg = append(r.sinkLeg, s.Visible.Sub(s.Clean))
		}
	}
	for _, d := range [][]time.Duration{r.fresh, r.enricherLeg, r.sinkLeg} {
		slices.Sort(d)
	}
}

// loadStats describe one paced load.
type loadStats struct {
	requests, errors int
	firstErr         error
	events           int // accepted
	elapsed          time.Duration
	maxLate          time.Duration // how far behind schedule a request started, at most
	late             int           // requests started more than 100 ms behind schedule
	latencies        []time.Duration
}

func (l loadStats) eventsPerSec() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.events) / l.elapsed.Seconds()
}

// paced posts batches of o.batch events at o.rate events/s for d: an open
// loop, each request due at its time whatever became of the ones before,
// sent by up to 64 concurrent clients. With tr it follows every
// o.sampleEvery'th event.
func paced(ctx context.Context, client *http.Client, baseURL string, o options, gen *segGen, phase string, d time.Duration, tr *benchkit.Tracker) loadStats {
	interval := time.Duration(float64(time.Second) * float64(o.batch) / float64(o.rate))
	n := int(d / interval)
	type job struct {
		first int
		due   time.Time
	}
	jobs := make(chan job, n)
	var mu sync.Mutex
	st := loadStats{latencies: make([]time.Duration, 0, n)}
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				started := time.Now()
				var ids []string
				if tr != nil {
					for seq := j.first; seq < j.first+o.batch; seq++ {
						if seq%o.sampleEvery == 0 {
							ids = append(ids, gen.messageID(phase, seq))
						}
					}
					tr.Add(0, ids...)
				}
				err := benchkit.Post(ctx, client, baseURL+"/v1/batch", o.WriteKey, gen.body(phase, j.first, o.batch, started))
				done := time.Now()
				if tr != nil {
					tr.Ack(done, err == nil, ids...)
				}
				mu.Lock()
				st.requests++
				st.latencies = append(st.latencies, done.Sub(started))
				if late := started.Sub(j.due); late > st.maxLate {
					st.maxLate = late
				}
				if started.Sub(j.due) > 100*time.Millisecond {
					st.late++
				}
				if err != nil {
					st.errors++
					if st.firstErr == nil {
						st.firstErr = err
					}
				} else {
					st.events += o.batch
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- job{first: i * o.batch, due: due}
	}
	close(jobs)
	wg.Wait()
	st.elapsed = time.Since(start)
	slices.Sort(st.latencies)
	return st
}

// watchClean reads the clean topic as the sink does (read_committed, so a
// record shows once the enricher's transaction has committed) and stamps
// the followed events it sees.
func watchClean(ctx context.Context, brokers []string, topic string, tr *benchkit.Tracker) error {
	key := []byte(`"messageId":"`)
	return benchkit.Follow(ctx, brokers, "sinkbench-watch", topic, 200*time.Millisecond, func(r *kgo.Record, polled time.Time) {
		i := bytes.Index(r.Value, key)
		if i < 0 {
			return
		}
		v := r.Value[i+len(key):]
		if j := bytes.IndexByte(v, '"'); j > 0 {
			tr.SawClean(string(v[:j]), polled)
		}
	})
}

// pollClickHouse counts db.events every -poll; when the count has grown it
// looks the outstanding samples up by message_id. The rows found were
// queryable when the count that grew returned, unless more rows came
// between that count and the lookup: a second count tells, and then they
// are stamped when the lookup returned. Either way the stamp is an upper
// bound, late by at most one poll interval and the queries' time.
func pollClickHouse(ctx context.Context, e *infra, db string, tr *benchkit.Tracker, rep *freshReport) error {
	var last uint64
	return benchkit.Every(ctx, e.o.freshPoll, func() error {
		start := time.Now()
		n, err := benchkit.CountRows(ctx, e.Conn, db)
		if err != nil {
			return fmt.Errorf("count rows: %w", err)
		}
		counted := time.Now()
		rep.polls++
		rep.pollTime += counted.Sub(start)
		if n == last {
			return nil
		}
		last = n
		var found []string
		chunks, err := tr.Lookup(ctx, e.Conn, db)
		if err != nil {
			return err
		}
		for _, f := range chunks {
			found = append(found, f.IDs...)
		}
		looked := time.Now()
		rep.lookups++
		rep.lookupTime += looked.Sub(counted)
		stamp := counted
		if again, err := benchkit.CountRows(ctx, e.Conn, db); err != nil || again != n {
			stamp = looked
			rep.lateStamps++
		}
		tr.SawVisible(found, stamp)
		return nil
	})
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0fms", float64(d.Microseconds())/1000)
}
