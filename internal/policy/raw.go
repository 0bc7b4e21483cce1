package policy

import (
	"encoding/json"
	"math"
	"time"
	"unsafe"

	"github.com/consentflow/consentflow/internal/jsonscan"
)

// ParseRaw reads a raw-topic record value (an event.Envelope) in one scan:
// the envelope's fields decoded, its context, properties, traits and
// integrations validated and located (decoding the envelope and then its
// free-form parts again was a third of the enricher's work). It takes only
// what it can decode exactly as event.DecodeEnvelope and Parse do, and
// what they accept: the fields by their exact names, each once, of their
// JSON types, strings in valid UTF-8 without escaped surrogates, nesting
// within the scanner's limit, receivedAt in UTC. ok is false for anything
// else; then decode with DecodeEnvelope and Parse, which give the same
// result or say what is wrong.
//
// The envelope's strings and raw parts share raw's memory: raw must not
// change afterwards, and a string kept for long should be cloned, or it
// keeps all of raw alive.
func ParseRaw(raw []byte) (p *Parsed, ok bool) {
	if len(raw) > math.MaxInt32 {
		return nil, false // spans' offsets are int32; Parse says it is too large
	}
	p = parsedPool.Get().(*Parsed)
	p.ctxAt = noCtx
	d := rawDecoder{s: jsonscan.Scanner{B: raw, RefuseSurrogates: true}, p: p}
	d.s.WS()
	ok = d.object(d.envelopeField)
	if d.s.WS(); !ok || d.s.I != len(raw) || p.Env.Validate() != nil {
		p.Release()
		return nil, false
	}
	p.finish()
	return p, true
}

// rawDecoder reads an envelope's fields as it scans them.
type rawDecoder struct {
	s jsonscan.Scanner
	p *Parsed
	// seen are the fields of the object being read so far, by bit: a
	// repeated one is left to DecodeEnvelope, which merges them.
	seen uint32
}

// object scans the object at d.s.I, giving each member to field (its
// name, unescaped, and a bit of its own), which scans the value.
func (d *rawDecoder) object(field func(name string) (bit uint32, ok bool)) bool {
	if d.s.I >= len(d.s.B) || d.s.B[d.s.I] != '{' {
		return false // null or another type: DecodeEnvelope's to judge
	}
	outer := d.seen
	d.seen = 0
	defer func() { d.seen = outer }()
	more, ok := d.s.Open('}')
	for ok && more {
		var name []byte
		if name, ok = scanKey(&d.s); !ok {
			return false
		}
		var bit uint32
		if bit, ok = field(unsafe.String(unsafe.SliceData(name), len(name))); !ok || d.seen&bit != 0 {
			return false
		}
		d.seen |= bit
		more, ok = d.s.After('}')
	}
	return ok
}

func (d *rawDecoder) envelopeField(name string) (uint32, bool) {
	env := &d.p.Env
	switch name {
	case "schemaVersion":
		// The one version there is; others are refused, by DecodeEnvelope.
		start := d.s.I
		if !d.s.Number() || string(d.s.B[start:d.s.I]) != "1" {
			return 0, false
		}
		env.SchemaVersion = 1
		return 1 << 0, true
	case "messageId":
		return 1 << 1, d.str(&env.MessageID)
	case "receivedAt":
		return 1 << 2, d.time(&env.ReceivedAt)
	case "sourceId":
		return 1 << 3, d.str(&env.SourceID)
	case "region":
		return 1 << 4, d.str(&env.Region)
	case "signals":
		return 1 << 5, d.object(d.signalsField)
	case "event":
		return 1 << 6, d.object(d.eventField)
	}
	return 0, false
}

func (d *rawDecoder) signalsField(name string) (uint32, bool) {
	s := &d.p.Env.Signals
	switch name {
	case "dnt":
		return 1 << 0, d.bool(&s.DNT)
	case "gpc":
		return 1 << 1, d.bool(&s.GPC)
	case "ip":
		return 1 << 2, d.str(&s.IP)
	case "userAgent":
		return 1 << 3, d.str(&s.UserAgent)
	case "trustContextIp":
		return 1 << 4, d.bool(&s.TrustContextIP)
	case "serverSource":
		return 1 << 5, d.bool(&s.ServerSource)
	}
	return 0, false
}

