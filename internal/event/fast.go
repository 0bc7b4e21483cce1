package event

import (
	"encoding/json"
)

// One-pass decoding for the collector's hot path.
//
// The reference path (Shape.Check, then DecodeEventOfType on
// encoding/json's semantics) walks an event three times and copies every
// field; for a /v1/batch body add a pass that copies each event out of the
// batch. The decoders here walk the body once (internal/jsonscan), check the shape
// limits on the way, take string fields as substrings of one copy of the
// body and leave the free-form parts (context, properties, traits,
// integrations) as slices of it.
//
// They decide only the plain case: a syntactically valid body whose
// top-level names are spelled exactly as the Segment spec spells them (no
// escapes, no case variants, no duplicates), whose identifier fields are
// strings without escapes (or null), and that is valid UTF-8 within the
// shape limits. Anything else, every error included, is handed to the
// reference path, so results and error messages are the reference's by
// construction; FuzzFastDecodeEvent and FuzzFastDecodeBatch check that the
// plain case agrees with it too.

// Indexes of the fields the one-pass decoders know, as bits in a seen set.
const (
	fType = iota
	fMessageID
	fUserID
	fAnonymousID
	fEvent
	fName
	fGroupID
	fPreviousID
	fTimestamp
	fOriginalTimestamp
	fSentAt
	fContext
	fProperties
	fTraits
	fIntegrations
	fWriteKey // a single event's body: envelopeFields in the collector
	fBatch    // a batch body
	fieldCount
)

// fieldNames are the names of the fields, indexed by the constants above.
var fieldNames = [fieldCount]string{
	"type", "messageId", "userId", "anonymousId", "event", "name", "groupId", "previousId",
	"timestamp", "originalTimestamp", "sentAt", "context", "properties", "traits", "integrations",
	"writeKey", "batch",
}

// Field sets: what an event, a single-event body and a batch body hold.
const (
	eventFields  uint32 = 1<<fWriteKey - 1
	singleFields        = eventFields | 1<<fWriteKey
	batchFields  uint32 = 1<<fWriteKey | 1<<fSentAt | 1<<fContext | 1<<fBatch
)

const (
	fieldUnknown = -1 // a name no field has: its value is skipped
	fieldUnsure  = -2 // a name the reference decoder might match to a field
)

// field finds the field of set that name (unescaped) spells exactly. A name
// that matches one only without regard to case (encoding/json's rule), or
// holds non-ASCII bytes (which case folding can map onto ASCII), is
// fieldUnsure.
func field(name []byte, set uint32) int {
	if f := fieldIndex(name); f >= 0 && set&(1<<f) != 0 {
		return f
	}
	for _, c := range name {
		if c >= 0x80 {
			return fieldUnsure
		}
	}
	for f := range fieldCount {
		if set&(1<<f) != 0 && equalFoldASCII(name, fieldNames[f]) {
			return fieldUnsure
		}
	}
	return fieldUnknown
}

// fieldIndex is the field name spells exactly, or -1.
func fieldIndex(name []byte) int {
	switch string(name) {
	case "type":
		return fType
	case "messageId":
		return fMessageID
	case "userId":
		return fUserID
	case "anonymousId":
		return fAnonymousID
	case "event":
		return fEvent
	case "name":
		return fName
	case "groupId":
		return fGroupID
	case "previousId":
		return fPreviousID
	case "timestamp":
		return fTimestamp
	case "originalTimestamp":
		return fOriginalTimestamp
	case "sentAt":
		return fSentAt
	case "context":
		return fContext
	case "properties":
		return fProperties
	case "traits":
		return fTraits
	case "integrations":
		return fIntegrations
	case "writeKey":
		return fWriteKey
	case "batch":
		return fBatch
	}
	return -1
}

