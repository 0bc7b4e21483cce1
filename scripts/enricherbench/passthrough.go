package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// runPassthrough copies o.events raw records unchanged to the baseline
// topic exactly once, the way the enricher moves records: a
// GroupTransactSession (read_committed), one transaction per poll of the
// enricher's max_poll_records, every record produced, flushed, then End.
// No transform, no consent, no second topic: the ceiling of any
// exactly-once enricher on franz-go on this broker, and with the baseline
// it splits the enricher's gap into the transactions' share and its own.
// Timed, like the baseline, from the first fetch that returned records to
// the last commit.
func runPassthrough(ctx context.Context, o options, t benchTopics, group string) (baselineResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.phaseTimeout)
	defer cancel()
	cfg, err := benchConfig(o, t, group)
	if err != nil {
		return baselineResult{}, err
	}
	created := time.Now()
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(o.brokers...), kgo.ClientID("enricherbench-passthrough"),
		kgo.TransactionalID(group), kgo.ConsumerGroup(group), kgo.ConsumeTopics(t.raw.Name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(), kgo.DefaultProduceTopic(t.baseline.Name),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()))
	if err != nil {
		return baselineResult{}, fmt.Errorf("kafka client: %w", err)
	}
	defer sess.Close()

	var start time.Time
	var failed firstError
	done := 0
	for done < o.events {
		fetches := sess.PollRecords(ctx, cfg.MaxPollRecords)
		if err := ctx.Err(); err != nil {
			return baselineResult{}, fmt.Errorf("after %d records: %w", done, err)
		}
		records := fetches.Records()
		if len(records) == 0 {
			continue
		}
		if start.IsZero() {
			start = time.Now()
		}
		if err := sess.Begin(); err != nil {
			return baselineResult{}, fmt.Errorf("begin: %w", err)
		}
		for _, r := range records {
			sess.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value}, failed.promise)
		}
		if err := sess.Client().Flush(ctx); err != nil {
			return baselineResult{}, fmt.Errorf("flush: %w", err)
		}
		committed, err := sess.End(ctx, failed.err == nil)
		switch {
		case err != nil:
			return baselineResult{}, fmt.Errorf("end transaction: %w", err)
		case failed.err != nil:
			return baselineResult{}, fmt.Errorf("produce: %w", failed.err)
		case !committed:
			return baselineResult{}, fmt.Errorf("transaction of %d records aborted", len(records))
		}
		done += len(records)
	}
	return baselineResult{events: done, join: start.Sub(created), elapsed: time.Since(start)}, nil
}
