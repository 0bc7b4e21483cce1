package kafkax

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/retry"
)

// Tail reads every partition of some topics from the beginning and keeps
// following them, handing each poll's records to apply in offset order. It
// is how a stage holds a topic's whole state in memory (a suppression
// list, identity links, receipts): Start returns once everything committed
// before it was applied, and WaitCaughtUp does the same at any later time.
// Transaction markers are skipped; aborted records are never read.
type Tail struct {
	cl     *kgo.Client
	adm    *kadm.Client
	topics []string
	apply  func([]*kgo.Record)
	log    *slog.Logger

	mu       sync.Mutex
	advanced *sync.Cond
	// next is, per topic and partition, the offset after the last record
	// applied: what WaitCaughtUp compares with the end offsets.
	next map[string]map[int32]int64

	cancel  context.CancelFunc
	stopped chan struct{}
	once    sync.Once
}

// NewTail builds a tail of topics. apply is called from one goroutine.
// namespace prefixes the client's metrics (for example sink_erasures).
func NewTail(cfg *Config, reg prometheus.Registerer, namespace string, log *slog.Logger, topics []string, apply func([]*kgo.Record)) (*Tail, error) {
	cl, err := NewClient(cfg, reg, namespace, log,
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) take offsets too: keeping
		// them lets the position reach the end offset after a transaction.
		kgo.KeepControlRecords(),
		// A partition the consumer learns of while a fetch is in flight
		// (the first record of a topic created moments ago) is read once
		// that fetch ends: a short wait keeps WaitCaughtUp from lagging
		// by the default 5s, for one idle fetch a second.
		kgo.FetchMaxWait(time.Second),
	)
	if err != nil {
		return nil, err
	}
	t := &Tail{cl: cl, adm: kadm.NewClient(cl), topics: topics, apply: apply, log: log,
		next: map[string]map[int32]int64{}, stopped: make(chan struct{})}
	t.advanced = sync.NewCond(&t.mu)
	return t, nil
}

// Client is the tail's Kafka client.
func (t *Tail) Client() *kgo.Client { return t.cl }

// Start follows in the background and returns once every record committed
// before the call is applied, or ctx ends.
func (t *Tail) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	go func() {
		t.run(runCtx)
		// Under the lock: a WaitCaughtUp between its check of stopped and
		// its Wait would otherwise miss both and wait forever.
		t.mu.Lock()
		close(t.stopped)
		t.advanced.Broadcast()
		t.mu.Unlock()
	}()
	return t.WaitCaughtUp(ctx)
}

func (t *Tail) run(ctx context.Context) {
	for {
		fetches := t.cl.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			t.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		var records []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				records = append(records, r)
			}
		})
		if len(records) > 0 {
			t.apply(records)
		}
		t.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				if t.next[p.Topic] == nil {
					t.next[p.Topic] = map[int32]int64{}
				}
				t.next[p.Topic][p.Partition] = p.Records[n-1].Offset + 1
			}
		})
		t.advanced.Broadcast()
		t.mu.Unlock()
	}
}

// WaitCaughtUp returns once every record committed to the topics before the
// call has been applied.
func (t *Tail) WaitCaughtUp(ctx context.Context) error { return t.wait(ctx, false) }

// WaitSettled is WaitCaughtUp that also waits for the transactions open at
// the call to end, and applies their records if they commit: what was
// written before the call, committed or not yet, has been dealt with.
func (t *Tail) WaitSettled(ctx context.Context) error { return t.wait(ctx, true) }

// wait waits until the position reaches the committed end offsets (the
// last stable offsets), or with open the high watermarks: a read_committed
// consumer passes an open transaction's records only once it has ended.
func (t *Tail) wait(ctx context.Context, open bool) error {
	ends, starts, err := t.offsets(ctx, open)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		t.advanced.Broadcast()
		t.mu.Unlock()
	})
	defer stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for !t.reached(ends, starts) {
		if ctx.Err() != nil {
			return fmt.Errorf("reading %v: behind the end: %w", t.topics, ctx.Err())
		}
		select {
		case <-t.stopped:
			return fmt.Errorf("reading %v: stopped", t.topics)
		default:
		}
		t.advanced.Wait()
	}
	return nil
}

// offsets lists the topics' committed (or, with open, high watermark) end
// offsets and start offsets. It
// retries until ctx ends: a topic just created has no leader for a moment,
// and franz-go reports that as a shard error, not always as a retriable one.
func (t *Tail) offsets(ctx context.Context, open bool) (ends, starts kadm.ListedOffsets, err error) {
	list := t.adm.ListCommittedOffsets
	if open {
		list = t.adm.ListEndOffsets
	}
	for attempt := 0; ; attempt++ {
		ends, err = list(ctx, t.topics...)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			starts, err = t.adm.ListStartOffsets(ctx, t.topics...)
		}
		if err == nil {
			err = starts.Error()
		}
		if err == nil {
			return ends, starts, nil
		}
		if errors.Is(err, kgo.ErrClientClosed) {
			return nil, nil, fmt.Errorf("list offsets of %v: %w", t.topics, err)
		}
		select {
		case <-t.stopped:
			return nil, nil, fmt.Errorf("reading %v: stopped", t.topics)
		default:
		}
		if offsetsRetry.Wait(ctx, attempt) != nil {
			return nil, nil, fmt.Errorf("list offsets of %v: %w", t.topics, err)
		}
	}
}

// offsetsRetry spaces the listings of offsets: constant, as the usual
// failure (a new topic without a leader yet) lasts well under a second.
// Stopping the tail closes the client, which ends the retries.
var offsetsRetry = retry.Backoff{Initial: 100 * time.Millisecond}

func (t *Tail) reached(ends, starts kadm.ListedOffsets) bool {
	caughtUp := true
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset <= 0 {
			return
		}
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && s.Offset >= o.Offset {
			return // everything was deleted: nothing to read
		}
		if t.next[o.Topic][o.Partition] < o.Offset {
			caughtUp = false
		}
	})
	return caughtUp
}

// Shutdown stops following and closes the client. Idempotent, safe without
// Start.
func (t *Tail) Shutdown(ctx context.Context) error {
	var err error
	t.once.Do(func() {
		if t.cancel != nil {
			t.cancel()
		}
		t.cl.Close()
		if t.cancel != nil {
			select {
			case <-t.stopped:
			case <-ctx.Done():
				err = fmt.Errorf("tail of %v did not stop: %w", t.topics, ctx.Err())
			}
		}
	})
	return err
}
