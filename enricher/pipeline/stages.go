package pipeline

import (
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
)

// partSize is how many events of a batch go through the stages together.
// Small enough that the stages overlap from the first part on, large
// enough that handing parts over costs nothing next to processing them.
const partSize = 256

// decodeLead is how many parts per core may be decoded ahead of assembly.
const decodeLead = 2

// processBatch turns a batch into its output records, the de-duplication
// keys of the events it stores, and its counts. A batch goes through four
// stages part by part: decoding and routing (de-identifying) run on every
// core, judging and assembling one part after the other in offset order,
// because consent carried by one event is in force for the subject's next
// ones and output keeps the input's order. The stages overlap: while one
// part is judged the next are decoded and the previous routed, so no core
// waits on the serial stages.
//
// consentReady, if not nil, is waited for before the first judgement; its
// error ends the batch unjudged (err). emit, if not nil, gets each part's
// output records, in order, as soon as they are assembled.
func (p *Pipeline) processBatch(records []*kgo.Record, consentReady func() error, emit func([]*kgo.Record)) (out []*kgo.Record, keys []dedupKey, t *tally, err error) {
	items := make([]item, len(records))
	for i := range items {
		items[i].rec = records[i]
	}
	parts := (len(items) + partSize - 1) / partSize
	part := func(k int) []item { return items[k*partSize : min((k+1)*partSize, len(items))] }
	decoded, routed := make([]chan struct{}, parts), make([]chan struct{}, parts)
	decodeQ, routeQ := make(chan int, parts), make(chan int, parts)
	for k := range parts {
		decoded[k], routed[k] = make(chan struct{}), make(chan struct{})
		decodeQ <- k
	}
	close(decodeQ)
	// A part is decoded only while fewer than decodeLead parts per core
	// are between decoding and assembly (a token each), so the memory of
	// released parts is reused while still in the caches. Decoding as far
	// ahead as it could spread a batch's trees over tens of megabytes,
	// and writing them missed the caches.
	workersN := runtime.GOMAXPROCS(0)
	lead := make(chan struct{}, decodeLead*workersN)
	for range cap(lead) {
		lead <- struct{}{}
	}

	var workers sync.WaitGroup
	for range workersN {
		workers.Go(func() { p.work(part, decodeQ, routeQ, lead, decoded, routed) })
	}
	// unjudged is closed, with judgeErr set, if judging stopped early.
	unjudged := make(chan struct{})
	var judgeErr error
	go func() {
		defer close(routeQ) // the workers stop once it is drained
		if consentReady != nil {
			if judgeErr = consentReady(); judgeErr != nil {
				close(unjudged)
				return
			}
		}
		j := newJudging(len(items))
		for k := range parts {
			<-decoded[k]
			p.judgePart(part(k), j)
			routeQ <- k
		}
	}()

	t = newTally()
	t.in = len(items)
	overBudget := p.agents.OverBudget()
	out = make([]*kgo.Record, 0, len(items)+len(items)/2)
	for k := range parts {
		select {
		case <-routed[k]:
		case <-unjudged:
			workers.Wait()
			return nil, nil, nil, judgeErr
		}
		first := len(out)
		items := part(k)
		for i := range items {
			out, keys = p.assemble(&items[i], out, keys, t)
			if in := items[i].in; in != nil {
				// Its output records are copies: its memory can serve the
				// records decoded next.
				in.Release()
				items[i].in = nil
			}
		}
		lead <- struct{}{}
		if emit != nil {
			emit(out[first:])
		}
	}
	workers.Wait()
	t.uaOverBudget = int(p.agents.OverBudget() - overBudget)
	return out, keys, t, nil
}