func (d *rawDecoder) eventField(name string) (uint32, bool) {
	e := &d.p.Env.Event
	switch name {
	case "type":
		return 1 << 0, d.str(&e.Type)
	case "messageId":
		return 1 << 1, d.str(&e.MessageID)
	case "userId":
		return 1 << 2, d.str(&e.UserID)
	case "anonymousId":
		return 1 << 3, d.str(&e.AnonymousID)
	case "event":
		return 1 << 4, d.str(&e.Event)
	case "name":
		return 1 << 5, d.str(&e.Name)
	case "groupId":
		return 1 << 6, d.str(&e.GroupID)
	case "previousId":
		return 1 << 7, d.str(&e.PreviousID)
	case "timestamp":
		return 1 << 8, d.str(&e.Timestamp)
	case "originalTimestamp":
		return 1 << 9, d.str(&e.OriginalTimestamp)
	case "sentAt":
		return 1 << 10, d.str(&e.SentAt)
	case "context":
		start := d.s.I
		if d.s.I < len(d.s.B) && d.s.B[d.s.I] == '{' {
			end, ok := d.p.scanContext(d.s.B[start:], jsonscan.DefaultLimit-d.s.Depth)
			d.s.I += end
			e.Context = d.s.B[start:d.s.I:d.s.I]
			return 1 << 11, ok
		}
		return 1 << 11, d.rawValue(&e.Context)
	case "properties":
		ok := d.rawValue(&e.Properties)
		d.p.props, d.p.hasProps = e.Properties, ok && e.Properties[0] == '{'
		return 1 << 12, ok
	case "traits":
		ok := d.rawValue(&e.Traits)
		d.p.traits, d.p.hasTraits = e.Traits, ok && e.Traits[0] == '{'
		return 1 << 13, ok
	case "integrations":
		return 1 << 14, d.rawValue(&e.Integrations)
	}
	return 0, false
}

// str reads a string: null leaves a field as it was, other types are
// errors, both DecodeEnvelope's.
func (d *rawDecoder) str(dst *string) bool {
	if d.s.I >= len(d.s.B) || d.s.B[d.s.I] != '"' {
		return false
	}
	start, end, ok := d.s.Str()
	if !ok {
		return false
	}
	*dst = stringOf(d.s.B[start:end], d.s.Escaped)
	return true
}

func (d *rawDecoder) bool(dst *bool) bool {
	switch {
	case d.s.Literal("true"):
		*dst = true
	case d.s.Literal("false"):
		*dst = false
	default:
		return false
	}
	return true
}

// time reads a time as encoding/json's v1 semantics do (time.Time's
// UnmarshalText and its checks of RFC 3339), in UTC only.
func (d *rawDecoder) time(dst *time.Time) bool {
	if d.s.I >= len(d.s.B) || d.s.B[d.s.I] != '"' {
		return false
	}
	start, end, ok := d.s.Str()
	s := d.s.B[start:end]
	return ok && !d.s.Escaped &&
		len(s) >= len("2006-01-02T15:04:05Z") && s[len(s)-1] == 'Z' && s[len("2006-01-02T")+1] != ':' &&
		s[len("2006-01-02T15:04:05")] != ',' && dst.UnmarshalText(s) == nil
}

// rawValue takes the value at d.s.I as it is: an object or null, else
// refused by Event.Validate.
func (d *rawDecoder) rawValue(dst *json.RawMessage) bool {
	start := d.s.I
	if start >= len(d.s.B) || d.s.B[start] != '{' && d.s.B[start] != 'n' || !d.s.Value() {
		return false
	}
	*dst = d.s.B[start:d.s.I:d.s.I]
	return true
}
