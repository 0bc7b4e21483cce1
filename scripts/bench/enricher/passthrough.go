package enricher

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/par"
	"github.com/consentflow/consentflow/internal/policy"
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
//
// With a floor, it does in the same transactions what no enricher of this
// policy can skip, and nothing more (floorWork).
func runPassthrough(ctx context.Context, o options, t benchTopics, group string, floor *floorWork) (baselineResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.phaseTimeout)
	defer cancel()
	cfg, err := benchConfig(o, t, group)
	if err != nil {
		return baselineResult{}, err
	}
	created := time.Now()
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(o.Brokers...), kgo.ClientID("enricherbench-passthrough"),
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
		if floor == nil {
			for _, r := range records {
				sess.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value}, failed.promise)
			}
		} else {
			floor.produce(ctx, sess, t, records, failed.promise)
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

// floorWork is what the floor phase does to a poll's records: what no
// enricher of this policy can skip, on every core, reading no JSON. Each
// event's clean record goes to the clean topic, and every third event's
// export record to the export topic too (the bench's consent exports a
// third), each as long as the enricher's are on average (a prefix of the
// raw value). Before producing an event, it computes as many keyed
// pseudonyms (HMAC-SHA256) as the enricher's profiles do for the bench's
// events, of the record's key: in region the subject, the anonymousId of
// the signed-in half and the two device ids; abroad the subject and the
// messageId.
type floorWork struct {
	inRegion, abroad        *policy.Pseudonymizer
	cleanBytes, exportBytes int
}

// newFloorWork measures the enricher's mean clean and export record sizes
// on sample envelopes, through the profiles cfg configures.
func newFloorWork(cfg pipeline.Config, sample [][]byte) (*floorWork, error) {
	agents, err := policy.NewUserAgentParser(64)
	if err != nil {
		return nil, err
	}
	clean, export, err := cfg.NewProfiles(agents)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	now := time.Now()
	f := &floorWork{inRegion: clean.Keys().At(now), abroad: export.Keys().At(now)}
	d := policy.Decision{Purposes: policy.Analytics, Export: true}
	for _, raw := range sample {
		in, ok := policy.ParseRaw(raw)
		if !ok {
			return nil, fmt.Errorf("floor: a sample envelope does not parse: %s", raw)
		}
		value, _, err := clean.AppendDeidentified(nil, in, d, nil)
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		x, err := policy.Export(in, d, export)
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		f.cleanBytes, f.exportBytes = f.cleanBytes+len(value), f.exportBytes+len(x.Value())
	}
	f.cleanBytes, f.exportBytes = f.cleanBytes/len(sample), f.exportBytes/len(sample)
	return f, nil
}

func (f *floorWork) produce(ctx context.Context, sess *kgo.GroupTransactSession, t benchTopics, records []*kgo.Record, promise func(*kgo.Record, error)) {
	kinds := []string{policy.KindAnonymous, policy.KindDevice, policy.KindAdvertising, policy.KindUser}
	par.Range(len(records), 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r := records[i]
			id := string(r.Key)
			for _, kind := range kinds[:3+i%2] {
				f.inRegion.Pseudonym(kind, id)
			}
			sess.Produce(ctx, &kgo.Record{Topic: t.clean.Name, Key: r.Key, Value: r.Value[:min(f.cleanBytes, len(r.Value))]}, promise)
			if i%3 == 0 {
				f.abroad.Pseudonym(policy.KindUser, id)
				f.abroad.Pseudonym(policy.KindMessage, id)
				sess.Produce(ctx, &kgo.Record{Topic: t.export.Name, Key: r.Key, Value: r.Value[:min(f.exportBytes, len(r.Value))]}, promise)
			}
		}
	})
}
