package pipeline

import (
	"hash/maphash"
	"time"
)

// dedup remembers the events committed in the last window, by source and
// messageId, so that an SDK's retry of an event Kafka had already taken is
// dropped. It is best effort: the memory is this instance's, so a retry
// that arrives after a restart or on another instance passes (the raw
// topic's key keeps a device's events, retries included, on one partition).
//
// It holds no pointers (hashed keys, times as Unix nanoseconds): with up to
// dedup_max_entries strings in it, the garbage collector spent its time
// scanning them.
type dedup struct {
	window time.Duration
	max    int
	seen   map[dedupKey]int64
	order  []dedupEntry // oldest first, from head
	head   int
}

// dedupKey is a 128-bit hash of an event's source and messageId: two
// different events share one with a probability of about n²/2¹²⁹ for n
// remembered, nothing next to the retries it catches. The seeds are the
// process's own, so no one can aim at a collision.
type dedupKey [2]uint64

var dedupSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func dedupKeyOf(source, messageID string) dedupKey {
	var k dedupKey
	for i, seed := range dedupSeeds {
		var h maphash.Hash
		h.SetSeed(seed)
		h.WriteString(source)
		h.WriteByte(0) // messageIds are the client's: unique per source only
		h.WriteString(messageID)
		k[i] = h.Sum64()
	}
	return k
}

type dedupEntry struct {
	key dedupKey
	at  int64
}

// newDedup returns nil, which remembers nothing, for a zero window.
func newDedup(window time.Duration, max int) *dedup {
	if window <= 0 || max <= 0 {
		return nil
	}
	return &dedup{window: window, max: max, seen: map[dedupKey]int64{}}
}

func (d *dedup) contains(key dedupKey, now time.Time) bool {
	if d == nil {
		return false
	}
	at, ok := d.seen[key]
	return ok && now.UnixNano()-at < int64(d.window)
}

// add remembers keys as committed at now, forgetting what is older than the
// window or beyond max entries.
func (d *dedup) add(keys []dedupKey, now time.Time) {
	if d == nil {
		return
	}
	at := now.UnixNano()
	for _, k := range keys {
		d.seen[k] = at
		d.order = append(d.order, dedupEntry{k, at})
	}
	for d.head < len(d.order) && (len(d.order)-d.head > d.max || at-d.order[d.head].at >= int64(d.window)) {
		e := d.order[d.head]
		if d.seen[e.key] == e.at { // not re-added since
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
