package policy

import (
	"bytes"
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/jsonscan"
)

// Parsed is an envelope with its free-form parts validated and located
// once, so the consent rules, every profile and the gate share one
// reading. Parsed is read-only once made; profiles build their outputs in
// new values.
type Parsed struct {
	Env event.Envelope
	// At is the time the event is judged at (EventTime).
	At time.Time

	// ctx is the context's JSON text, an object (empty when absent or
	// null); props and traits the properties' and traits' when hasProps
	// and hasTraits. Each is valid JSON without escaped surrogates, read
	// at offsets (text.go).
	ctx, props, traits  []byte
	hasProps, hasTraits bool // properties or traits present and not null
	// ctxAt are the values of the context keys the enricher reads
	// (ctxSlot), the last of a repeated name, and ctxSub, for those that
	// are objects of the allow-list, the values of the keys it keeps in
	// them, in its order. Found while the context is scanned, so that no
	// profile looks for them again.
	ctxAt                ctxSpans
	ctxSub               [slotIP][maxAllowedKeys]span
	ctxIP, ctxUA, ip, ua string
	// uaCut says ua was longer than event.MaxUserAgentBytes and is cut.
	uaCut bool
	// prefs is context.consent.categoryPreferences if it is an object.
	prefs span
	// device holds context.device's identifiers, in deviceIDKeys' order
	// ("" where absent or not a string).
	device [len(deviceIDKeys)]string
}

// The slots of Parsed.ctxAt: the context keys the enricher reads, the
// allow-list's (in its order) and ip and userAgent.
const (
	slotApp = iota
	slotCampaign
	slotConsent
	slotDevice
	slotLibrary
	slotLocale
	slotNetwork
	slotOS
	slotPage
	slotScreen
	slotTimezone
	slotIP
	slotUserAgent
	numCtxSlots
)

type ctxSpans [numCtxSlots]span

// noCtx is ctxSpans with every key absent.
var noCtx = func() (o ctxSpans) {
	for i := range o {
		o[i] = absent
	}
	return o
}()

// ctxSlot is the slot of a context key, or -1.
func ctxSlot(key string) int {
	switch key {
	case "app":
		return slotApp
	case "campaign":
		return slotCampaign
	case "consent":
		return slotConsent
	case "device":
		return slotDevice
	case "library":
		return slotLibrary
	case "locale":
		return slotLocale
	case "network":
		return slotNetwork
	case "os":
		return slotOS
	case "page":
		return slotPage
	case "screen":
		return slotScreen
	case "timezone":
		return slotTimezone
	case "ip":
		return slotIP
	case "userAgent":
		return slotUserAgent
	}
	return -1
}

// Release lets p be reused by later calls of ParseRaw. p must not be used
// afterwards; strings taken from it (its envelope's fields, an output's)
// stay valid. Calling it is optional: without it the garbage collector
// frees the memory.
func (p *Parsed) Release() {
	*p = Parsed{}
	parsedPool.Put(p)
}

// parsedPool holds released Parsed values for ParseRaw: one was the
// largest object the enricher allocated per event.
var parsedPool = sync.Pool{New: func() any { return new(Parsed) }}

// Parse reads the context and properties of an envelope that
// event.DecodeEnvelope accepted. An error is an *event.FieldError: the
// event is poison.
func Parse(env event.Envelope) (*Parsed, error) {
	parts := [...]struct {
		field string
		raw   []byte
	}{{"event.context", env.Event.Context}, {"event.properties", env.Event.Properties}, {"event.traits", env.Event.Traits}}
	for _, part := range parts {
		if len(part.raw) > math.MaxInt32 {
			// Offsets in them are int32; Kafka carries nothing this large.
			return nil, &event.FieldError{Field: part.field, Msg: "is larger than 2 GiB"}
		}
	}
	p := &Parsed{Env: env, ctxAt: noCtx}
	if err := p.parseContext(env.Event.Context); err != nil {
		return nil, err
	}
	var err error
	if p.props, p.hasProps, err = parseValue("event.properties", env.Event.Properties); err != nil {
		return nil, err
	}
	if p.traits, p.hasTraits, err = parseValue("event.traits", env.Event.Traits); err != nil {
		return nil, err
	}
	p.finish()
	return p, nil
}

// parseValue validates raw, a value of the event's field, unless it is
// absent or null (has false), and returns its text.
func parseValue(field string, raw []byte) (text []byte, has bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, false, nil
	}
	s := jsonscan.Scanner{B: raw, RefuseSurrogates: true}
	if s.Value() && s.I == len(raw) {
		return raw, true, nil
	}
	// encoding/json decides: an error, or the first value of raw, which
	// it writes again in the form the fast path takes.
	var v any
	if err := decodeWithEncodingJSON(raw, &v); err != nil {
		return nil, false, &event.FieldError{Field: field, Msg: err.Error()}
	}
	return reencode(v), true, nil
}

// reencode is v, decoded by encoding/json, as JSON: valid UTF-8, no
// escaped surrogates, no repeated names.
func reencode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("policy: re-encoding a decoded value: " + err.Error()) // encoding/json decoded it
	}
	return b
}

