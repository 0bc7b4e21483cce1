// Package policy holds the privacy rules of the pipeline as pure functions
// of their inputs: no I/O, and no clock but the optional parse budget of a
// UserAgentParser (LimitParses), so every rule is golden-tested. The state
// it keeps never changes a result: package-level pools of scratch memory
// (parsedPool for ParseRaw, scratches for AppendDeidentified), each
// Pseudonymizer's pool of keyed HMAC states, and memos (a
// UserAgentParser's cache of parsed user agents, a Profile's violation
// paths); its package-level tables are built at init and only read.
//
// Data contract: Decide judges an event by the consent in force at its
// time (kept for which purposes, exported or not, or dropped and why).
// Profile.Deidentify turns an event.Envelope (raw PI) into an event.Clean in
// which every identifier is a keyed pseudonym under the profile's key, the
// country is derived and the IP truncated or dropped, the user agent is
// generalized, the context keeps only an allow-list, and properties are
// kept as the event catalogue declares them (declared.go): in region
// scrubbed of personal data (internal/pii), personal values pseudonymized
// or dropped; abroad declared public values only. Departures from the
// catalogue come back as Violations, by path. Export wraps an
// export-profile event in the only type the export producer accepts,
// after a last check for raw identifiers and for anything the scrubbers
// find in what was kept as sent.
package policy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/consentflow/consentflow/internal/catalogue"
	"github.com/consentflow/consentflow/internal/event"
)

// MinKeyBytes is the shortest pseudonymization key accepted: a short key
// would let an attacker who sees pseudonyms brute-force the key itself.
const MinKeyBytes = 32

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Pseudonymizer derives stable pseudonyms with HMAC-SHA256 under one key. A
// bare hash would not do: IMEIs, MACs and phone numbers are few enough to
// enumerate, so only a secret key makes the pseudonym irreversible.
type Pseudonymizer struct {
	keyID string
	key   []byte
	// macs reuses keyed HMAC states: setting one up hashes the key twice,
	// as much work as the pseudonym itself.
	macs sync.Pool
}

// NewPseudonymizer checks the key id (letters, digits, - and _) and key length.
func NewPseudonymizer(keyID string, key []byte) (*Pseudonymizer, error) {
	if !keyIDPattern.MatchString(keyID) {
		return nil, fmt.Errorf("key id %q must be 1-32 letters, digits, - or _", keyID)
	}
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("key %s is %d bytes, want at least %d", keyID, len(key), MinKeyBytes)
	}
	p := &Pseudonymizer{keyID: keyID, key: bytes.Clone(key)}
	p.macs.New = func() any { return &macState{mac: hmac.New(sha256.New, p.key)} }
	return p, nil
}

// macState is a keyed HMAC state and a buffer for its input.
type macState struct {
	mac hash.Hash
	in  []byte
	sum []byte
}

// Identifier kinds are mixed into the HMAC so that equal strings in
// different roles (a userId equal to a device id) do not share a pseudonym.
const (
	KindUser        = "user"
	KindAnonymous   = "anonymous"
	KindDevice      = "device"
	KindAdvertising = "advertising"
	KindIMEI        = "imei"
	KindAndroidID   = "android_id"
	KindMAC         = "mac"
	// KindMessage pseudonymizes messageIds in coarse profiles: the same
	// messageId in and out of the region would join the two.
	KindMessage = "message"
)

// Pseudonym returns "<keyId>.<hex of the first 16 bytes of HMAC-SHA256>", or
// "" for an empty value. 128 bits keep collisions out of reach for any
// realistic number of subjects.
func (p *Pseudonymizer) Pseudonym(kind, value string) string {
	if value == "" {
		return ""
	}
	var out PseudonymBuffer
	return string(p.AppendPseudonym(&out, kind, value))
}

// Check is the pseudonym of a fixed value under this key: equal checks
// with equal key ids mean equal keys, and a check tells nothing of the key.
func (p *Pseudonymizer) Check() string { return p.Pseudonym("key_check", "consentflow") }

// PseudonymBuffer holds a pseudonym: key ids are at most 32 bytes.
type PseudonymBuffer [32 + 1 + 32]byte

// AppendPseudonym writes value's pseudonym (as Pseudonym, which it must
// not be empty for) into out and returns it: no allocation, for lookups
// that only hash it.
func (p *Pseudonymizer) AppendPseudonym(out *PseudonymBuffer, kind, value string) []byte {
	m := p.macs.Get().(*macState)
	m.mac.Reset()
	// One write of kind, a zero byte and the value.
	m.in = append(append(append(m.in[:0], kind...), 0), value...)
	m.mac.Write(m.in)
	m.sum = m.mac.Sum(m.sum[:0])
	n := copy(out[:], p.keyID)
	out[n] = '.'
	hex.Encode(out[n+1:], m.sum[:16])
	if cap(m.in) <= 4096 {
		p.macs.Put(m)
	}
	return out[:n+1+32]
}

