package consentstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/par"
	"github.com/consentflow/consentflow/internal/policy"
)

// Follower keeps a Store current from privacy.consent and privacy.erasures:
// it reads both from the beginning at start-up (the rebuild) and follows
// them while running.
type Follower struct {
	store    *Store
	cl       *kgo.Client
	adm      *kadm.Client
	consent  string
	erasures string
	log      *slog.Logger
	metrics  *metrics

	mu       sync.Mutex
	advanced *sync.Cond
	// next is, per topic and partition, the offset after the last record
	// applied: what WaitCaughtUp compares with the end offsets.
	next map[string]map[int32]int64

	cancel  context.CancelFunc
	stopped chan struct{}
	once    sync.Once
}

// NewFollower builds a follower of the two topics into store.
func NewFollower(cfg *kafkax.Config, consentTopic, erasuresTopic string, store *Store, reg prometheus.Registerer, log *slog.Logger) (*Follower, error) {
	cl, err := kafkax.NewClient(cfg, reg, "enricher_consent", log,
		kgo.ConsumeTopics(consentTopic, erasuresTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) take offsets too: keeping
		// them lets the position reach the end offset after a transaction.
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return nil, err
	}
	f := &Follower{store: store, cl: cl, adm: kadm.NewClient(cl), consent: consentTopic, erasures: erasuresTopic,
		log: log, metrics: newMetrics(reg, store), next: map[string]map[int32]int64{}, stopped: make(chan struct{})}
	f.advanced = sync.NewCond(&f.mu)
	return f, nil
}

// Client is the follower's Kafka client.
func (f *Follower) Client() *kgo.Client { return f.cl }

// Start follows the topics in the background and returns once the store
// holds everything the topics held when it was called (the rebuild), or
// ctx ends.
func (f *Follower) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		f.run(runCtx)
		// Close stopped and wake the waiters under the lock: a
		// WaitCaughtUp between its check of stopped and its Wait would
		// otherwise miss both and wait forever.
		f.mu.Lock()
		close(f.stopped)
		f.advanced.Broadcast()
		f.mu.Unlock()
	}()
	start := time.Now()
	if err := f.WaitCaughtUp(ctx); err != nil {
		return fmt.Errorf("rebuild consent store: %w", err)
	}
	subjects, suppressed := f.store.Size()
	f.metrics.rebuild.Set(time.Since(start).Seconds())
	f.log.Info("consent store rebuilt", "subjects", subjects, "suppressed", suppressed, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func (f *Follower) run(ctx context.Context) {
	for {
		fetches := f.cl.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return // Start's goroutine closes stopped and wakes the waiters
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			f.log.Warn("consent fetch error", "topic", topic, "partition", partition, "err", err)
		})
		records := fetches.Records()
		for i, d := range decodeAll(records, f.consent) {
			f.apply(records[i], d)
		}
		f.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				if f.next[p.Topic] == nil {
					f.next[p.Topic] = map[int32]int64{}
				}
				f.next[p.Topic][p.Partition] = p.Records[n-1].Offset + 1
			}
		})
		f.advanced.Broadcast()
		f.mu.Unlock()
		f.metrics.observeSize()
	}
}

// decoded is a consent record's value, decoded.
type decoded struct {
	state event.ConsentState
	err   error
}

// decodeAll decodes the consent values among records on every core: JSON
// decoding is most of a rebuild's time. Applying stays sequential, in
// offset order.
func decodeAll(records []*kgo.Record, consentTopic string) []decoded {
	out := make([]decoded, len(records))
	decodeRange := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r := records[i]
			if r.Topic != consentTopic || r.Value == nil || r.Attrs.IsControl() {
				continue
			}
			st, err := event.DecodeConsentState(r.Value)
			if err == nil && st.Subject != string(r.Key) {
				err = errors.New("subject differs from the record key")
			}
			out[i] = decoded{st, err}
		}
	}
	par.Range(len(records), 256, decodeRange)
	return out
}

// apply folds one record into the store. A consent record that does not
// decode is counted and skipped: the subject keeps what was known before,
// and without it an event is judged fail-closed.
func (f *Follower) apply(r *kgo.Record, d decoded) {
	switch {
	case r.Attrs.IsControl():
		return
	case r.Topic == f.erasures:
		f.store.Suppress(string(r.Key))
		f.metrics.erasures.Inc()
	case r.Value == nil:
		f.store.Forget(string(r.Key))
		f.metrics.tombstones.Inc()
	case d.err != nil:
		f.metrics.invalid.Inc()
		f.log.Warn("skipping an unreadable consent record", "partition", r.Partition, "offset", r.Offset, "err", d.err)
	default:
		f.store.Apply(d.state.Subject, d.state.UpdatedAt, policy.ConsentOf(d.state))
		f.metrics.consent.Inc()
	}
}

// WaitCaughtUp returns once the store has applied every record committed to
// both topics before the call. The enricher calls it before judging a
// batch, so consent recorded before an event was sent is in force for it.
func (f *Follower) WaitCaughtUp(ctx context.Context) error {
	ends, starts, err := f.offsets(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.advanced.Broadcast()
		f.mu.Unlock()
	})
	defer stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for !f.reached(ends, starts) {
		if ctx.Err() != nil {
			return fmt.Errorf("consent store behind its topics: %w", ctx.Err())
		}
		select {
		case <-f.stopped:
			return errors.New("consent follower stopped")
		default:
		}
		f.advanced.Wait()
	}
	return nil
}

// offsets lists the topics' committed end offsets and start offsets. It
// retries while the topics are unknown: just after they are created, a
// broker may not know them yet.
func (f *Follower) offsets(ctx context.Context) (ends, starts kadm.ListedOffsets, err error) {
	for {
		ends, err = f.adm.ListCommittedOffsets(ctx, f.consent, f.erasures)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			starts, err = f.adm.ListStartOffsets(ctx, f.consent, f.erasures)
		}
		if err == nil {
			err = starts.Error()
		}
		if err == nil || !kerr.IsRetriable(err) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("list consent topic offsets: %w (%w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list consent topic offsets: %w", err)
	}
	return ends, starts, nil
}

func (f *Follower) reached(ends, starts kadm.ListedOffsets) bool {
	caughtUp := true
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset <= 0 {
			return
		}
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && s.Offset >= o.Offset {
			return // everything was deleted: nothing to read
		}
		if f.next[o.Topic][o.Partition] < o.Offset {
			caughtUp = false
		}
	})
	return caughtUp
}

// Shutdown stops following and closes the client. Idempotent, safe
// without Start.
func (f *Follower) Shutdown(ctx context.Context) error {
	var err error
	f.once.Do(func() {
		if f.cancel != nil {
			f.cancel()
		}
		f.cl.Close()
		if f.cancel != nil {
			select {
			case <-f.stopped:
			case <-ctx.Done():
				err = fmt.Errorf("consent follower did not stop: %w", ctx.Err())
			}
		}
	})
	return err
}
