package policy

import (
	"bytes"
	"slices"
	"strings"
	"sync"
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

	// ctx holds the context, an object (empty when absent or null), at
	// node ctxRoot; props the properties at node propsRoot when hasProps.
	// They may be one tree, the whole envelope's.
	ctx, props, traits             jsonTree
	ctxRoot, propsRoot, traitsRoot int32
	hasProps, hasTraits            bool // properties or traits present and not null
	ctxIP, ctxUA, ip, ua           string
	// prefs is the node of context.consent.categoryPreferences, an
	// object, else -1: found while the tree is fresh in the cache, so that
	// judging, one event after the other, reads it only when it is there.
	prefs int32
	// device holds context.device's identifiers, in deviceIDKeys' order
	// ("" where absent or not a string).
	device [len(deviceIDKeys)]string
	// whole is the tree of the whole record, from ParseRaw; owned are the
	// trees decoded for p alone, which Release may reuse.
	whole jsonTree
	owned [3]*jsonTree
}

// Release lets the memory of p's decoded context and properties be
// reused by later calls of Parse and ParseRaw. p must not be used
// afterwards; strings taken from it (its envelope's fields, an output's)
// stay valid. Calling it is optional: without it the garbage collector
// frees the memory.
func (p *Parsed) Release() {
	for _, t := range p.owned {
		if t != nil {
			t.release()
		}
	}
	*p = Parsed{}
	parsedPool.Put(p)
}

// parsedPool holds released Parsed values for ParseRaw: one was the
// largest object the enricher allocated per event.
var parsedPool = sync.Pool{New: func() any { return new(Parsed) }}

// Parse decodes the context and properties of an envelope that
// event.DecodeEnvelope accepted. An error is an *event.FieldError: the
// event is poison.
func Parse(env event.Envelope) (*Parsed, error) {
	p := &Parsed{Env: env}
	if err := p.decodeContext(env.Event.Context); err != nil {
		return nil, err
	}
	var err error
	if p.hasProps, err = decodeObject("event.properties", env.Event.Properties, &p.props); err != nil {
		return nil, err
	}
	if p.hasProps {
		p.owned[1] = &p.props
	}
	if p.hasTraits, err = decodeObject("event.traits", env.Event.Traits, &p.traits); err != nil {
		return nil, err
	}
	if p.hasTraits {
		p.owned[2] = &p.traits
	}
	p.finish()
	return p, nil
}

// decodeObject decodes raw, a value of the event's field, into t, unless
// it is absent or null (has false).
func decodeObject(field string, raw []byte, t *jsonTree) (has bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return false, nil
	}
	tree, ok := decodeTree(raw)
	if !ok {
		// encoding/json decides: an error, or the first value of raw.
		var v any
		if err := decodeWithEncodingJSON(raw, &v); err != nil {
			return false, &event.FieldError{Field: field, Msg: err.Error()}
		}
		tree = treeOf(v)
	}
	*t = tree
	return true, nil
}

// finish derives what the rules and profiles read from the envelope and
// the decoded context.
func (p *Parsed) finish() {
	env := &p.Env
	p.At, p.ip, p.ua = EventTime(*env), env.Signals.IP, env.Signals.UserAgent
	p.ctxIP, p.ctxUA = p.ctx.str(p.ctx.member(p.ctxRoot, "ip")), p.ctx.str(p.ctx.member(p.ctxRoot, "userAgent"))
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
	p.prefs = p.ctx.member(p.ctx.member(p.ctxRoot, "consent"), "categoryPreferences")
	if p.prefs >= 0 && p.ctx.kind(p.prefs) != kindObject {
		p.prefs = -1
	}
	if device := p.ctx.member(p.ctxRoot, "device"); device >= 0 && p.ctx.kind(device) == kindObject {
		kids, at := p.ctx.children(device), 0
		for _, i := range deviceIDOrder {
			var v int32
			at, v = p.ctx.seek(kids, at, deviceIDKeys[i])
			if v >= 0 {
				p.device[i] = p.ctx.str(v)
			}
		}
	}
}

// deviceIDOrder is the order of deviceIDKeys' names, sorted.
var deviceIDOrder = func() (order [len(deviceIDKeys)]int) {
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order[:], func(a, b int) int { return strings.Compare(deviceIDKeys[a], deviceIDKeys[b]) })
	return order
}()

// emptyObject is the tree of {}, shared: trees are read-only.
var emptyObject = treeOf(map[string]any{})

// decodeContext decodes the event context, an object or null, into p.ctx.
func (p *Parsed) decodeContext(raw []byte) error {
	if len(raw) == 0 {
		p.ctx = emptyObject
		return nil
	}
	if t, ok := decodeTree(raw); ok {
		switch t.kind(0) {
		case kindObject:
			p.ctx = t
			p.owned[0] = &p.ctx
			return nil
		case kindNull:
			t.release()
			p.ctx = emptyObject
			return nil
		}
		t.release()
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
	prefs := p.prefs
	if prefs < 0 {
		return nil
	}
	var out map[string]bool
	for _, k := range p.ctx.children(prefs) {
		if p.ctx.isBool(k) {
			if out == nil {
				out = map[string]bool{}
			}
			out[p.ctx.key(k)] = p.ctx.kind(k) == kindTrue
		}
	}
	return out
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