// TruncateIP keeps the network part of an address: /24 for IPv4 and /48 for
// IPv6. It returns "" for anything that is not an IP address, so garbage
// never passes through as if it were truncated.
func TruncateIP(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	addr = addr.Unmap()
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	return netip.PrefixFrom(addr, bits).Masked().Addr().String()
}

// deviceIDKeys are the context.device keys that come back as pseudonyms.
var deviceIDKeys = [...]string{"id", "advertisingId", "imei", "androidId", "mac"}

// contextAllowList is every part of the Segment context that survives
// de-identification, and for objects the keys kept inside them (scalar
// values only). Everything else goes: ip, userAgent, traits, location,
// externalIds, device.token, device.name, IMEI, MAC and whatever an SDK adds
// tomorrow. An allow-list, because a block-list leaks each new field.
// "consent" stands for consent.categoryPreferences (appendConsent). Keys
// are in the order they are written: sorted, as json.Marshal sorts a map's.
var contextAllowList = withSlots(nil, []allowed{
	{key: "app", keys: []string{"build", "name", "namespace", "version"}},
	{key: "campaign", keys: []string{"content", "medium", "name", "source", "term"}},
	{key: "consent"},
	{key: "device", keys: []string{"manufacturer", "model", "type"}},
	{key: "library", keys: []string{"name", "version"}},
	{key: "locale"},
	{key: "network", keys: []string{"bluetooth", "carrier", "cellular", "wifi"}},
	{key: "os", keys: []string{"name", "version"}},
	{key: "page", keys: []string{"path", "referrer", "title", "url"}},
	{key: "screen", keys: []string{"density", "height", "width"}},
	{key: "timezone"},
})

// coarseContextAllowList is what a coarse profile keeps: what an app and
// its platform are, nothing of the device, page, network or campaign.
var coarseContextAllowList = withSlots(contextAllowList, []allowed{
	{key: "app", keys: []string{"name", "version"}},
	{key: "consent"},
	{key: "library", keys: []string{"name", "version"}},
	{key: "locale"},
	{key: "os", keys: []string{"name"}},
})

// allowed is a context key that is kept, with the keys kept inside it if
// it is an object (at most maxAllowedKeys), nil for a scalar.
type allowed struct {
	key  string
	keys []string
	// slot is the key's in Parsed.ctxAt, and sub the positions of keys
	// in the full allow-list's keys of slot, as in Parsed.ctxSub
	// (withSlots).
	slot int
	sub  [maxAllowedKeys]int8
}

// withSlots fills in the slots of list, an allow-list, a subset of full
// (nil: list is the full allow-list).
func withSlots(full, list []allowed) []allowed {
	for i := range list {
		a := &list[i]
		if a.slot = ctxSlot(a.key); a.slot < 0 || full == nil && a.slot != i {
			panic("policy: context key " + a.key + " is not in its slot in Parsed")
		}
		for ki, k := range a.keys {
			a.sub[ki] = int8(ki)
			if full != nil {
				a.sub[ki] = int8(slices.Index(full[a.slot].keys, k))
			}
		}
	}
	return list
}

const maxAllowedKeys = 5

// Deidentify applies the profile to one parsed event kept for d.Purposes.
func (p *Profile) Deidentify(in *Parsed, d Decision) (event.Clean, error) {
	c, _, err := p.deidentify(in, d, nil, &passReport{})
	return c, err
}

// AppendDeidentified appends the JSON of Deidentify's result to dst, and
// returns it with the event's subject pseudonym (its Kafka key). The
// de-identified context and properties pass through reused memory on
// their way. Departures from the catalogue are appended to violations
// when it is not nil.
func (p *Profile) AppendDeidentified(dst []byte, in *Parsed, d Decision, violations *[]Violation) ([]byte, string, error) {
	scratch := scratches.Get().(*[]byte)
	c, buf, err := p.deidentify(in, d, (*scratch)[:0], &passReport{violations: violations})
	if err == nil {
		dst = c.AppendJSON(slices.Grow(dst, c.SizeHint()))
	}
	if cap(buf) <= maxScratch {
		*scratch = buf[:0] // grown, if it had to
		scratches.Put(scratch)
	}
	return dst, c.Subject, err
}

// scratches hold the buffers AppendDeidentified writes contexts and
// properties into; a rare large one is left to the garbage collector.
var scratches = sync.Pool{New: func() any { return new([]byte) }}

const maxScratch = 64 << 10

