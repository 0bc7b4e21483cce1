package pipeline

// The transaction loop: a polled batch becomes one Kafka transaction
// (see Delivery in the package doc).

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/retry"
)

func (p *Pipeline) run(ctx context.Context) error {
	aborted := 0 // transactions aborted in a row
	for {
		fetches := p.sess.PollRecords(ctx, p.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			p.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		p.lag.Observe(fetches)
		records := fetches.Records()
		if len(records) == 0 {
			continue
		}
		committed, err := p.transact(records)
		if err != nil {
			return err
		}
		if committed {
			aborted = 0
			continue
		}
		// An aborted batch is consumed again at once; wait a little first
		// so a broker that keeps failing is not hammered.
		if retry.Default.Wait(ctx, aborted) != nil {
			return nil
		}
		aborted++
	}
}

// transact judges and de-identifies records and writes the results and the
// batch's offsets in one transaction. committed false means it aborted and
// the batch will be consumed again; an error means the session cannot go
// on. It runs to the end even while shutting down: cancelling a
// transaction midway would leave the client unusable.
func (p *Pipeline) transact(records []*kgo.Record) (committed bool, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.TransactionTimeout)
	defer cancel()
	if err := p.sess.Begin(); err != nil {
		return false, fmt.Errorf("begin transaction: %w", err)
	}
	// The consent store catches up while the batch is decoded: decoding
	// does not depend on consent, judging does. It waits for the
	// transactions open on the consent topics to end too (WaitSettled):
	// another instance's open transaction of carried consent hides, from
	// a read_committed reader, a withdrawal the collector wrote after it
	// on the same partition, and the events sent after that withdrawal
	// would be judged without it. This transaction produces nothing
	// before the wait, or it would wait for itself.
	synced := make(chan error, 1)
	go func() {
		syncCtx, cancelSync := context.WithTimeout(ctx, p.cfg.Consent.SyncTimeout)
		defer cancelSync()
		synced <- p.follower.WaitSettled(syncCtx)
	}()
	// Records are produced as each part of the batch is ready, in the
	// batch's order, so the client compresses and sends them while the rest
	// is processed; the transaction commits only if all were acknowledged.
	var produced producedRecords
	end := kgo.TryCommit
	consentReady := func() error {
		if err := <-synced; err != nil {
			return err
		}
		produced.produce(ctx, p.sess, p.stillLatest(p.unwritten))
		return nil
	}
	out, keys, t, err := p.processBatch(records, consentReady,
		func(part []*kgo.Record) { produced.produce(ctx, p.sess, part) })
	if err != nil {
		// Judging by stale consent could keep what a withdrawal forbids.
		p.log.Warn("consent store not current; aborting the transaction", "err", err)
		end = kgo.TryAbort
	}
	// The last part need not linger for company: nothing more comes.
	if err := p.sess.Client().Flush(ctx); err != nil && end == kgo.TryCommit {
		p.log.Warn("produce not acknowledged in time; aborting the transaction", "records", len(out), "err", err)
		end = kgo.TryAbort
	}
	if err := produced.wait(); err != nil && end == kgo.TryCommit {
		p.log.Warn("produce failed; aborting the transaction", "records", len(out), "err", err)
		end = kgo.TryAbort
	}
	endStart := time.Now()
	committed, err = p.sess.End(ctx, end)
	p.metrics.commitDuration.Observe(time.Since(endStart).Seconds())
	p.metrics.transactionDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		p.metrics.transactions.WithLabelValues("failed").Inc()
		return false, fmt.Errorf("end transaction: %w", err)
	}
	if !committed {
		p.metrics.transactions.WithLabelValues("aborted").Inc()
		p.keepUnwritten(out)
		return false, nil
	}
	p.unwritten = nil
	// Only now: the events of an aborted batch come again and must pass.
	p.dedup.add(keys, time.Now())
	p.metrics.transactions.WithLabelValues("committed").Inc()
	p.metrics.add(t)
	p.violations.add(t.violations, time.Now())
	p.metrics.dedupEntries.Set(float64(p.dedup.size()))
	return true, nil
}

// keepUnwritten keeps, for the next transaction, the consent records of an
// aborted one's output and those it was to write for an earlier one.
func (p *Pipeline) keepUnwritten(out []*kgo.Record) {
	var again []*kgo.Record
	for _, r := range slices.Concat(p.unwritten, out) {
		if r.Topic == p.cfg.Topics.Consent.Name {
			// A new record: the client wrote into the produced one.
			again = append(again, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value})
		}
	}
	p.unwritten = again
}

// stillLatest is the held-back consent records whose state is still
// their subject's latest in the store, as of a time no later than the
// record's. The store applied each when its batch was judged; since then
// the batch's partition may have moved to another instance, which judged
// the same events and later ones and wrote newer states: written after
// those, an older one would be what compaction keeps. The state must be
// the same, not only the time: the records of one request's events all
// carry its receipt time, so another instance's withdrawal can tie with
// a held-back grant, and the grant written last would undo it.
func (p *Pipeline) stillLatest(records []*kgo.Record) []*kgo.Record {
	var out []*kgo.Record
	for _, r := range records {
		st, err := event.DecodeConsentState(r.Value)
		if err != nil {
			continue // never: the enricher wrote it
		}
		c, latest := p.store.Latest(consentstore.KindOf(st), st.Subject)
		if !st.UpdatedAt.Before(latest) && c == policy.ConsentOf(st) {
			out = append(out, r)
		}
	}
	return out
}

// producedRecords tracks the records produced in a transaction.
type producedRecords struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	firstErr error
}

func (r *producedRecords) produce(ctx context.Context, sess *kgo.GroupTransactSession, records []*kgo.Record) {
	r.wg.Add(len(records))
	for _, rec := range records {
		sess.Produce(ctx, rec, r.promise)
	}
}

func (r *producedRecords) promise(_ *kgo.Record, err error) {
	if err != nil {
		r.mu.Lock()
		if r.firstErr == nil {
			r.firstErr = err
		}
		r.mu.Unlock()
	}
	r.wg.Done()
}

// wait waits for every record's acknowledgement and returns the first
// error.
func (r *producedRecords) wait() error {
	r.wg.Wait()
	return r.firstErr
}