func equalFoldASCII(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// fields receives the members of an object the one-pass decoders read.
type fields struct {
	ev       *Event
	writeKey *string
	// batch, when not nil, receives the elements of a batch array.
	batch *Batch
	shape Shape
}

// fields scans the object at s.I, storing the members of set into f. str is
// s.B as a string, for substrings.
func (s *scanner) fields(str string, set uint32, f *fields) bool {
	if s.I >= len(s.B) || s.B[s.I] != '{' || !s.Enter() {
		return false
	}
	var seen uint32
	s.WS()
	if s.I < len(s.B) && s.B[s.I] == '}' {
		s.I++
		s.Depth--
		return true
	}
	for {
		if s.I >= len(s.B) || s.B[s.I] != '"' {
			return false
		}
		ks, ke, ok := s.Str()
		if !ok || s.Escaped {
			return false
		}
		s.Keys++
		k := field(s.B[ks:ke], set)
		switch {
		case k == fieldUnsure:
			return false
		case k >= 0 && seen&(1<<k) != 0:
			return false // the reference decoder keeps the last, mostly
		case k >= 0:
			seen |= 1 << k
		}
		s.WS()
		if s.I >= len(s.B) || s.B[s.I] != ':' {
			return false
		}
		s.I++
		s.WS()
		if !s.member(str, k, f) {
			return false
		}
		more, ok := s.After('}')
		if !ok || !more {
			return ok
		}
	}
}

// member scans the value of field k at s.I into f.
func (s *scanner) member(str string, k int, f *fields) bool {
	start := s.I
	switch k {
	case fieldUnknown:
		return s.Value()
	case fContext, fProperties, fTraits, fIntegrations:
		if !s.Value() {
			return false
		}
		raw := json.RawMessage(s.B[start:s.I:s.I])
		switch k {
		case fContext:
			f.ev.Context = raw
		case fProperties:
			f.ev.Properties = raw
		case fTraits:
			f.ev.Traits = raw
		case fIntegrations:
			f.ev.Integrations = raw
		}
		return true
	case fBatch:
		return s.batch(str, f)
	}
	// A string field: a string without escapes, or null, which leaves it
	// as it was.
	if s.I < len(s.B) && s.B[s.I] == 'n' {
		return s.Literal("null")
	}
	if s.I >= len(s.B) || s.B[s.I] != '"' {
		return false // a type error: the reference decoder words it
	}
	vs, ve, ok := s.Str()
	if !ok || s.Escaped {
		return false
	}
	v := str[vs:ve]
	e := f.ev
	switch k {
	case fType:
		e.Type = v
	case fMessageID:
		e.MessageID = v
	case fUserID:
		e.UserID = v
	case fAnonymousID:
		e.AnonymousID = v
	case fEvent:
		e.Event = v
	case fName:
		e.Name = v
	case fGroupID:
		e.GroupID = v
	case fPreviousID:
		e.PreviousID = v
	case fTimestamp:
		e.Timestamp = v
	case fOriginalTimestamp:
		e.OriginalTimestamp = v
	case fSentAt:
		e.SentAt = v
	case fWriteKey:
		*f.writeKey = v
	}
	return true
}

// maxBatchDecoded bounds the events a batch's pass decodes: each takes an
// Event's worth of memory (about 300 bytes) however small it is in the
// body, so a body of tiny events would otherwise take a hundred times its
// size. SDKs send far fewer per request; the rest are decoded one by one
// as the collector gets to them.
const maxBatchDecoded = 1000

// eventChunk is how many decoded events share one allocation at least,
// and maxSpareEvents at most, and the most a Batch keeps for reuse.
const (
	eventChunk     = 8
	maxSpareEvents = 128
)

// batch scans a batch's array (or null) at s.I. Each element that is an
// object is decoded as an event, within its own shape limits; any other
// element, or one the one-pass decoder leaves alone, is kept raw for the
// reference path.
func (s *scanner) batch(str string, f *fields) bool {
	if s.I < len(s.B) && s.B[s.I] == 'n' {
		return s.Literal("null")
	}
	if s.I >= len(s.B) || s.B[s.I] != '[' {
		return false
	}
	s.I++
	// SDKs send events of a few hundred bytes: room for that many saves
	// growing the slice, at most a few times over.
	b := f.batch
	events := b.spareEvents[:0]
	if cap(events) == 0 {
		events = make([]BatchEvent, 0, min(len(s.B)/512+1, maxBatchDecoded))
	}
	s.WS()
	if s.I < len(s.B) && s.B[s.I] == ']' {
		s.I++
		b.Events = events
		return true
	}
	outer := *s
	var ef fields
	decoded := b.spare[:0] // the current chunk
	defer func() {
		if cap(decoded) <= maxSpareEvents {
			b.spare = decoded[:0]
		}
	}()
	for n := 0; ; n++ {
		start := s.I
		be := BatchEvent{deferred: n >= maxBatchDecoded}
		// Each event is scanned with fresh counters, so its shape is its own.
		*s = newScanner(s.B, start)
		if !be.deferred {
			if len(decoded) == cap(decoded) {
				// A new chunk: events decoded so far keep the old one.
				want := max(2*cap(decoded), min(eventChunk, max(cap(events)-n, 1)))
				decoded = make([]Event, 0, min(want, maxSpareEvents))
			}
			decoded = append(decoded, Event{})
			ef.ev = &decoded[len(decoded)-1]
			if s.fields(str, eventFields, &ef) && s.MaxDepth <= f.shape.MaxDepth && s.Keys <= f.shape.MaxKeys {
				be.ev = ef.ev
			} else {
				decoded = decoded[:len(decoded)-1]
				*s = newScanner(s.B, start)
			}
		}
		if be.ev == nil && !s.Value() {
			return false
		}
		be.Raw = json.RawMessage(s.B[start:s.I:s.I])
		events = append(events, be)
		outer.I = s.I
		*s = outer
		s.WS()
		if s.I >= len(s.B) {
			return false
		}
		switch s.B[s.I] {
		case ',':
			s.I++
			s.WS()
		case ']':
			s.I++
			b.Events = events
			return true
		default:
			return false
		}
	}
}

// BatchEvent is one element of a batch: its bytes as sent and, when the
// one-pass decoder could read them, the event they hold.
type BatchEvent struct {
	// Raw is the element as it appears in the body.
	Raw json.RawMessage
	// ev is the event the batch's pass decoded, if it did.
	ev *Event
	// deferred says the batch's pass did not try (maxBatchDecoded).
	deferred bool
}

// RawEvent is an element to be decoded by the reference path alone.
func RawEvent(raw []byte) BatchEvent { return BatchEvent{Raw: raw} }

// Decode returns what s.Check(be.Raw) and then DecodeEventOfType(be.Raw,
// typ) return, without decoding again when the batch's pass already read
// the event (s must be the Shape that pass was given).
func (be *BatchEvent) Decode(s Shape, typ string) (Event, error) {
	switch {
	case be.ev != nil:
		return be.ev.ofType(typ)
	case be.deferred:
		return s.DecodeEvent(be.Raw, typ)
	}
	if err := s.Check(be.Raw); err != nil {
		return Event{}, err
	}
	return DecodeEventOfType(be.Raw, typ)
}

// Batch is a Segment /v1/batch body.
type Batch struct {
	WriteKey string
	SentAt   string
	Context  json.RawMessage
	// Events is nil when the body has no batch, or a null one.
	Events []BatchEvent
	// spareEvents and spare are memory for events and decoded events, kept
	// for the next DecodeBatch into the same Batch.
	spareEvents []BatchEvent
	spare       []Event
}

// maxSpareBatch bounds the events' memory a Batch keeps for reuse.
const maxSpareBatch = 1024

// DecodeBatch reads a /v1/batch body in one pass into b: the body-level
// fields and each event of the batch within s's limits. The results share
// the body's memory. b may hold an earlier batch, whose memory is reused:
// nothing may refer to that batch any more. It returns false, having
// decided nothing, for anything but the plain case (see above), errors
// included: the caller then decodes the body with the reference decoder.
func (s Shape) DecodeBatch(body []byte, b *Batch) bool {
	spareEvents := b.Events
	if cap(spareEvents) < cap(b.spareEvents) || cap(spareEvents) > maxSpareBatch {
		spareEvents = b.spareEvents
	}
	*b = Batch{spareEvents: spareEvents[:0], spare: b.spare}
	str := string(body)
	var ev Event // the body-level sentAt and context land here
	sc := newScanner(body, 0)
	sc.WS()
	if !sc.fields(str, batchFields, &fields{ev: &ev, writeKey: &b.WriteKey, batch: b, shape: s}) {
		return false
	}
	sc.WS()
	if sc.I != len(body) {
		return false
	}
	b.SentAt, b.Context = ev.SentAt, ev.Context
	return true
}

// DecodeSingle reads the body of a single-event request (/v1/track and
// its siblings) in one pass: the event within s's limits and the body's
// writeKey. It returns false, having decided nothing, for anything but
// the plain case, errors included.
func (s Shape) DecodeSingle(body []byte) (be BatchEvent, writeKey string, ok bool) {
	ev := new(Event)
	sc := newScanner(body, 0)
	sc.WS()
	if !sc.fields(string(body), singleFields, &fields{ev: ev, writeKey: &writeKey}) {
		return BatchEvent{}, "", false
	}
	sc.WS()
	if sc.I != len(body) || sc.MaxDepth > s.MaxDepth || sc.Keys > s.MaxKeys {
		return BatchEvent{}, "", false
	}
	return BatchEvent{Raw: body, ev: ev}, writeKey, true
}

// DecodeEvent returns what s.Check(raw) and then DecodeEventOfType(raw, typ)
// return, in one pass when it can. The event's raw parts share raw's
// memory.
func (s Shape) DecodeEvent(raw []byte, typ string) (Event, error) {
	if e, ok := s.decodeFast(raw); ok {
		return e.ofType(typ)
	}
	if err := s.Check(raw); err != nil {
		return Event{}, err
	}
	return DecodeEventOfType(raw, typ)
}

// decodeFast is the one-pass decoding of an event, before its type is
// checked: false when it leaves raw to the reference path.
func (s Shape) decodeFast(raw []byte) (Event, bool) {
	var e Event
	sc := newScanner(raw, 0)
	sc.WS()
	if !sc.fields(string(raw), eventFields, &fields{ev: &e}) {
		return Event{}, false
	}
	sc.WS()
	if sc.I != len(raw) || sc.MaxDepth > s.MaxDepth || sc.Keys > s.MaxKeys {
		return Event{}, false
	}
	return e, true
}