// deidentify is Deidentify writing the context and properties into
// scratch, when it is large enough; buf is the memory they are in.
func (p *Profile) deidentify(in *Parsed, d Decision, scratch []byte, r *passReport) (c event.Clean, buf []byte, err error) {
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
	decl, undeclared := p.declaredEvent(in)
	if undeclared != "" && r.violations != nil {
		*r.violations = append(*r.violations, Violation{Path: "event", Reason: undeclared})
	}
	key := p.keys.At(env.ReceivedAt)
	c = event.Clean{
		SchemaVersion: event.SchemaVersion,
		MessageID:     env.MessageID,
		Type:          ev.Type,
		Event:         p.eventName(in, decl, r),
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
	b = p.appendContext(b, in, allowList, decls, r)
	n := len(b)
	if n > 0 {
		c.Context = b[:n:n]
	}
	var props, traits *catalogue.Node
	if decl != nil {
		props, traits = decl.Properties, decl.Traits
	}
	if in.hasProps {
		b = p.appendDeclared(b, in.props, "properties", props, decl != nil, key, r)
		c.Properties = b[n:len(b):len(b)]
	}
	if in.hasTraits && r.violations != nil {
		// Traits are stored nowhere; walked for what departs from the
		// catalogue only, into memory given back at once.
		p.appendDeclared(b[len(b):], in.traits, "traits", traits, decl != nil, key, r)
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
		// A signed-in event names its device too, under this profile's key:
		// erasing that device (its anonymousId) must reach these rows, which
		// the subject alone, the userId's pseudonym, does not tell apart.
		if ev.UserID != "" {
			c.AnonymousID = key.Pseudonym(KindAnonymous, ev.AnonymousID)
		}
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
func (p *Profile) eventName(in *Parsed, decl *catalogue.Event, r *passReport) string {
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
func (p *Profile) appendContext(b []byte, in *Parsed, allowList []allowed, decls []contextDecl, r *passReport) []byte {
	orig, written := b, 0
	ctx := in.ctx
	b = append(b, '{')
	for ai, a := range allowList {
		// The context's scan found where the allow-list's keys are.
		v := in.ctxAt[a.slot]
		if a.slot == slotConsent {
			b, written = p.appendConsent(b, written, ctx, in.prefs)
			continue
		}
		decl := decls[ai]
		switch {
		case v.at < 0:
			continue
		case a.keys == nil:
			if !isScalar(ctx, v) || p.dropsContext(a.key) || !p.keepsContext(ctx, v, decl.node) {
				continue
			}
			b = appendKey(b, written, a.key)
			b = p.appendContextScalar(b, ctx, v, r)
			written++
			continue
		case ctx[v.at] != kindObject:
			continue
		}
		var kept [maxAllowedKeys]keptScalar
		n := 0
		for ki, k := range a.keys {
			sv := in.ctxSub[a.slot][a.sub[ki]]
			if sv.at < 0 || !isScalar(ctx, sv) || !p.keepsContext(ctx, sv, decl.keys[ki]) {
				continue
			}
			ks := keptScalar{key: k, v: sv}
			if ctx[sv.at] == kindString && a.key == "page" {
				// Query strings and fragments carry e-mail addresses,
				// tokens and search terms.
				switch k {
				case "url", "referrer":
					raw := valOf(ctx, sv)
					if !p.declared.Export {
						// Before url.URL escapes what it rewrites: a
						// phone number written with spaces would reach
						// the scrubber as +44%207000%20000000.
						raw = p.scrub(raw)
					}
					ks.text = stripURL(raw)
				case "path":
					ks.text, _, _ = strings.Cut(valOf(ctx, sv), "#")
					ks.text, _, _ = strings.Cut(ks.text, "?")
				default:
					ks.text = valOf(ctx, sv)
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
				b = p.appendContextScalar(b, ctx, ks.v, r)
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
func (p *Profile) appendContextScalar(b []byte, ctx []byte, v span, r *passReport) []byte {
	if !p.declared.Export {
		return p.appendScrubbedScalar(b, ctx, v)
	}
	r.checkScalar(p.scrubber, "context", kindOf(ctx, v), valOf(ctx, v))
	return appendScalar(b, ctx, v)
}

// keepsContext says whether a context value allow-listed for the profile
// is kept by its declaration decl (nil: undeclared): abroad only declared
// public values of the declared type are, in region all but personal and
// sensitive ones and those of another type.
func (p *Profile) keepsContext(ctx []byte, v span, decl *catalogue.Node) bool {
	if decl == nil || decl.Field == nil {
		return !p.declared.Export
	}
	f := decl.Field
	if !typeMatches(f.Type, ctx, v) {
		return false
	}
	if p.declared.Export {
		return f.Class == catalogue.Public && (kindOf(ctx, v) != kindString || f.Allows(valOf(ctx, v)))
	}
	return f.Class == catalogue.Public || f.Class == catalogue.Internal
}

// keptScalar is a kept value of an allow-listed context object.
type keptScalar struct {
	key       string
	v         span
	text      string // the value, if rewritten
	rewritten bool
}

// appendConsent appends Segment's consent categories (category name to
// granted or not, booleans named in 64 bytes or less) as the context's
// consent.categoryPreferences (at prefs, an object, or -1), if there are
// any: the enricher and analysts read them, and they say nothing about
// who the subject is.
func (p *Profile) appendConsent(b []byte, written int, ctx []byte, prefs span) ([]byte, int) {
	if prefs.at < 0 {
		return b, written
	}
	var buf [16]member
	var kept [16]category
	cats := kept[:0]
	for _, m := range sortedMembers(buf[:0], ctx, prefs) {
		if isBool(ctx, m.v) {
			cats = append(cats, category{m.key, kindOf(ctx, m.v) == kindTrue})
		}
	}
	return p.appendCategories(b, written, cats)
}

// category is a consent category an event carries: its name and whether
// it is granted.
type category struct {
	name    string
	granted bool
}

// appendCategories appends the categories the profile keeps as the
// context's consent.categoryPreferences, if any. A category name is free
// text a client writes: with the consent rules' names known, only those
// are kept, lower-cased as the rules match them and each once (the last
// given), so no spelling of a name can tag anyone.
func (p *Profile) appendCategories(b []byte, written int, cats []category) ([]byte, int) {
	kept := cats[:0]
	for _, c := range cats {
		if len(c.name) > 64 {
			continue
		}
		if known := p.declared.Categories; known != nil {
			c.name = strings.ToLower(c.name)
			if _, ok := known[c.name]; !ok {
				continue
			}
		}
		if _, personal := p.scrubber.Find(c.name); personal || p.dropsContext("consent", "categoryPreferences", c.name) {
			continue
		}
		kept = append(kept, c)
	}
	slices.SortStableFunc(kept, func(a, b category) int { return strings.Compare(a.name, b.name) })
	if len(kept) == 0 || p.dropsContext("consent") {
		return b, written
	}
	b = appendKey(b, written, "consent")
	if p.dropsContext("consent", "categoryPreferences") {
		return append(b, '{', '}'), written + 1
	}
	b = append(b, `{"categoryPreferences":{`...)
	inner := 0
	for i, c := range kept {
		if i+1 < len(kept) && kept[i+1].name == c.name {
			continue // the last given counts
		}
		b = appendKey(b, inner, c.name)
		inner++
		b = strconv.AppendBool(b, c.granted)
	}
	return append(b, '}', '}'), written + 1
}

// appendKey appends an object key and its colon, after a comma unless it
// is the object's first.
func appendKey(b []byte, written int, key string) []byte {
	if written > 0 {
		b = append(b, ',')
	}
	b = event.AppendString(b, key)
	return append(b, ':')
}

// dropsContext reports whether drop_fields names context.<path...>.
func (p *Profile) dropsContext(path ...string) bool {
	var full [4]step
	steps := append(full[:0], step{key: "context"})
	for _, k := range path[:len(path)-1] {
		steps = append(steps, step{key: k})
	}
	return p.dropsPath(steps, path[len(path)-1])
}

// stripURL keeps scheme, host and path of an http or https URL: query
// strings and fragments carry e-mail addresses, reset tokens and search
// terms. Anything else (mailto:, tel:, what does not parse) is dropped whole.
func stripURL(raw string) string {
	if s, ok := stripPlainURL(raw); ok {
		return s
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" {
		return ""
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// stripPlainURL is stripURL for the URLs most pages have, without parsing
// them: http or https, a host of letters, digits, dots and dashes, a path
// of letters, digits and /._~- (which url.URL writes as they are), no
// control characters, no escapes in the fragment (which url.Parse would
// check). ok is false for any other: then url.Parse decides.
func stripPlainURL(raw string) (s string, ok bool) {
	rest, found := strings.CutPrefix(raw, "https://")
	if !found {
		if rest, found = strings.CutPrefix(raw, "http://"); !found {
			return "", false
		}
	}
	i := 0
	for i < len(rest) && (isAlnum(rest[i]) || rest[i] == '.' || rest[i] == '-') {
		i++
	}
	if i == 0 {
		return "", false
	}
	if i < len(rest) && rest[i] == '/' {
		for i < len(rest) && (isAlnum(rest[i]) || strings.IndexByte("/._~-", rest[i]) >= 0) {
			i++
		}
	}
	if i < len(rest) && rest[i] != '?' && rest[i] != '#' {
		return "", false
	}
	end := len(raw) - len(rest) + i
	for j := end; j < len(raw); j++ {
		if c := raw[j]; c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	if _, frag, hasFrag := strings.Cut(raw[end:], "#"); hasFrag && strings.IndexByte(frag, '%') >= 0 {
		return "", false
	}
	return raw[:end], true
}
