// Package pipeline is the enricher: it consumes events.raw.<region>,
// de-identifies each event with the in-region profile (internal/policy) and
// produces it to events.clean.<region>. Records it cannot decode go to the
// dead-letter topic with the reason in headers.
//
// Delivery: at least once. A batch's offsets are committed only after every
// clean and dead-letter record of it was acknowledged by Kafka; a crash
// between the two replays the batch, so a clean record may appear twice
// (same messageId). Kafka transactions replace this in a later version.
//
// Metrics: enricher_records_total{outcome}, enricher_produce_retries_total,
// and franz-go's client metrics under enricher_.
package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/retry"
)

const stage = "enricher"

var _ obs.Component = (*Pipeline)(nil)

// Pipeline is the enricher component.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	client  *kgo.Client
	pseudo  *policy.Pseudonymizer

	cancel       context.CancelFunc
	done         chan error    // the loop's result, for Done
	stopped      chan struct{} // closed when the loop has returned
	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds the enricher from a validated config.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Pipeline, error) {
	pseudo, err := policy.NewPseudonymizer(cfg.Pseudonym.KeyID, []byte(cfg.Pseudonym.Key.Reveal()))
	if err != nil {
		return nil, fmt.Errorf("pseudonymizer: %w", err)
	}
	if cfg.MaxPollRecords == 0 {
		cfg.MaxPollRecords = 1000
	}
	client, err := kafkax.NewClient(&cfg.Kafka, reg, "enricher", log,
		kgo.ConsumerGroup(cfg.GroupID),
		kgo.ConsumeTopics(cfg.Topics.Raw.Name),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.Lz4Compression(), kgo.NoCompression()),
	)
	if err != nil {
		return nil, err
	}
	return &Pipeline{cfg: cfg, log: log, metrics: newMetrics(reg), client: client, pseudo: pseudo, done: make(chan error, 1), stopped: make(chan struct{})}, nil
}

// Start creates or checks the topics and starts consuming in the background.
func (p *Pipeline) Start(ctx context.Context) error {
	t := p.cfg.Topics
	if err := kafkax.EnsureTopics(ctx, p.client, []kafkax.TopicSpec{t.Clean, t.DLQ}, []kafkax.TopicSpec{t.Raw}, p.log); err != nil {
		return fmt.Errorf("enricher topics: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		p.done <- p.run(runCtx)
		close(p.stopped)
	}()
	p.log.Info("enricher consuming", "from", t.Raw.Name, "to", t.Clean.Name, "group", p.cfg.GroupID)
	return nil
}

// Done yields the loop's error if it stops on its own.
func (p *Pipeline) Done() <-chan error { return p.done }

// Ready reports whether Kafka answers.
func (p *Pipeline) Ready(ctx context.Context) error { return p.client.Ping(ctx) }

// Shutdown stops the loop (an unfinished batch is not committed and will be
// replayed), leaves the group and closes the client. Idempotent and safe
// without Start.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() {
		if p.cancel != nil {
			p.cancel()
			select {
			case <-p.stopped:
			case <-ctx.Done():
				p.shutdownErr = fmt.Errorf("enricher loop did not stop: %w", ctx.Err())
			}
		}
		p.client.AllowRebalance()
		p.client.Close()
	})
	return p.shutdownErr
}

func (p *Pipeline) run(ctx context.Context) error {
	for {
		fetches := p.client.PollRecords(ctx, p.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			p.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		records := fetches.Records()
		if len(records) > 0 {
			if err := p.processBatch(ctx, records); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		p.client.AllowRebalance()
	}
}

// processBatch de-identifies records, produces the results, then commits.
func (p *Pipeline) processBatch(ctx context.Context, records []*kgo.Record) error {
	out := make([]*kgo.Record, 0, len(records))
	var clean, dead int
	for _, rec := range records {
		r, err := p.transform(rec)
		if err != nil {
			out = append(out, kafkax.DeadLetter(rec, p.cfg.Topics.DLQ.Name, stage, "invalid_envelope", err))
			dead++
			continue
		}
		out = append(out, r)
		clean++
	}
	err := retry.Default.Do(ctx, func(ctx context.Context) error {
		return p.client.ProduceSync(ctx, out...).FirstErr()
	}, func(err error, wait time.Duration) {
		p.metrics.produceRetries.Inc()
		p.log.Warn("produce failed; retrying batch", "records", len(out), "wait", wait, "err", err)
	})
	if err != nil {
		return err
	}
	p.metrics.records.WithLabelValues("clean").Add(float64(clean))
	p.metrics.records.WithLabelValues("dead_lettered").Add(float64(dead))
	if err := p.client.CommitRecords(ctx, records...); err != nil {
		// The batch was produced; a failed commit replays it (duplicates, not loss).
		p.log.Warn("commit failed; batch will be replayed", "err", err)
	}
	return nil
}

// transform turns one raw record into its clean record; an error means the
// record is poison (permanent).
func (p *Pipeline) transform(rec *kgo.Record) (*kgo.Record, error) {
	env, err := event.DecodeEnvelope(rec.Value)
	if err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	clean, err := policy.Deidentify(env, p.pseudo)
	if err != nil {
		return nil, fmt.Errorf("de-identify: %w", err)
	}
	value, err := json.Marshal(clean)
	if err != nil {
		return nil, fmt.Errorf("encode clean event: %w", err)
	}
	return &kgo.Record{Topic: p.cfg.Topics.Clean.Name, Key: []byte(clean.Subject), Value: value}, nil
}
