package kafkax

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/retry"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"
)

// NewClient builds a franz-go client from cfg plus extra, with kprom metrics
// registered in reg under namespace (the service name) and franz-go's own
// logs at warn and above routed to log.
func NewClient(cfg *Config, reg prometheus.Registerer, namespace string, log *slog.Logger, extra ...kgo.Opt) (*kgo.Client, error) {
	return build(cfg, reg, namespace, log, extra, "kafka client", kgo.NewClient, func(c *kgo.Client) *kgo.Client { return c })
}

// build makes a client of cfg plus extra with newClient, its metrics
// registered; client is its kgo.Client, what names it in errors.
func build[C any](cfg *Config, reg prometheus.Registerer, namespace string, log *slog.Logger, extra []kgo.Opt, what string,
	newClient func(...kgo.Opt) (C, error), client func(C) *kgo.Client) (C, error) {
	var zero C
	opts, err := clientOpts(cfg, reg, namespace, log)
	if err != nil {
		return zero, err
	}
	c, err := newClient(append(opts, extra...)...)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	registerBuffered(reg, namespace, client(c))
	return c, nil
}

// WorkGroup is the options of a consumer group that commits by hand once
// its work is durable (at least once): committed records only, from the
// start for a new group, and no rebalance while a poll's work is in hand.
func WorkGroup(group string, topics ...string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}
}

// PollWork is the loop of a WorkGroup client: poll up to max records, do
// work on them until it succeeds (waiting on backoff between attempts),
// commit them, allow a rebalance; until ctx ends or the client closes.
// Delivery: at least once: a crash between the work and the commit does
// the work again, so work must be harmless twice. what names the work in
// logs.
func PollWork(ctx context.Context, cl *kgo.Client, max int, backoff retry.Backoff, log *slog.Logger, what string, work func(context.Context, []*kgo.Record) error) {
	for {
		fetches := cl.PollRecords(ctx, max)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		if records := fetches.Records(); len(records) > 0 {
			err := backoff.Do(ctx, func(ctx context.Context) error { return work(ctx, records) }, func(err error, wait time.Duration) {
				log.Warn(what+" failed; retrying", "records", len(records), "in", wait, "err", err)
			})
			if err != nil {
				return // ctx ended
			}
			if err := cl.CommitRecords(ctx, records...); err != nil {
				log.Warn("commit failed; the records' "+what+" will be done again", "err", err)
			}
		}
		cl.AllowRebalance()
	}
}

// NewTransactSession is NewClient for a consume-transform-produce loop:
// extra must name a consumer group and a transactional ID.
func NewTransactSession(cfg *Config, reg prometheus.Registerer, namespace string, log *slog.Logger, extra ...kgo.Opt) (*kgo.GroupTransactSession, error) {
	return build(cfg, reg, namespace, log, extra, "kafka transact session", kgo.NewGroupTransactSession, (*kgo.GroupTransactSession).Client)
}

func clientOpts(cfg *Config, reg prometheus.Registerer, namespace string, log *slog.Logger) ([]kgo.Opt, error) {
	opts, err := cfg.Opts()
	if err != nil {
		return nil, err
	}
	metrics := kprom.NewMetrics(namespace, kprom.Registerer(withoutGaugesNamedTotal{reg}))
	return append(opts,
		kgo.WithHooks(metrics),
		kgo.WithLogger(levelFloor{kslog.New(log.With("component", "franz-go"))}),
	), nil
}

func registerBuffered(reg prometheus.Registerer, namespace string, client *kgo.Client) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "buffered_produce_records",
			Help: "Records buffered in the client, waiting to be produced.",
		}, func() float64 { return float64(client.BufferedProduceRecords()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "buffered_fetch_records",
			Help: "Records fetched and buffered in the client, waiting to be polled.",
		}, func() float64 { return float64(client.BufferedFetchRecords()) }),
	)
}

// withoutGaugesNamedTotal drops kprom's two gauges whose names end in _total
// (buffered_*_records_total), which promtool check metrics rejects; NewClient
// registers the same values as buffered_*_records.
type withoutGaugesNamedTotal struct{ prometheus.Registerer }

func (r withoutGaugesNamedTotal) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	drop := false
	for d := range ch {
		s := d.String()
		drop = drop || strings.Contains(s, `_buffered_fetch_records_total"`) || strings.Contains(s, `_buffered_produce_records_total"`)
	}
	if drop {
		return nil
	}
	return r.Registerer.Register(c)
}

func (r withoutGaugesNamedTotal) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// levelFloor keeps franz-go's info and debug chatter out of service logs.
type levelFloor struct{ kgo.Logger }

func (levelFloor) Level() kgo.LogLevel { return kgo.LogLevelWarn }
