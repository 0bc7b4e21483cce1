package enricher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// Pseudonymization keys of the bench (not secrets: the data is synthetic).
const (
	benchKey       = "enricherbench-in-region-key-0123456789abcdef"
	benchExportKey = "enricherbench-export-key-fedcba9876543210xyz"
)

// baselineResult is one baseline phase.
type baselineResult struct {
	events   int
	join     time.Duration // client created to first records fetched
	elapsed  time.Duration // first records fetched to last acknowledgement
	failures int64         // records whose produce failed
}

func (r baselineResult) eventsPerSec() float64 { return float64(r.events) / r.elapsed.Seconds() }

// runBaseline copies o.events raw records unchanged to the baseline topic
// with a plain consumer group and asynchronous produces: the same broker
// work as the enricher's (fetch, produce acks=all, commit offsets), with no
// transform and no transactions. It uses the enricher's producer
// compression, so the broker stores the same kind of batches.
func runBaseline(ctx context.Context, o options, t benchTopics, group string) (baselineResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.phaseTimeout)
	defer cancel()
	created := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...), kgo.ClientID("enricherbench-baseline"),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(t.raw.Name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DefaultProduceTopic(t.baseline.Name),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression())) // the enricher's (pipeline.New)
	if err != nil {
		return baselineResult{}, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()

	n := int64(o.events)
	var (
		acked, failed atomic.Int64
		lastAck       time.Time
		allAcked      = make(chan struct{})
		firstErr      firstError
	)
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			firstErr.promise(r, err)
		}
		if acked.Add(1) == n {
			lastAck = time.Now()
			close(allAcked)
		}
	}
	var start time.Time
	produced := int64(0)
	for produced < n {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return baselineResult{}, fmt.Errorf("after %d records: %w", produced, err)
		}
		if err := fetches.Err0(); err != nil && !errors.Is(err, context.Canceled) {
			fetches.EachError(func(topic string, p int32, err error) {
				benchkit.Progress("  baseline fetch error %s[%d]: %v", topic, p, err)
			})
		}
		iter := fetches.RecordIter()
		if !iter.Done() && start.IsZero() {
			start = time.Now()
		}
		for !iter.Done() && produced < n {
			r := iter.Next()
			cl.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value}, promise)
			produced++
		}
	}
	select {
	case <-allAcked:
	case <-ctx.Done():
		return baselineResult{}, fmt.Errorf("waiting for acknowledgements (%d of %d): %w", acked.Load(), n, ctx.Err())
	}
	res := baselineResult{events: o.events, join: start.Sub(created), elapsed: lastAck.Sub(start), failures: failed.Load()}
	if res.failures > 0 {
		return res, fmt.Errorf("%d of %d produces failed, the first: %w", res.failures, n, firstErr.err)
	}
	return res, nil
}

// enricherResult is one enricher phase.
type enricherResult struct {
	events              int
	rebuild             time.Duration // consent store rebuild, its own metric
	start               time.Duration // New to Start returning (topic checks, rebuild)
	firstFetch          time.Duration // Start returning to the first raw records fetched
	elapsed             time.Duration // Start returning to all N consumed in committed transactions
	in, kept, exported  float64
	dropped             map[string]float64
	committed, aborted  float64
	txnMean, commitMean time.Duration // mean transaction and End durations
	consentRecords      float64
}

func (r enricherResult) eventsPerSec() float64 { return float64(r.events) / r.elapsed.Seconds() }

func (r enricherResult) eventsPerSecFromFetch() float64 {
	return float64(r.events) / (r.elapsed - r.firstFetch).Seconds()
}

func (r enricherResult) droppedTotal() float64 {
	var sum float64
	for _, n := range r.dropped {
		sum += n
	}
	return sum
}

// benchConfig is pipeline.Default() on the run's topics, with bench keys
// and a fresh group and transactional id.
func benchConfig(o options, t benchTopics, group string) (pipeline.Config, error) {
	cfg := pipeline.Default()
	cfg.Kafka.Brokers = o.Brokers
	cfg.Kafka.ClientID = "enricherbench-enricher"
	cfg.GroupID = group
	cfg.TransactionalID = group
	t.apply(&cfg)
	cfg.Pseudonym = pipeline.Pseudonym{KeyID: "b1", Key: config.Secret(benchKey)}
	cfg.Export.Name = "intl"
	cfg.Export.Pseudonym = pipeline.Pseudonym{KeyID: "bx1", Key: config.Secret(benchExportKey)}
	cfg.Catalogue.File = "configs/catalogue.yaml" // the bench runs from the repository root
	if o.maxPollRecords > 0 {
		cfg.MaxPollRecords = o.maxPollRecords
	}
	if err := config.Check(&cfg); err != nil {
		return cfg, fmt.Errorf("enricher config: %w", err)
	}
	return cfg, nil
}