// parseContext reads the event context, an object or null, into p.
func (p *Parsed) parseContext(raw []byte) error {
	if len(raw) == 0 {
		return nil
	}
	s := jsonscan.Scanner{B: raw, RefuseSurrogates: true}
	s.WS()
	if s.I < len(raw) && raw[s.I] == 'n' {
		if s.Literal("null") {
			if s.WS(); s.I == len(raw) {
				return nil
			}
		}
	} else if end, ok := p.scanContext(raw[s.I:], 0); ok {
		s.I += end
		if s.WS(); s.I == len(raw) {
			return nil
		}
	}
	// encoding/json decides: an error, or the first value of raw.
	p.ctx, p.ctxAt = nil, noCtx
	ctx := map[string]any{}
	if err := decodeWithEncodingJSON(raw, &ctx); err != nil {
		return &event.FieldError{Field: "event.context", Msg: err.Error()}
	}
	if ctx == nil { // "context": null
		return nil
	}
	if _, ok := p.scanContext(reencode(ctx), validated); !ok {
		panic("policy: a re-encoded context does not scan") // reencode writes what it takes
	}
	return nil
}

// scanContext validates the object at the start of b, a context, and
// records it in p with the values of the keys the enricher reads. end is
// where it ends in b. limit bounds its nesting (0: the scanner's default).
func (p *Parsed) scanContext(b []byte, limit int) (end int, ok bool) {
	if len(b) == 0 || b[0] != '{' {
		return 0, false
	}
	s := jsonscan.Scanner{B: b, Limit: limit, RefuseSurrogates: true}
	at := noCtx
	more, ok := s.Open('}')
	for ok && more {
		var key []byte
		if key, ok = scanKey(&s); !ok {
			return 0, false
		}
		slot, start := ctxSlot(string(key)), s.I
		if slot >= 0 && slot < slotIP && contextAllowList[slot].keys != nil && start < len(b) && b[start] == '{' {
			ok = p.scanAllowed(&s, slot)
		} else {
			ok = s.Value()
		}
		if !ok {
			return 0, false
		}
		if slot >= 0 {
			at[slot] = span{at: int32(start), end: int32(s.I), esc: s.Escaped && b[start] == '"'}
		}
		more, ok = s.After('}')
	}
	if !ok {
		return 0, false
	}
	p.ctx, p.ctxAt = b[:s.I:s.I], at
	return s.I, true
}

// scanAllowed scans the object at s.I, the context's key of slot, into
// p.ctxSub.
func (p *Parsed) scanAllowed(s *jsonscan.Scanner, slot int) bool {
	keys, sub := contextAllowList[slot].keys, &p.ctxSub[slot]
	for i := range sub {
		sub[i] = absent
	}
	more, ok := s.Open('}')
	for ok && more {
		var key []byte
		if key, ok = scanKey(s); !ok {
			return false
		}
		start := s.I
		if !s.Value() {
			return false
		}
		for i, k := range keys {
			if string(key) == k {
				sub[i] = span{at: int32(start), end: int32(s.I), esc: s.Escaped && s.B[start] == '"'}
				break
			}
		}
		more, ok = s.After('}')
	}
	return ok
}

// scanKey scans a member's name, unescaped into new memory if it has
// escapes (rare: the collector writes none), and its colon.
func scanKey(s *jsonscan.Scanner) ([]byte, bool) {
	start, end, ok := s.Key()
	if !ok {
		return nil, false
	}
	if !s.Escaped {
		return s.B[start:end], true
	}
	return jsonscan.Unescape(nil, s.B[start:end])
}

// finish derives what the rules and profiles read from the envelope and
// the context.
func (p *Parsed) finish() {
	env := &p.Env
	p.At, p.ip, p.ua = EventTime(*env), env.Signals.IP, env.Signals.UserAgent
	p.ctxIP, p.ctxUA = strOf(p.ctx, p.ctxAt[slotIP]), strOf(p.ctx, p.ctxAt[slotUserAgent])
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
	// The collector cuts the User-Agent header, not context.userAgent
	// (up to an event's size): the parser's cost grows with the length.
	p.ua, p.uaCut = event.CapUserAgent(p.ua)
	p.prefs = absent
	for m := membersOf(p.ctx, p.ctxAt[slotConsent]); m.next(); {
		if m.key == "categoryPreferences" {
			p.prefs = m.v
		}
	}
	if p.prefs.at >= 0 && p.ctx[p.prefs.at] != '{' {
		p.prefs = absent
	}
	for m := membersOf(p.ctx, p.ctxAt[slotDevice]); m.next(); {
		for i, k := range deviceIDKeys {
			if m.key == k {
				p.device[i] = strOf(p.ctx, m.v)
				break
			}
		}
	}
}

// decodeWithEncodingJSON decodes the first JSON value of raw as
// encoding/json does with UseNumber, into v.
func decodeWithEncodingJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers pass through unchanged
	return dec.Decode(v)
}

// CarriedPreferences returns the event's
// context.consent.categoryPreferences (booleans only), or nil.
func (p *Parsed) CarriedPreferences() map[string]bool {
	var out map[string]bool
	for m := membersOf(p.ctx, p.prefs); m.next(); {
		switch {
		case isBool(p.ctx, m.v):
			if out == nil {
				out = map[string]bool{}
			}
			out[m.key] = p.ctx[m.v.at] == 't'
		case out != nil:
			delete(out, m.key) // the last of a repeated name counts
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// UserAgentCut reports whether the user agent the profiles generalize
// (context.userAgent, else the request's) was longer than
// event.MaxUserAgentBytes and is generalized from its first bytes.
func (p *Parsed) UserAgentCut() bool { return p.uaCut }

// UserAgentUnparsed reports whether the profiles leave the user agent
// unparsed for its shape (ParseableUserAgent).
func (p *Parsed) UserAgentUnparsed() bool { return p.ua != "" && !ParseableUserAgent(p.ua) }

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
