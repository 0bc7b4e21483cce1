package erasure

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// request is what the receipts say of one erasure request.
type request struct {
	requestedAt time.Time
	// subjects is how many identifiers the request names (the collector's
	// receipt); each gets an enricher receipt and, per destination, a
	// sink receipt.
	subjects     int
	collector    bool
	enricher     int       // enricher receipts (status notified)
	enricherAt   time.Time // the latest
	destinations []string  // the enricher notified
	linked       int       // anonymousIds erased with the userId
	sinks        map[string]*destReceipts
	failed       []string // stage/destination: error, of failed receipts
}

// destReceipts are the sink receipts of one request in one destination.
type destReceipts struct {
	deleted   int
	at        time.Time // the latest deletion verified
	rows      int64
	mutations int // of the window that carried it out (the latest)
}

// done reports whether every destination the enricher notified has
// verified the deletion of every subject of the request.
func (r *request) done() bool {
	want := r.subjects
	if !r.collector {
		// No collector receipt (yet): a request the pipeline made itself,
		// whose subjects are those the enricher passed on.
		want = r.enricher
	}
	if want == 0 || r.enricher < want || len(r.destinations) == 0 {
		return false
	}
	for _, d := range r.destinations {
		if s := r.sinks[d]; s == nil || s.deleted < want {
			return false
		}
	}
	return true
}

// verifiedAt is when the last destination verified the deletion.
func (r *request) verifiedAt() time.Time {
	var t time.Time
	for _, d := range r.destinations {
		if s := r.sinks[d]; s != nil && s.at.After(t) {
			t = s.at
		}
	}
	return t
}

// window is one sink's deletion window, as its receipts tell it: every
// receipt of a window carries the same `at` and mutation count.
type window struct {
	dest string
	at   time.Time
}

// receiptLog is privacy.receipts of the run, read from its start.
type receiptLog struct {
	mu       sync.Mutex
	requests map[string]*request
	seen     map[string]bool // record keys: a receipt written again is counted once
	windows  map[window]int  // mutations by window
	records  int
	repeated int
	invalid  int
	firstBad error
}

func newReceiptLog() *receiptLog {
	return &receiptLog{requests: map[string]*request{}, seen: map[string]bool{}, windows: map[window]int{}}
}

// add takes one privacy.receipts record in.
func (l *receiptLog) add(key, value []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records++
	if value == nil {
		return // a tombstone: none expected
	}
	if l.seen[string(key)] {
		l.repeated++ // a stage did its part again (a retry, a redelivery): the first receipt counts
		return
	}
	rc, err := event.DecodeReceipt(value)
	if err != nil {
		l.invalid++
		if l.firstBad == nil {
			l.firstBad = fmt.Errorf("receipt %q: %w", key, err)
		}
		return
	}
	if rc.Kind != event.ReceiptErasure {
		return
	}
	if rc.Status != event.StatusFailed {
		l.seen[string(key)] = true // a failed stage may still succeed under the same key
	}
	r := l.requests[rc.RequestID]
	if r == nil {
		r = &request{sinks: map[string]*destReceipts{}}
		l.requests[rc.RequestID] = r
	}
	if r.requestedAt.IsZero() {
		r.requestedAt = rc.RequestedAt
	}
	if rc.Status == event.StatusFailed {
		r.failed = append(r.failed, fmt.Sprintf("%s/%s: %s", rc.Stage, rc.Destination, rc.Error))
		return
	}
	switch rc.Stage {
	case event.StageCollector:
		r.collector, r.subjects, r.requestedAt = true, rc.Subjects, rc.RequestedAt
	case event.StageEnricher:
		r.enricher++
		r.linked += rc.LinkedAnonymousIDs
		if rc.At.After(r.enricherAt) {
			r.enricherAt = rc.At
		}
		if r.destinations == nil {
			r.destinations = rc.Destinations
		}
	case event.StageSink:
		if rc.Status != event.StatusDeleted {
			return
		}
		s := r.sinks[rc.Destination]
		if s == nil {
			s = &destReceipts{}
			r.sinks[rc.Destination] = s
		}
		s.deleted++
		s.rows += rc.Rows
		if rc.At.After(s.at) {
			s.at, s.mutations = rc.At, rc.Mutations
		}
		l.windows[window{rc.Destination, rc.At}] = rc.Mutations
	}
}

// progress counts the requests of ids that are done, and those not done
// of which a stage failed.
func (l *receiptLog) progress(ids []string) (done, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		r := l.requests[id]
		switch {
		case r == nil:
		case r.done():
			done++
		case len(r.failed) > 0:
			failed++
		}
	}
	return done, failed
}

// followReceipts reads the receipts topic from its start into log until
// ctx ends. Receipts are written outside transactions; read_committed
// makes no difference to them but would to any written inside one.
func followReceipts(ctx context.Context, brokers []string, topic string, log *receiptLog) error {
	return benchkit.Follow(ctx, brokers, "erasurebench-receipts", topic, 100*time.Millisecond, func(r *kgo.Record, _ time.Time) {
		log.add(r.Key, r.Value)
	})
}

// doneCount is how many requests are done so far.
func (l *receiptLog) doneCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.requests {
		if r.done() {
			n++
		}
	}
	return n
}
