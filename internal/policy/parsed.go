package policy

import (
	"bytes"
	"time"

	"github.com/consentflow/consentflow/internal/event"
)

// Parsed is an envelope with its free-form parts decoded once, so the
// consent rules, every profile and the gate share one decoding: decoding
// the context was the largest cost of de-identification. Parsed is
// read-only once made; profiles build their outputs in new values.
type Parsed struct {
	Env event.Envelope
	// At is the time the event is judged at (EventTime).
	At time.Time

	ctx      jsonTree // the context, an object (empty when absent or null)
	props    jsonTree // the properties, when hasProps
	hasProps bool     // properties present and not null
	// device holds context.device's identifiers, by deviceIDKeys' order
	// ("" where absent or not a string).
	device       [len(deviceIDKeys)]string
	ctxIP, ctxUA string // context.ip and context.userAgent when strings
	ip, ua       string
}

// Parse decodes the context and properties of an envelope that
// event.DecodeEnvelope accepted. An error is an *event.FieldError: the
// event is poison.
func Parse(env event.Envelope) (*Parsed, error) {
	p := &Parsed{Env: env, At: EventTime(env), ip: env.Signals.IP, ua: env.Signals.UserAgent}
	if err := p.decodeContext(env.Event.Context); err != nil {
		return nil, err
	}
	p.ctxIP, p.ctxUA = p.ctx.str(p.ctx.member(0, "ip")), p.ctx.str(p.ctx.member(0, "userAgent"))
	if p.ctxIP != "" && env.Signals.TrustContextIP {
		// A server-side source reports the end user's address in context.ip;
		// it wins over the address of the server that posted the event.
		p.ip = p.ctxIP
	}
	if p.ctxUA != "" {
		// Browsers' SDKs copy navigator.userAgent here, and server-side
		// SDKs the end user's: either says more than the poster's header.
		p.ua = p.ctxUA
	}
	device := p.ctx.member(0, "device")
	for i, k := range deviceIDKeys {
		p.device[i] = p.ctx.str(p.ctx.member(device, k))
	}
	raw := bytes.TrimSpace(env.Event.Properties)
	if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		t, ok := decodeTree(raw)
		if !ok {
			// encoding/json decides: an error, or the first value of raw.
			var v any
			if err := decodeWithEncodingJSON(raw, &v); err != nil {
				return nil, &event.FieldError{Field: "event.properties", Msg: err.Error()}
			}
			t = treeOf(v)
		}
		p.props, p.hasProps = t, true
	}
	return p, nil
}

// emptyObject is the tree of {}, shared: trees are read-only.
var emptyObject = treeOf(map[string]any{})

// decodeContext decodes the event context, an object or null, into p.ctx.
func (p *Parsed) decodeContext(raw []byte) error {
	if len(raw) == 0 {
		p.ctx = emptyObject
		return nil
	}
	if t, ok := decodeTree(raw); ok {
		switch t.nodes[0].kind {
		case kindObject:
			p.ctx = t
			return nil
		case kindNull:
			p.ctx = emptyObject
			return nil
		}
	}
	// encoding/json decides: an error, or the first value of raw.
	ctx := map[string]any{}
	if err := decodeWithEncodingJSON(raw, &ctx); err != nil {
		return &event.FieldError{Field: "event.context", Msg: err.Error()}
	}
	if ctx == nil { // "context": null
		ctx = map[string]any{}
	}
	p.ctx = treeOf(ctx)
	return nil
}

// CarriedPreferences returns the event's
// context.consent.categoryPreferences (booleans only), or nil.
func (p *Parsed) CarriedPreferences() map[string]bool {
	prefs := p.categoryPreferences()
	if prefs < 0 {
		return nil
	}
	var out map[string]bool
	for _, k := range p.ctx.children(prefs) {
		n := &p.ctx.nodes[k]
		if n.kind == kindTrue || n.kind == kindFalse {
			if out == nil {
				out = map[string]bool{}
			}
			out[n.key] = n.kind == kindTrue
		}
	}
	return out
}

// categoryPreferences is the node of context.consent.categoryPreferences
// when it is an object, else -1.
func (p *Parsed) categoryPreferences() int32 {
	prefs := p.ctx.member(p.ctx.member(0, "consent"), "categoryPreferences")
	if prefs < 0 || p.ctx.nodes[prefs].kind != kindObject {
		return -1
	}
	return prefs
}

// deviceIDFields name the identifiers of deviceIDKeys in RawIdentifiers.
var deviceIDFields = [len(deviceIDKeys)]string{"context.device.id", "context.device.advertisingId",
	"context.device.imei", "context.device.androidId", "context.device.mac"}

// RawIdentifiers lists the identifying values the event carries.
func (p *Parsed) RawIdentifiers() []Identifier {
	ids := make([]Identifier, 0, 4+len(deviceIDKeys)+2)
	add := func(field, value string) {
		if value != "" {
			ids = append(ids, Identifier{field, value})
		}
	}
	add("userId", p.Env.Event.UserID)
	add("anonymousId", p.Env.Event.AnonymousID)
	add("signals.ip", p.Env.Signals.IP)
	add("signals.userAgent", p.Env.Signals.UserAgent)
	for i, field := range deviceIDFields {
		add(field, p.device[i])
	}
	add("context.ip", p.ctxIP)
	add("context.userAgent", p.ctxUA)
	return ids
}
