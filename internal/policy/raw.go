package policy

import (
	"encoding/json"
	"time"

	"github.com/consentflow/consentflow/internal/event"
)

// ParseRaw decodes a raw-topic record value (an event.Envelope) and its
// context and properties in one pass: decoding the envelope and then its
// free-form parts again was a third of the enricher's work. It takes only
// what it can decode exactly as event.DecodeEnvelope and Parse do, and what
// they accept: the fields by their exact names, each once, of their JSON
// types, strings in valid UTF-8 without escaped surrogates, receivedAt in
// UTC. ok is false for anything else; then decode with DecodeEnvelope and
// Parse, which give the same result or say what is wrong.
//
// The envelope's strings and raw parts (context, properties, traits,
// integrations) share raw's memory: raw must not change afterwards, and a
// string kept for long should be cloned, or it keeps all of raw alive.
func ParseRaw(raw []byte) (p *Parsed, ok bool) {
	t, ok := decodeTree(raw)
	if !ok {
		return nil, false
	}
	if t.dupNames || t.kind(0) != kindObject {
		t.release()
		return nil, false
	}
	in := parsedPool.Get().(*Parsed)
	in.ctx, in.whole = emptyObject, t
	in.owned[0] = &in.whole
	defer func() {
		if !ok {
			in.Release()
		}
	}()
	p = in
	env := &p.Env
	d := rawDecoder{t: &p.whole, raw: raw, ok: true}
	for _, k := range t.children(0) {
		switch t.key(k) {
		case "schemaVersion":
			// The one version there is; others are refused, by DecodeEnvelope.
			if d.ok = d.ok && t.kind(k) == kindNumber && t.val(k) == "1"; d.ok {
				env.SchemaVersion = 1
			}
		case "messageId":
			env.MessageID = d.str(k)
		case "receivedAt":
			env.ReceivedAt = d.time(k)
		case "sourceId":
			env.SourceID = d.str(k)
		case "region":
			env.Region = d.str(k)
		case "signals":
			d.signals(k, &env.Signals)
		case "event":
			d.event(k, p)
		default:
			return nil, false
		}
		if !d.ok {
			return nil, false
		}
	}
	if !d.ok || env.Validate() != nil {
		return nil, false
	}
	p.finish()
	return p, true
}

// rawDecoder reads an envelope's fields out of its tree; ok turns false at
// the first that DecodeEnvelope might read otherwise.
type rawDecoder struct {
	t   *jsonTree
	raw []byte
	ok  bool
}

func (d *rawDecoder) str(i int32) string {
	if d.t.kind(i) != kindString {
		d.ok = false // null leaves a field as it was, other types are errors
		return ""
	}
	return d.t.val(i)
}

func (d *rawDecoder) bool(i int32) bool {
	switch d.t.kind(i) {
	case kindTrue:
		return true
	case kindFalse:
		return false
	}
	d.ok = false
	return false
}

// time reads a time as encoding/json's v1 semantics do (time.Time's
// UnmarshalText and its checks of RFC 3339), in UTC only.
func (d *rawDecoder) time(i int32) time.Time {
	s := d.str(i)
	n := &d.t.nodes[i]
	var t time.Time
	if !d.ok || int(n.valOff+n.valLen) > len(d.raw) || // escaped
		len(s) < len("2006-01-02T15:04:05Z") || s[len(s)-1] != 'Z' || s[len("2006-01-02T")+1] == ':' ||
		s[len("2006-01-02T15:04:05")] == ',' || t.UnmarshalText(d.raw[n.valOff:n.valOff+n.valLen]) != nil {
		d.ok = false
		return time.Time{}
	}
	return t
}

// rawValue is node i as JSON, a slice of the input: an object or null.
func (d *rawDecoder) rawValue(i int32) json.RawMessage {
	n := &d.t.nodes[i]
	if k := n.kind; k != kindObject && k != kindNull {
		d.ok = false // refused by Event.Validate
		return nil
	}
	end := n.valOff + n.valLen
	return json.RawMessage(d.raw[n.valOff:end:end])
}

func (d *rawDecoder) signals(i int32, s *event.Signals) {
	if d.t.kind(i) != kindObject {
		d.ok = false
		return
	}
	for _, k := range d.t.children(i) {
		switch d.t.key(k) {
		case "dnt":
			s.DNT = d.bool(k)
		case "gpc":
			s.GPC = d.bool(k)
		case "ip":
			s.IP = d.str(k)
		case "userAgent":
			s.UserAgent = d.str(k)
		case "trustContextIp":
			s.TrustContextIP = d.bool(k)
		case "serverSource":
			s.ServerSource = d.bool(k)
		default:
			d.ok = false
		}
		if !d.ok {
			return
		}
	}
}

func (d *rawDecoder) event(i int32, p *Parsed) {
	if d.t.kind(i) != kindObject {
		d.ok = false
		return
	}
	e := &p.Env.Event
	for _, k := range d.t.children(i) {
		switch d.t.key(k) {
		case "type":
			e.Type = d.str(k)
		case "messageId":
			e.MessageID = d.str(k)
		case "userId":
			e.UserID = d.str(k)
		case "anonymousId":
			e.AnonymousID = d.str(k)
		case "event":
			e.Event = d.str(k)
		case "name":
			e.Name = d.str(k)
		case "groupId":
			e.GroupID = d.str(k)
		case "previousId":
			e.PreviousID = d.str(k)
		case "timestamp":
			e.Timestamp = d.str(k)
		case "originalTimestamp":
			e.OriginalTimestamp = d.str(k)
		case "sentAt":
			e.SentAt = d.str(k)
		case "context":
			if e.Context = d.rawValue(k); d.t.kind(k) == kindObject {
				p.ctx, p.ctxRoot = *d.t, k
			}
		case "properties":
			if e.Properties = d.rawValue(k); d.t.kind(k) == kindObject {
				p.props, p.propsRoot, p.hasProps = *d.t, k, true
			}
		case "traits":
			if e.Traits = d.rawValue(k); d.t.kind(k) == kindObject {
				p.traits, p.traitsRoot, p.hasTraits = *d.t, k, true
			}
		case "integrations":
			e.Integrations = d.rawValue(k)
		default:
			d.ok = false
		}
		if !d.ok {
			return
		}
	}
}
