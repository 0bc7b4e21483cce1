package policy

// The tree-based implementation of ParseRaw, Parse, de-identification and
// Export as it was before the single-pass reading (text.go), kept as the
// reference FuzzSinglePass compares the current one with.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/consentflow/consentflow/internal/catalogue"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/pii"
)

// refParseRaw decodes a raw-topic record value (an event.Envelope) and its
// context and properties in one pass: decoding the envelope and then its
// free-form parts again was a third of the enricher's work. It takes only
// what it can decode exactly as event.DecodeEnvelope and refParse do, and what
// they accept: the fields by their exact names, each once, of their JSON
// types, strings in valid UTF-8 without escaped surrogates, receivedAt in
// UTC. ok is false for anything else; then decode with DecodeEnvelope and
// refParse, which give the same result or say what is wrong.
//
// The envelope's strings and raw parts (context, properties, traits,
// integrations) share raw's memory: raw must not change afterwards, and a
// string kept for long should be cloned, or it keeps all of raw alive.
func refParseRaw(raw []byte) (p *refParsed, ok bool) {
	t, ok := decodeTree(raw)
	if !ok {
		return nil, false
	}
	if t.dupNames || t.kind(0) != kindObject {
		t.release()
		return nil, false
	}
	in := refParsedPool.Get().(*refParsed)
	in.ctx, in.whole = refEmptyObject, t
	in.owned[0] = &in.whole
	defer func() {
		if !ok {
			in.Release()
		}
	}()
	p = in
	env := &p.Env
	d := refRawDecoder{t: &p.whole, raw: raw, ok: true}
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

// refRawDecoder reads an envelope's fields out of its tree; ok turns false at
// the first that DecodeEnvelope might read otherwise.
type refRawDecoder struct {
	t   *jsonTree
	raw []byte
	ok  bool
}

func (d *refRawDecoder) str(i int32) string {
	if d.t.kind(i) != kindString {
		d.ok = false // null leaves a field as it was, other types are errors
		return ""
	}
	return d.t.val(i)
}

func (d *refRawDecoder) bool(i int32) bool {
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
func (d *refRawDecoder) time(i int32) time.Time {
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
func (d *refRawDecoder) rawValue(i int32) json.RawMessage {
	n := &d.t.nodes[i]
	if k := n.kind; k != kindObject && k != kindNull {
		d.ok = false // refused by Event.Validate
		return nil
	}
	end := n.valOff + n.valLen
	return json.RawMessage(d.raw[n.valOff:end:end])
}

func (d *refRawDecoder) signals(i int32, s *event.Signals) {
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

func (d *refRawDecoder) event(i int32, p *refParsed) {
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

// refParsed is an envelope with its free-form parts decoded once, so the
// consent rules, every profile and the gate share one decoding: decoding
// the context was the largest cost of de-identification. refParsed is
// read-only once made; profiles build their outputs in new values.
type refParsed struct {
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
	// whole is the tree of the whole record, from refParseRaw; owned are the
	// trees decoded for p alone, which Release may reuse.
	whole jsonTree
	owned [3]*jsonTree
}

// Release lets the memory of p's decoded context and properties be
// reused by later calls of refParse and refParseRaw. p must not be used
// afterwards; strings taken from it (its envelope's fields, an output's)
// stay valid. Calling it is optional: without it the garbage collector
// frees the memory.
func (p *refParsed) Release() {
	for _, t := range p.owned {
		if t != nil {
			t.release()
		}
	}
	*p = refParsed{}
	refParsedPool.Put(p)
}

// refParsedPool holds released refParsed values for refParseRaw: one was the
// largest object the enricher allocated per event.
var refParsedPool = sync.Pool{New: func() any { return new(refParsed) }}

// refParse decodes the context and properties of an envelope that
// event.DecodeEnvelope accepted. An error is an *event.FieldError: the
// event is poison.
func refParse(env event.Envelope) (*refParsed, error) {
	p := &refParsed{Env: env}
	if err := p.decodeContext(env.Event.Context); err != nil {
		return nil, err
	}
	var err error
	if p.hasProps, err = refDecodeObject("event.properties", env.Event.Properties, &p.props); err != nil {
		return nil, err
	}
	if p.hasProps {
		p.owned[1] = &p.props
	}
	if p.hasTraits, err = refDecodeObject("event.traits", env.Event.Traits, &p.traits); err != nil {
		return nil, err
	}
	if p.hasTraits {
		p.owned[2] = &p.traits
	}
	p.finish()
	return p, nil
}

// refDecodeObject decodes raw, a value of the event's field, into t, unless
// it is absent or null (has false).
func refDecodeObject(field string, raw []byte, t *jsonTree) (has bool, err error) {
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
func (p *refParsed) finish() {
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
		for _, i := range refDeviceIDOrder {
			var v int32
			at, v = p.ctx.seek(kids, at, deviceIDKeys[i])
			if v >= 0 {
				p.device[i] = p.ctx.str(v)
			}
		}
	}
}

// refDeviceIDOrder is the order of deviceIDKeys' names, sorted.
var refDeviceIDOrder = func() (order [len(deviceIDKeys)]int) {
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order[:], func(a, b int) int { return strings.Compare(deviceIDKeys[a], deviceIDKeys[b]) })
	return order
}()

// refEmptyObject is the tree of {}, shared: trees are read-only.
var refEmptyObject = treeOf(map[string]any{})

// decodeContext decodes the event context, an object or null, into p.ctx.
func (p *refParsed) decodeContext(raw []byte) error {
	if len(raw) == 0 {
		p.ctx = refEmptyObject
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
			p.ctx = refEmptyObject
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
func (p *refParsed) CarriedPreferences() map[string]bool {
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

// RawIdentifiers lists the identifying values the event carries.
func (p *refParsed) RawIdentifiers() []Identifier {
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

// deidentify is Deidentify writing the context and properties into
// scratch, when it is large enough; buf is the memory they are in.
func (p *Profile) refDeidentifyPass(in *refParsed, d Decision, scratch []byte, r *passReport) (c event.Clean, buf []byte, err error) {
	env, ev := &in.Env, &in.Env.Event
	ts := in.At // the timestamp (validated by event.DecodeEnvelope), else receivedAt
	ip, ua := in.ip, in.ua
	coarse := p.settings.Detail == "coarse"
	allowList, decls := contextAllowList, p.fullDecls
	if coarse {
		allowList, decls = coarseContextAllowList, p.coarseDecls
	}
	if p.declared.Catalogue == nil {
		r.violations = nil // nothing declared: nothing to depart from
	}
	decl, undeclared := p.refDeclaredEvent(in)
	if undeclared != "" && r.violations != nil {
		*r.violations = append(*r.violations, Violation{Path: "event", Reason: undeclared})
	}
	key := p.keys.At(env.ReceivedAt)
	c = event.Clean{
		SchemaVersion: event.SchemaVersion,
		MessageID:     env.MessageID,
		Type:          ev.Type,
		Event:         p.refEventName(in, decl, r),
		Timestamp:     ts.UTC(),
		ReceivedAt:    env.ReceivedAt.UTC(),
		SourceID:      env.SourceID,
		Region:        env.Region,
		Purposes:      d.Purposes.Names(),
		Country:       Country(ip),
		DNT:           env.Signals.DNT,
		GPC:           env.Signals.GPC,
		Properties:    in.Env.Event.Properties, // absent or null, unless replaced below
	}
	// The context and properties share one buffer, of about their size (a
	// coarse context keeps little).
	size := len(ev.Context) + len(ev.Properties) + 32
	if coarse {
		size -= len(ev.Context) * 2 / 3
	}
	b := scratch
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	b = p.refAppendContext(b, &in.ctx, in.ctxRoot, allowList, decls, r)
	n := len(b)
	if n > 0 {
		c.Context = b[:n:n]
	}
	var props, traits *catalogue.Node
	if decl != nil {
		props, traits = decl.Properties, decl.Traits
	}
	if in.hasProps {
		b = p.refAppendDeclared(b, &in.props, in.propsRoot, "properties", props, decl != nil, key, r)
		c.Properties = b[n:len(b):len(b)]
	}
	if in.hasTraits && r.violations != nil {
		// Traits are stored nowhere; walked for what departs from the
		// catalogue only, into memory given back at once.
		p.refAppendDeclared(b[len(b):], &in.traits, in.traitsRoot, "traits", traits, decl != nil, key, r)
	}
	// The subject is the userId, else the anonymousId, under the same kind:
	// its pseudonym is theirs.
	if ev.UserID != "" {
		c.Subject = key.Pseudonym(KindUser, ev.UserID)
	} else {
		c.Subject = key.Pseudonym(KindAnonymous, ev.AnonymousID)
	}
	switch {
	case coarse:
		c.Timestamp, c.ReceivedAt = c.Timestamp.Truncate(time.Hour), c.ReceivedAt.Truncate(time.Hour)
		c.MessageID = key.Pseudonym(KindMessage, env.MessageID)
	case ev.UserID != "":
		c.UserID, c.AnonymousID = c.Subject, key.Pseudonym(KindAnonymous, ev.AnonymousID)
	default:
		c.AnonymousID = c.Subject
	}
	if p.settings.DeviceIDs {
		c.DeviceID = key.Pseudonym(KindDevice, in.device[0])
		c.AdvertisingID = key.Pseudonym(KindAdvertising, in.device[1])
		c.IMEI = key.Pseudonym(KindIMEI, in.device[2])
		c.AndroidID = key.Pseudonym(KindAndroidID, in.device[3])
		c.MAC = key.Pseudonym(KindMAC, in.device[4])
	}
	if p.settings.IP == "truncate" {
		c.IP = TruncateIP(ip)
	}
	if p.settings.UserAgent == "parse" && p.agents != nil {
		a := p.agents.Parse(ua)
		c.Browser, c.OS, c.DeviceClass = a.Browser, a.OS, a.DeviceClass
		if p.declared.Export {
			c.Browser, c.OS = exportFamily(exportBrowsers, a.Browser), exportFamily(exportSystems, a.OS)
		}
		if !coarse {
			c.BrowserVersion, c.OSVersion = a.BrowserVersion, a.OSVersion
		}
	}
	return c, b, nil
}

// eventName is the name the output carries: in region the name as sent,
// scrubbed; abroad the declared name, else UndeclaredName.
func (p *Profile) refEventName(in *refParsed, decl *catalogue.Event, r *passReport) string {
	name := in.Env.Event.Event
	if name == "" {
		name = in.Env.Event.Name
	}
	switch {
	case name == "":
		return ""
	case !p.declared.Export:
		return p.scrub(name)
	case decl.Named():
		r.check(p.scrubber, "event", name)
		return name
	}
	return UndeclaredName
}

// appendContext appends, as JSON with keys sorted, what allowList keeps of
// the context (scalars only, page URLs cut to scheme, host and path) less
// the profile's drop_fields under context and what the catalogue's context
// declares personal or sensitive (abroad: all but what it declares
// public), or returns b unchanged when that leaves nothing. Strings kept
// in region are scrubbed. An object whose kept keys drop_fields all
// removes stays, empty.
func (p *Profile) refAppendContext(b []byte, ctx *jsonTree, root int32, allowList []allowed, decls []contextDecl, r *passReport) []byte {
	orig, written := b, 0
	b = append(b, '{')
	// The allow-list and the context's keys are both sorted: one walk
	// through each finds the allowed keys.
	top, at := ctx.children(root), 0
	for ai, a := range allowList {
		var v int32
		at, v = ctx.seek(top, at, a.key)
		if a.key == "consent" {
			b, written = p.refAppendConsent(b, written, ctx, v)
			continue
		}
		decl := decls[ai]
		switch {
		case v < 0:
			continue
		case a.keys == nil:
			if !ctx.isScalar(v) || p.dropsContext(a.key) || !p.refKeepsContext(ctx, v, decl.node) {
				continue
			}
			b = appendKey(b, written, a.key)
			b = p.refAppendContextScalar(b, ctx, v, r)
			written++
			continue
		case ctx.kind(v) != kindObject:
			continue
		}
		var kept [maxAllowedKeys]refKeptScalar
		n := 0
		sub, subAt := ctx.children(v), 0
		for ki, k := range a.keys {
			var sv int32
			subAt, sv = ctx.seek(sub, subAt, k)
			if sv < 0 || !ctx.isScalar(sv) || !p.refKeepsContext(ctx, sv, decl.keys[ki]) {
				continue
			}
			ks := refKeptScalar{key: k, node: sv}
			if ctx.kind(sv) == kindString && a.key == "page" {
				// Query strings and fragments carry e-mail addresses,
				// tokens and search terms.
				switch k {
				case "url", "referrer":
					raw := ctx.val(sv)
					if !p.declared.Export {
						// Before url.URL escapes what it rewrites: a
						// phone number written with spaces would reach
						// the scrubber as +44%207000%20000000.
						raw = p.scrub(raw)
					}
					ks.text = stripURL(raw)
				case "path":
					ks.text, _, _ = strings.Cut(ctx.val(sv), "#")
					ks.text, _, _ = strings.Cut(ks.text, "?")
				default:
					ks.text = ctx.val(sv)
				}
				if ks.text == "" {
					continue
				}
				ks.rewritten = true
			}
			kept[n] = ks
			n++
		}
		if n == 0 || p.dropsContext(a.key) {
			continue
		}
		b = appendKey(b, written, a.key)
		written++
		b = append(b, '{')
		inner := 0
		for _, ks := range kept[:n] {
			if p.dropsContext(a.key, ks.key) {
				continue
			}
			b = appendKey(b, inner, ks.key)
			inner++
			switch {
			case ks.rewritten && p.declared.Export:
				r.check(p.scrubber, "context", ks.text)
				b = event.AppendString(b, ks.text)
			case ks.rewritten:
				b = event.AppendString(b, p.scrub(ks.text))
			default:
				b = p.refAppendContextScalar(b, ctx, ks.node, r)
			}
		}
		b = append(b, '}')
	}
	if written == 0 {
		return orig
	}
	return append(b, '}')
}

// appendContextScalar appends a kept context value: scrubbed in region;
// abroad, where only values the catalogue declares public are kept, as
// sent and checked (passReport.check). SDKs fill most of the context,
// but a client can write anything anywhere.
func (p *Profile) refAppendContextScalar(b []byte, ctx *jsonTree, v int32, r *passReport) []byte {
	if !p.declared.Export {
		return p.refAppendScrubbedScalar(b, ctx, v)
	}
	r.checkScalar(p.scrubber, "context", ctx.kind(v), ctx.val(v))
	return refAppendScalar(b, ctx, v)
}

// keepsContext says whether a context value allow-listed for the profile
// is kept by its declaration decl (nil: undeclared): abroad only declared
// public values of the declared type are, in region all but personal and
// sensitive ones and those of another type.
func (p *Profile) refKeepsContext(ctx *jsonTree, v int32, decl *catalogue.Node) bool {
	if decl == nil || decl.Field == nil {
		return !p.declared.Export
	}
	f := decl.Field
	if !refTypeMatches(f.Type, ctx, v) {
		return false
	}
	if p.declared.Export {
		return f.Class == catalogue.Public && (ctx.kind(v) != kindString || f.Allows(ctx.val(v)))
	}
	return f.Class == catalogue.Public || f.Class == catalogue.Internal
}

// refKeptScalar is a kept value of an allow-listed context object.
type refKeptScalar struct {
	key       string
	node      int32
	text      string // the value, if rewritten
	rewritten bool
}

// appendConsent appends Segment's consent categories (category name to
// granted or not, booleans named in 64 bytes or less) as the context's
// consent.categoryPreferences, if there are any: the enricher and analysts
// read them, and they say nothing about who the subject is.
func (p *Profile) refAppendConsent(b []byte, written int, ctx *jsonTree, consent int32) ([]byte, int) {
	prefs := ctx.member(consent, "categoryPreferences")
	if prefs < 0 || ctx.kind(prefs) != kindObject {
		return b, written
	}
	var cats []category
	for _, k := range ctx.children(prefs) {
		if ctx.isBool(k) {
			cats = append(cats, category{ctx.key(k), ctx.kind(k) == kindTrue})
		}
	}
	return p.appendCategories(b, written, cats)
}

// appendScalar appends node i, a string, number, boolean or null, as JSON.
func refAppendScalar(b []byte, t *jsonTree, i int32) []byte {
	switch t.kind(i) {
	case kindString:
		return event.AppendString(b, t.val(i))
	case kindNumber:
		return append(b, t.val(i)...)
	case kindTrue:
		return append(b, "true"...)
	case kindFalse:
		return append(b, "false"...)
	}
	return append(b, "null"...)
}

// declaredEvent is what the catalogue says of an event: its declaration
// (nil when undeclared for its source) and why it is not declared.
func (p *Profile) refDeclaredEvent(in *refParsed) (*catalogue.Event, Reason) {
	ev := &in.Env.Event
	name := ev.Event
	if name == "" {
		name = ev.Name
	}
	decl := p.declared.Catalogue.Lookup(ev.Type, name)
	switch {
	case decl == nil:
		return nil, ReasonUndeclaredEvent
	case !decl.AllowsSource(in.Env.SourceID):
		return nil, ReasonSourceNotAllowed
	}
	return decl, ""
}

// refWalker writes a properties or traits tree as a profile keeps it: by its
// declaration, class by class, scrubbing what stays in region and passing
// abroad declared public values only.
type refWalker struct {
	p      *Profile
	t      *jsonTree
	key    *Pseudonymizer
	export bool
	// path is the keys from the root; arrays counts the arrays on it
	// (drop_fields apply outside arrays only).
	path    []step
	pathBuf [8]step
	arrays  int
	r       *passReport
}

// object appends object i's kept members; n declares them (nil: none
// declared), and undeclared says the object itself is (its members'
// departures are reported with it).
func (w *refWalker) object(b []byte, i int32, n *catalogue.Node, undeclared bool) []byte {
	b = append(b, '{')
	written, at := 0, 0
	for _, k := range w.t.children(i) { // sorted by name, as n's members
		key := w.t.key(k)
		var decl *catalogue.Node
		at, decl = n.Seek(at, key)
		if w.arrays == 0 && w.p.dropsPath(w.path, key) || decl == nil && w.export && w.r.violations == nil {
			continue // nothing to keep, nothing to report
		}
		w.path = append(w.path, step{key: key})
		if decl == nil && w.personalKey(key) {
			w.violate(ReasonPersonalKey)
		} else {
			if decl == nil && !undeclared {
				w.violate(ReasonUndeclaredField)
			}
			mark := len(b)
			b = appendKey(b, written, key)
			var ok bool
			if b, ok = w.value(b, k, decl, undeclared || decl == nil); ok {
				written++
			} else {
				b = b[:mark]
			}
		}
		w.path = w.path[:len(w.path)-1]
	}
	return append(b, '}')
}

// array appends array i's kept elements, each declared by elem.
func (w *refWalker) array(b []byte, i int32, elem *catalogue.Node, undeclared bool) []byte {
	b = append(b, '[')
	last := &w.path[len(w.path)-1]
	outer := last.array // an array in an array: its elements have the same path
	last.array = true
	w.arrays++
	written := 0
	for _, k := range w.t.children(i) {
		mark := len(b)
		if written > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = w.value(b, k, elem, undeclared); ok {
			written++
		} else {
			b = b[:mark]
		}
	}
	w.arrays--
	w.path[len(w.path)-1].array = outer
	return append(b, ']')
}

// value appends value i as its declaration n keeps it, or reports false
// when nothing of it is kept.
func (w *refWalker) value(b []byte, i int32, n *catalogue.Node, undeclared bool) ([]byte, bool) {
	t := w.t
	kind := t.kind(i)
	if n == nil {
		if w.export || w.p.settings.Undeclared != UndeclaredScrub {
			return b, false
		}
		switch {
		case kind == kindObject:
			return w.object(b, i, nil, true), true
		case kind == kindArray && refCoordinatePair(t, i):
			w.violate(ReasonPersonalValue)
			return b, false
		case kind == kindArray:
			return w.array(b, i, nil, true), true
		}
		return w.p.refAppendScrubbedScalar(b, t, i), true
	}
	switch {
	case kind == kindNull && n.Field != nil:
		return append(b, "null"...), true
	case n.Field != nil:
		if !refTypeMatches(n.Field.Type, t, i) {
			w.violate(ReasonWrongType)
			return b, false
		}
		return w.field(b, i, n.Field)
	case n.Elem != nil:
		if kind != kindArray {
			w.violate(ReasonWrongType)
			return b, false
		}
		return w.array(b, i, n.Elem, false), true
	case kind != kindObject:
		w.violate(ReasonWrongType)
		return b, false
	}
	return w.object(b, i, n, false), true
}

// field appends a declared scalar as its class says.
func (w *refWalker) field(b []byte, i int32, f *catalogue.Field) ([]byte, bool) {
	if w.t.kind(i) == kindString && !f.Allows(w.t.val(i)) {
		w.violate(ReasonInvalidValue)
		if w.export {
			return b, false
		}
	}
	switch {
	case f.Class == catalogue.Public && w.export:
		// As sent: the export gate refuses an event with a value the
		// scrubbers find something in, so a mistaken class is caught.
		w.r.checkScalar(w.p.scrubber, w.path[0].key, w.t.kind(i), w.t.val(i))
		return refAppendScalar(b, w.t, i), true
	case f.Class == catalogue.Public || f.Class == catalogue.Internal && !w.export:
		return w.p.refAppendScrubbedScalar(b, w.t, i), true
	case f.Class == catalogue.Personal && !w.export && f.Pseudonym != "":
		return event.AppendString(b, w.key.Pseudonym(f.Pseudonym, w.t.val(i))), true
	}
	return b, false
}

// coordinatePair says whether array i is two numbers precise enough to
// find a place (three decimals or more) within the ranges of a latitude
// and a longitude, in either order: GeoJSON, Amap and Baidu write
// [longitude, latitude].
func refCoordinatePair(t *jsonTree, i int32) bool {
	kids := t.children(i)
	if len(kids) != 2 || t.kind(kids[0]) != kindNumber || t.kind(kids[1]) != kindNumber {
		return false
	}
	a, aok := preciseDegrees(t.val(kids[0]))
	b, bok := preciseDegrees(t.val(kids[1]))
	return aok && bok && (a <= 90 && b <= 180 || a <= 180 && b <= 90)
}

// typeMatches says whether node i has the declared type.
func refTypeMatches(typ catalogue.Type, t *jsonTree, i int32) bool {
	switch typ {
	case catalogue.String:
		return t.kind(i) == kindString
	case catalogue.Number:
		return t.kind(i) == kindNumber
	case catalogue.Integer:
		return t.kind(i) == kindNumber && !strings.ContainsAny(t.val(i), ".eE")
	case catalogue.Boolean:
		return t.isBool(i)
	}
	return false
}

// personalKey says whether an undeclared key is, or names, personal
// information: such a member is dropped whatever its value.
func (w *refWalker) personalKey(key string) bool {
	if _, ok := pii.KeyKind(key); ok {
		return true
	}
	_, ok := w.p.scrubber.Find(key)
	return ok
}

// violate records a departure at the current path, once per event.
func (w *refWalker) violate(r Reason) {
	if w.r.violations == nil || len(*w.r.violations) >= maxEventViolations {
		return
	}
	path := w.p.violationPath(w.path)
	for _, v := range *w.r.violations {
		if v.Path == path && v.Reason == r {
			return
		}
	}
	*w.r.violations = append(*w.r.violations, Violation{Path: path, Reason: r})
}

// appendScrubbedScalar appends scalar i with personal data in a string
// replaced by what it was ("[email]", "[phone]", ...), and a number that
// is a whole phone, IMEI or identity number written as that.
func (p *Profile) refAppendScrubbedScalar(b []byte, t *jsonTree, i int32) []byte {
	switch t.kind(i) {
	case kindString:
		return event.AppendString(b, p.scrub(t.val(i)))
	case kindNumber:
		lit := t.val(i)
		if plain, ok := plainDecimal(lit); ok {
			lit = plain
		}
		if s := p.scrub(lit); s != lit {
			return event.AppendString(b, s)
		}
	}
	return refAppendScalar(b, t, i)
}

// appendDeclared appends the properties (root "properties") or traits
// (root "traits") at node i of t, as the profile keeps them by the
// event's declaration decl (nil: undeclared), reporting to r.
func (p *Profile) refAppendDeclared(b []byte, t *jsonTree, i int32, root string, decl *catalogue.Node, declared bool, key *Pseudonymizer, r *passReport) []byte {
	w := refWalker{p: p, t: t, key: key, export: p.declared.Export, r: r}
	w.path = append(w.pathBuf[:0], step{key: root})
	if t.kind(i) != kindObject {
		// Event.Validate lets only objects through: nothing here is
		// declared.
		if out, ok := w.value(b, i, nil, true); ok {
			return out
		}
		return append(b, "{}"...)
	}
	return w.object(b, i, decl, !declared)
}

// refExport de-identifies env to the export profile p and runs the last check:
// the event must be allowed to leave (cross-border consent), and its JSON
// must hold neither any raw identifier of the envelope (ids, device ids,
// addresses, user agents), however it got there, nor anything the
// scrubbers find (an e-mail address, a phone number, a MAC, ...). A refusal wraps
// ErrGateRefused and says which field's value leaked, never the value.
func refExport(in *refParsed, d Decision, p *Profile) (Exportable, error) {
	if !d.Export || d.Drop != "" {
		return Exportable{}, fmt.Errorf("%w: no cross-border consent", ErrGateRefused)
	}
	var r passReport
	c, _, err := p.refDeidentifyPass(in, d, nil, &r)
	if err != nil {
		return Exportable{}, err
	}
	if r.leak != "" {
		// A value kept as sent holds what the scrubbers find: a field
		// declared public wrongly, or a client that put it there.
		return Exportable{}, fmt.Errorf("%w: %s holds %s-shaped data", ErrGateRefused, r.leakAt, r.leak)
	}
	value, subject := c.AppendJSON(make([]byte, 0, c.SizeHint())), c.Subject
	var scratch [256]byte
	for _, id := range in.RawIdentifiers() {
		if leaks(value, append(scratch[:0], id.Value...)) || needsEscape(id.Value) && leaks(value, escaped(id.Value)) {
			return Exportable{}, fmt.Errorf("%w: output holds the raw value of %s", ErrGateRefused, id.Field)
		}
	}
	return Exportable{key: []byte(subject), value: value}, nil
}
