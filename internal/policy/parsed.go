package policy

import (
	"bytes"
	"encoding/json"
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

	ctx      map[string]any
	device   map[string]string
	props    any  // decoded properties; nil when absent
	hasProps bool // properties present and not null
	ip, ua   string
}

// Parse decodes the context and properties of an envelope that
// event.DecodeEnvelope accepted. An error is an *event.FieldError: the
// event is poison.
func Parse(env event.Envelope) (*Parsed, error) {
	ctx, device, err := splitContext(env.Event.Context)
	if err != nil {
		return nil, err
	}
	p := &Parsed{Env: env, At: EventTime(env), ctx: ctx, device: device, ip: env.Signals.IP, ua: env.Signals.UserAgent}
	if ctxIP, ok := ctx["ip"].(string); ok && ctxIP != "" && env.Signals.TrustContextIP {
		// A server-side source reports the end user's address in context.ip;
		// it wins over the address of the server that posted the event.
		p.ip = ctxIP
	}
	if ctxUA, ok := ctx["userAgent"].(string); ok && ctxUA != "" {
		// Browsers' SDKs copy navigator.userAgent here, and server-side
		// SDKs the end user's: either says more than the poster's header.
		p.ua = ctxUA
	}
	raw := bytes.TrimSpace(env.Event.Properties)
	if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // numbers pass through unchanged
		if err := dec.Decode(&p.props); err != nil {
			return nil, &event.FieldError{Field: "event.properties", Msg: err.Error()}
		}
		p.hasProps = true
	}
	return p, nil
}

// CarriedPreferences returns the event's
// context.consent.categoryPreferences (booleans only), or nil.
func (p *Parsed) CarriedPreferences() map[string]bool {
	consent, _ := p.ctx["consent"].(map[string]any)
	raw, _ := consent["categoryPreferences"].(map[string]any)
	var prefs map[string]bool
	for k, v := range raw {
		if b, ok := v.(bool); ok {
			if prefs == nil {
				prefs = map[string]bool{}
			}
			prefs[k] = b
		}
	}
	return prefs
}

// RawIdentifiers lists the identifying values the event carries.
func (p *Parsed) RawIdentifiers() []Identifier {
	ids := []Identifier{
		{"userId", p.Env.Event.UserID}, {"anonymousId", p.Env.Event.AnonymousID},
		{"signals.ip", p.Env.Signals.IP}, {"signals.userAgent", p.Env.Signals.UserAgent},
	}
	for _, k := range deviceIDKeys {
		ids = append(ids, Identifier{"context.device." + k, p.device[k]})
	}
	for _, k := range []string{"ip", "userAgent"} {
		if s, ok := p.ctx[k].(string); ok {
			ids = append(ids, Identifier{"context." + k, s})
		}
	}
	out := ids[:0]
	for _, id := range ids {
		if id.Value != "" {
			out = append(out, id)
		}
	}
	return out
}