// work decodes and routes parts until there are none left. Routing comes
// first: a routed part can be emitted, so producing starts early.
func (p *Pipeline) work(part func(int) []item, decodeQ, routeQ <-chan int, lead chan struct{}, decoded, routed []chan struct{}) {
	for {
		var k int
		var ok bool
		select {
		case k, ok = <-routeQ:
		default: // nothing to route yet: whichever comes first
			select {
			case k, ok = <-routeQ:
			case <-lead:
				d, more := <-decodeQ
				if !more {
					lead = nil // all taken: only routing is left
				} else {
					p.decodePart(part(d))
					close(decoded[d])
				}
				continue
			}
		}
		if !ok {
			return
		}
		p.routePart(part(k))
		close(routed[k])
	}
}

// decodePart decodes a part's records.
func (p *Pipeline) decodePart(items []item) {
	for i := range items {
		it := &items[i]
		if it.in, it.poison = parse(it.rec); it.poison == nil {
			ev := &it.in.Env.Event
			it.key = dedupKeyOf(it.in.Env.SourceID, it.in.Env.MessageID)
			// Hashed here, on any core, for judging one after the other.
			it.user, it.anon = p.store.Subject(consentstore.KindUser, ev.UserID), p.store.Subject(consentstore.KindAnonymous, ev.AnonymousID)
		}
	}
}

// judging is what judging a batch remembers from part to part.
type judging struct {
	now time.Time
	// stored holds the de-duplication keys of the batch's kept events.
	stored map[dedupKey]bool
	// owners holds the links of the batch's events (device -> userId):
	// the links tail reads them only once the batch has committed.
	owners map[string]string
}

func newJudging(n int) *judging {
	return &judging{now: time.Now(), stored: make(map[dedupKey]bool, n), owners: map[string]string{}}
}

// judgePart marks a part's duplicates and judges the rest.
func (p *Pipeline) judgePart(items []item, j *judging) {
	for i := range items {
		it := &items[i]
		if it.poison != nil {
			continue
		}
		if p.dedup != nil && (j.stored[it.key] || p.dedup.contains(it.key, j.now)) {
			it.dup = true // a client's retry of an event already stored
			continue
		}
		it.d = p.judge(it)
		if it.d.Drop == "" {
			j.stored[it.key] = true
		}
		if from, user, ok := it.in.Env.Event.Link(); ok {
			if it.linkOwner = j.owners[from]; it.linkOwner == "" {
				it.linkOwner = p.notifier.links.Owner(from)
			}
			if it.d.Drop == "" && it.linkStands && mayLink(it, user) {
				j.owners[from] = user
			}
		}
	}
}

// routePart de-identifies a part's kept events.
func (p *Pipeline) routePart(items []item) {
	var mem arena
	for i := range items {
		if it := &items[i]; it.poison == nil && !it.dup && it.d.Drop == "" {
			p.route(it, &mem)
		}
	}
}

// arena hands out the memory of a part's output records in a few large
// allocations rather than three per record. What it handed out lives until
// Kafka acknowledged the records, within the transaction.
type arena struct {
	recs []kgo.Record
	buf  []byte
}

const arenaChunk = 64 << 10

func (a *arena) record() *kgo.Record {
	if len(a.recs) == cap(a.recs) {
		a.recs = make([]kgo.Record, 0, 64)
	}
	a.recs = a.recs[:len(a.recs)+1]
	return &a.recs[len(a.recs)-1]
}

// room returns an empty slice to append to, with room for at least n
// bytes; take then keeps what was appended.
func (a *arena) room(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(n, arenaChunk))
	}
	return a.buf[len(a.buf):len(a.buf):cap(a.buf)]
}

// take keeps b, appended to what room returned, out of later rooms, and
// returns it with no room to grow into theirs.
func (a *arena) take(b []byte) []byte {
	if free := a.buf[len(a.buf):cap(a.buf)]; len(b) > 0 && cap(free) > 0 && unsafe.SliceData(b) == unsafe.SliceData(free) {
		a.buf = a.buf[:len(a.buf)+len(b)]
	} // else b outgrew the room and lives elsewhere
	return b[:len(b):len(b)]
}
