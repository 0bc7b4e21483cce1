// Package pipeline is the enricher: it consumes events.raw.<region>,
// de-identifies each event with the in-region profile (internal/policy) and
// produces it to events.clean.<region>. Records it cannot decode go to the
// dead-letter topic with the reason in headers.
//
// Delivery: exactly once from the raw topic to the clean and dead-letter
// topics. Each polled batch is one Kafka transaction holding its output
// records and its consumer offsets (franz-go's GroupTransactSession), so
// readers with isolation read_committed see every event once: a crash or a
// failed produce aborts the transaction and the batch is consumed again.
// The transactional ID (transactional_id) must be unique per instance and
// stable across its restarts, so a restarted instance fences its own
// unfinished transaction.
//
// Client retries (same source and messageId within dedup_window) are
// dropped; the memory of them is this instance's.
//
// Metrics: enricher_records_total{outcome}, enricher_dedup_entries,
// enricher_transactions_total{outcome}, enricher_transaction_duration_seconds,
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
	sess    *kgo.GroupTransactSession
	pseudo  *policy.Pseudonymizer
	dedup   *dedup // used by the run loop only

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
	sess, err := kafkax.NewTransactSession(&cfg.Kafka, reg, "enricher", log,
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.ConsumerGroup(cfg.GroupID),
		kgo.ConsumeTopics(cfg.Topics.Raw.Name),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.Lz4Compression(), kgo.NoCompression()),
	)
	if err != nil {
		return nil, err
	}
	return &Pipeline{cfg: cfg, log: log, metrics: newMetrics(reg), sess: sess, pseudo: pseudo,
		dedup: newDedup(cfg.DedupWindow, cfg.DedupMaxEntries), done: make(chan error, 1), stopped: make(chan struct{})}, nil
}

// Start creates or checks the topics and starts consuming in the background.
func (p *Pipeline) Start(ctx context.Context) error {
	t := p.cfg.Topics
	if err := kafkax.EnsureTopics(ctx, p.sess.Client(), []kafkax.TopicSpec{t.Clean, t.DLQ}, []kafkax.TopicSpec{t.Raw}, p.log); err != nil {
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
func (p *Pipeline) Ready(ctx context.Context) error { return p.sess.Client().Ping(ctx) }

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
		p.sess.Close()
	})
	return p.shutdownErr
}

func (p *Pipeline) run(ctx context.Context) error {
	backoff := retry.Default.Initial
	for {
		fetches := p.sess.PollRecords(ctx, p.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			p.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		records := fetches.Records()
		if len(records) == 0 {
			continue
		}
		committed, err := p.transact(records)
		if err != nil {
			return err
		}
		if committed {
			backoff = retry.Default.Initial
			continue
		}
		// An aborted batch is consumed again at once; wait a little first
		// so a broker that keeps failing is not hammered.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retry.Default.Max)
	}
}

// transact de-identifies records and writes the results and the batch's
// offsets in one transaction. committed false means it aborted and the
// batch will be consumed again; an error means the session cannot go on.
// It runs to the end even while shutting down: cancelling a transaction
// midway would leave the client unusable.
func (p *Pipeline) transact(records []*kgo.Record) (committed bool, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.TransactionTimeout)
	defer cancel()
	if err := p.sess.Begin(); err != nil {
		return false, fmt.Errorf("begin transaction: %w", err)
	}
	out := make([]*kgo.Record, 0, len(records))
	var dead, duplicates int
	now := time.Now()
	keys := make([]string, 0, len(records))
	inBatch := make(map[string]bool, len(records))
	for _, rec := range records {
		r, key, err := p.transform(rec)
		switch {
		case err != nil:
			out = append(out, kafkax.DeadLetter(rec, p.cfg.Topics.DLQ.Name, stage, "invalid_envelope", err))
			dead++
		case p.dedup != nil && (inBatch[key] || p.dedup.contains(key, now)):
			duplicates++ // a client's retry of an event already stored
		default:
			inBatch[key] = true
			keys = append(keys, key)
			out = append(out, r)
		}
	}
	produceErr := p.sess.ProduceSync(ctx, out...).FirstErr()
	end := kgo.TryCommit
	if produceErr != nil {
		p.log.Warn("produce failed; aborting the transaction", "records", len(out), "err", produceErr)
		end = kgo.TryAbort
	}
	committed, err = p.sess.End(ctx, end)
	p.metrics.transactionDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		p.metrics.transactions.WithLabelValues("failed").Inc()
		return false, fmt.Errorf("end transaction: %w", err)
	}
	if !committed {
		p.metrics.transactions.WithLabelValues("aborted").Inc()
		return false, nil
	}
	// Only now: the events of an aborted batch come again and must pass.
	p.dedup.add(keys, now)
	p.metrics.transactions.WithLabelValues("committed").Inc()
	p.metrics.records.WithLabelValues("clean").Add(float64(len(keys)))
	p.metrics.records.WithLabelValues("dead_lettered").Add(float64(dead))
	p.metrics.records.WithLabelValues("duplicate").Add(float64(duplicates))
	p.metrics.dedupEntries.Set(float64(p.dedup.size()))
	return true, nil
}

// transform turns one raw record into its clean record and the key that
// identifies the event for de-duplication; an error means the record is
// poison (permanent).
func (p *Pipeline) transform(rec *kgo.Record) (*kgo.Record, string, error) {
	env, err := event.DecodeEnvelope(rec.Value)
	if err != nil {
		return nil, "", fmt.Errorf("decode envelope: %w", err)
	}
	clean, err := policy.Deidentify(env, p.pseudo)
	if err != nil {
		return nil, "", fmt.Errorf("de-identify: %w", err)
	}
	value, err := json.Marshal(clean)
	if err != nil {
		return nil, "", fmt.Errorf("encode clean event: %w", err)
	}
	// messageIds are the client's: unique per source, not across sources.
	key := env.SourceID + "\x00" + env.MessageID
	return &kgo.Record{Topic: p.cfg.Topics.Clean.Name, Key: []byte(clean.Subject), Value: value}, key, nil
}
