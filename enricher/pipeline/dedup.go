package pipeline

import "time"

// dedup remembers the events committed in the last window, by source and
// messageId, so that an SDK's retry of an event Kafka had already taken is
// dropped. It is best effort: the memory is this instance's, so a retry
// that arrives after a restart or on another instance passes (the raw
// topic's key keeps a device's events, retries included, on one partition).
type dedup struct {
	window time.Duration
	max    int
	seen   map[string]time.Time
	order  []dedupEntry // oldest first, from head
	head   int
}

type dedupEntry struct {
	key string
	at  time.Time
}

// newDedup returns nil, which remembers nothing, for a zero window.
func newDedup(window time.Duration, max int) *dedup {
	if window <= 0 || max <= 0 {
		return nil
	}
	return &dedup{window: window, max: max, seen: map[string]time.Time{}}
}

func (d *dedup) contains(key string, now time.Time) bool {
	if d == nil {
		return false
	}
	at, ok := d.seen[key]
	return ok && now.Sub(at) < d.window
}

// add remembers keys as committed at now, forgetting what is older than the
// window or beyond max entries.
func (d *dedup) add(keys []string, now time.Time) {
	if d == nil {
		return
	}
	for _, k := range keys {
		d.seen[k] = now
		d.order = append(d.order, dedupEntry{k, now})
	}
	for d.head < len(d.order) && (len(d.order)-d.head > d.max || now.Sub(d.order[d.head].at) >= d.window) {
		e := d.order[d.head]
		if d.seen[e.key].Equal(e.at) { // not re-added since
			delete(d.seen, e.key)
		}
		d.head++
	}
	if d.head > len(d.order)/2 { // reclaim the consumed front
		d.order = append(d.order[:0], d.order[d.head:]...)
		d.head = 0
	}
}

func (d *dedup) size() int {
	if d == nil {
		return 0
	}
	return len(d.seen)
}