// runEnricher runs the enricher until it has committed o.events records.
// A non-nil profile gets a CPU profile from Start returning to the end;
// started is called when Start returns, so CPU is measured from there.
func runEnricher(ctx context.Context, o options, t benchTopics, group string, profile *os.File, started func()) (enricherResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.phaseTimeout)
	defer cancel()
	cfg, err := benchConfig(o, t, group)
	if err != nil {
		return enricherResult{}, err
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "enricher")
	reg := prometheus.NewRegistry()
	built := time.Now()
	p, err := pipeline.New(cfg, reg, log)
	if err != nil {
		return enricherResult{}, err
	}
	var shutdownOnce sync.Once
	var shutdownErr error
	shutdown := func() {
		shutdownOnce.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer scancel()
			shutdownErr = p.Shutdown(sctx)
		})
	}
	defer shutdown()
	if err := p.Start(ctx); err != nil {
		return enricherResult{}, fmt.Errorf("start: %w", err)
	}
	t0 := time.Now()
	started()
	stopProfile, err := startProfile(profile)
	if err != nil {
		return enricherResult{}, err
	}
	res := enricherResult{events: o.events, start: t0.Sub(built)}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := gather(reg)
		if err != nil {
			stopProfile()
			return res, err
		}
		if res.firstFetch == 0 && m.sum("enricher_fetch_bytes_total", "topic", t.raw.Name) > 0 {
			res.firstFetch = time.Since(t0)
		}
		if m.sum("enricher_events_in_total", "", "") >= float64(o.events) {
			res.elapsed = time.Since(t0)
			break
		}
		select {
		case <-tick.C:
		case err := <-p.Done():
			stopProfile()
			return res, fmt.Errorf("enricher stopped: %v", err)
		case <-ctx.Done():
			stopProfile()
			return res, fmt.Errorf("after %.0f of %d events committed: %w", m.sum("enricher_events_in_total", "", ""), o.events, ctx.Err())
		}
	}
	stopProfile()
	shutdown()
	if shutdownErr != nil {
		return res, fmt.Errorf("shutdown: %w", shutdownErr)
	}

	m, err := gather(reg)
	if err != nil {
		return res, err
	}
	res.in = m.sum("enricher_events_in_total", "", "")
	res.kept = m.sum("enricher_events_out_total", "route", "clean")
	res.exported = m.sum("enricher_events_out_total", "route", "export")
	res.dropped = m.byLabel("enricher_events_dropped_total", "reason")
	res.committed = m.sum("enricher_transactions_total", "outcome", "committed")
	res.aborted = m.sum("enricher_transactions_total", "outcome", "aborted")
	res.txnMean = m.histogramMean("enricher_transaction_duration_seconds")
	res.commitMean = m.histogramMean("enricher_commit_duration_seconds")
	res.rebuild = time.Duration(m.sum("enricher_consent_store_rebuild_seconds", "", "") * float64(time.Second))
	res.consentRecords = m.sum("enricher_consent_records_total", "kind", "consent")
	return res, nil
}

// metricsSnapshot is one Gather of a registry: every series of every
// family, with its labels, counter or gauge value, and histogram sum and
// count.
type metricsSnapshot map[string][]series

type series struct {
	labels    map[string]string
	value     float64
	histSum   float64
	histCount uint64
}

func gather(reg *prometheus.Registry) (metricsSnapshot, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather metrics: %w", err)
	}
	s := make(metricsSnapshot, len(mfs))
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			se := series{labels: map[string]string{},
				// The getters are nil-safe: a counter has no gauge value.
				value:   m.GetCounter().GetValue() + m.GetGauge().GetValue(),
				histSum: m.GetHistogram().GetSampleSum(), histCount: m.GetHistogram().GetSampleCount()}
			for _, l := range m.GetLabel() {
				se.labels[l.GetName()] = l.GetValue()
			}
			s[mf.GetName()] = append(s[mf.GetName()], se)
		}
	}
	return s, nil
}

// sum adds the series of name whose label has value want; an empty label
// sums every series.
func (s metricsSnapshot) sum(name, label, want string) float64 {
	var total float64
	for _, se := range s[name] {
		if label == "" || se.labels[label] == want {
			total += se.value
		}
	}
	return total
}

func (s metricsSnapshot) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, se := range s[name] {
		out[se.labels[label]] += se.value
	}
	return out
}

func (s metricsSnapshot) histogramMean(name string) time.Duration {
	var sum float64
	var count uint64
	for _, se := range s[name] {
		sum += se.histSum
		count += se.histCount
	}
	if count == 0 {
		return 0
	}
	return time.Duration(sum / float64(count) * float64(time.Second))
}
