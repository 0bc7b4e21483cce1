package benchkit

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Followed is one followed event of a freshness measurement.
type Followed struct {
	Step    int       // the part of the load it belongs to
	Acked   time.Time // the collector's 200; zero until then
	Clean   time.Time // seen in the clean topic; zero if not (yet) or not watched
	Visible time.Time // queryable in ClickHouse; zero until then
	Failed  bool      // its request failed: it is not followed
}

// Tracker holds the followed events of a freshness measurement, by
// message id; the load, a clean-topic watcher and a ClickHouse poller all
// write to it.
type Tracker struct {
	mu      sync.Mutex
	samples map[string]*Followed
	waiting map[string]struct{} // added, not failed, not yet queryable
}

// NewTracker is an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{samples: map[string]*Followed{}, waiting: map[string]struct{}{}}
}

// Add follows ids, of step, before their request is sent, so one seen
// before its 200 arrives is still recorded.
func (t *Tracker) Add(step int, ids ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		t.samples[id] = &Followed{Step: step}
		t.waiting[id] = struct{}{}
	}
}

// Ack records the answer to the request of ids, at at: a 200 (ok), or
// not, and then they are no longer followed.
func (t *Tracker) Ack(at time.Time, ok bool, ids ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		s := t.samples[id]
		if s == nil {
			continue
		}
		if ok {
			s.Acked = at
			continue
		}
		s.Failed = true
		delete(t.waiting, id)
	}
}

// SawClean stamps id seen in the clean topic at at, the first time.
func (t *Tracker) SawClean(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.samples[id]; s != nil && s.Clean.IsZero() {
		s.Clean = at
	}
}

// SawVisible stamps ids queryable at at, the first time.
func (t *Tracker) SawVisible(ids []string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		if s := t.samples[id]; s != nil && s.Visible.IsZero() {
			s.Visible = at
		}
		delete(t.waiting, id)
	}
}

// Waiting are the followed ids not yet queryable.
func (t *Tracker) Waiting() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.waiting))
	for id := range t.waiting {
		ids = append(ids, id)
	}
	return ids
}

// WaitingAcked is how many acknowledged samples are not yet queryable.
func (t *Tracker) WaitingAcked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for id := range t.waiting {
		if !t.samples[id].Acked.IsZero() {
			n++
		}
	}
	return n
}

// Samples are a copy of every sample.
func (t *Tracker) Samples() []Followed {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Followed, 0, len(t.samples))
	for _, s := range t.samples {
		out = append(out, *s)
	}
	return out
}

// Ages are the freshness of step's accepted samples, sorted: 200 to
// queryable, or, for one not queryable yet, its age at now (a lower
// bound); missing counts those.
func (t *Tracker) Ages(step int, now time.Time) (ages []time.Duration, missing int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.samples {
		if s.Step != step || s.Failed || s.Acked.IsZero() {
			continue
		}
		if s.Visible.IsZero() {
			missing++
			ages = append(ages, now.Sub(s.Acked))
			continue
		}
		ages = append(ages, max(0, s.Visible.Sub(s.Acked)))
	}
	slices.Sort(ages)
	return ages, missing
}

// lookupChunk bounds the ids of one lookup query.
const lookupChunk = 2000

// Found are followed ids one lookup query found, and when it was sent.
type Found struct {
	IDs  []string
	Sent time.Time
}

// Lookup looks the waiting samples up in db.events (LookupIDs), in
// queries of at most 2,000 ids, and returns what each found.
func (t *Tracker) Lookup(ctx context.Context, conn driver.Conn, db string) ([]Found, error) {
	var out []Found
	ids := t.Waiting()
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), lookupChunk)]
		ids = ids[len(chunk):]
		sent := time.Now()
		found, err := LookupIDs(ctx, conn, db, chunk)
		if err != nil {
			return out, err
		}
		out = append(out, Found{IDs: found, Sent: sent})
	}
	return out, nil
}

// Every calls f every d until ctx ends, then returns nil, or until f
// fails, and returns its error: a poller's loop.
func Every(ctx context.Context, d time.Duration, f func() error) error {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := f(); err != nil {
			return err
		}
	}
}
