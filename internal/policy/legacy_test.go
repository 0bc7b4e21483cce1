package policy

// The map-based implementation of Parse, Deidentify and Export as it was
// before the single-pass decoding, kept as the reference the fuzz tests
// compare the current one with byte for byte.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/pii"
)

type legacyParsed struct {
	Env event.Envelope
	At  time.Time

	ctx      map[string]any
	device   map[string]string
	props    any
	hasProps bool
	ip, ua   string
}

var legacyContextAllowList = map[string][]string{
	"app":      {"name", "version", "build", "namespace"},
	"campaign": {"name", "source", "medium", "term", "content"},
	"device":   {"manufacturer", "model", "type"},
	"library":  {"name", "version"},
	"network":  {"bluetooth", "carrier", "cellular", "wifi"},
	"os":       {"name", "version"},
	"page":     {"path", "title", "url", "referrer"},
	"screen":   {"width", "height", "density"},
	"locale":   nil,
	"timezone": nil,
}

var legacyCoarseContextAllowList = map[string][]string{
	"app":     {"name", "version"},
	"library": {"name", "version"},
	"os":      {"name"},
	"locale":  nil,
}

var legacyURLKeys = map[string]bool{"url": true, "referrer": true}

// Parse decodes the context and properties of an envelope that
// event.DecodeEnvelope accepted. An error is an *event.FieldError: the
// event is poison.
func legacyParse(env event.Envelope) (*legacyParsed, error) {
	ctx, device, err := legacySplitContext(env.Event.Context)
	if err != nil {
		return nil, err
	}
	p := &legacyParsed{Env: env, At: EventTime(env), ctx: ctx, device: device, ip: env.Signals.IP, ua: env.Signals.UserAgent}
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
	p.ua, _ = event.CapUserAgent(p.ua)
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
func (p *legacyParsed) CarriedPreferences() map[string]bool {
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
func (p *legacyParsed) RawIdentifiers() []Identifier {
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

// Deidentify applies the profile to one parsed event kept for d.Purposes.
func (p *Profile) legacyDeidentify(in *legacyParsed, d Decision) (event.Clean, error) {
	env, ev := &in.Env, &in.Env.Event
	ts, _ := event.ParseTime(ev.Timestamp) // validated by event.DecodeEnvelope
	if ts.IsZero() {
		ts = env.ReceivedAt
	}
	name := ev.Event
	if name == "" {
		name = ev.Name
	}
	ip, ua, ctx, device := in.ip, in.ua, in.ctx, in.device
	coarse := p.settings.Detail == "coarse"
	allowList := legacyContextAllowList
	if coarse {
		allowList = legacyCoarseContextAllowList
	}
	kept := p.legacyAllowContext(ctx, allowList)
	legacyDropPaths(kept, p.drops, "context")
	cleanCtx, err := legacyMarshalObject(kept)
	if err != nil {
		return event.Clean{}, err
	}
	props, err := p.legacyScrubProperties(in)
	if err != nil {
		return event.Clean{}, err
	}
	key := p.keys.At(env.ReceivedAt)
	subjectKind, subjectID := KindUser, ev.UserID
	if subjectID == "" {
		subjectKind, subjectID = KindAnonymous, ev.AnonymousID
	}
	c := event.Clean{
		SchemaVersion: event.SchemaVersion,
		MessageID:     env.MessageID,
		Type:          ev.Type,
		Event:         p.scrub(name),
		Timestamp:     ts.UTC(),
		ReceivedAt:    env.ReceivedAt.UTC(),
		SourceID:      env.SourceID,
		Region:        env.Region,
		Purposes:      d.Purposes.Names(),
		Subject:       key.Pseudonym(subjectKind, subjectID),
		Country:       Country(ip),
		DNT:           env.Signals.DNT,
		GPC:           env.Signals.GPC,
		Context:       cleanCtx,
		Properties:    props,
	}
	if !coarse {
		c.UserID = key.Pseudonym(KindUser, ev.UserID)
		c.AnonymousID = key.Pseudonym(KindAnonymous, ev.AnonymousID)
	} else {
		c.Timestamp, c.ReceivedAt = c.Timestamp.Truncate(time.Hour), c.ReceivedAt.Truncate(time.Hour)
		c.MessageID = key.Pseudonym(KindMessage, env.MessageID)
		if ev.UserID != "" {
			c.AnonymousID = key.Pseudonym(KindAnonymous, ev.AnonymousID)
		}
	}
	if p.settings.DeviceIDs {
		c.DeviceID = key.Pseudonym(KindDevice, device["id"])
		c.AdvertisingID = key.Pseudonym(KindAdvertising, device["advertisingId"])
		c.IMEI = key.Pseudonym(KindIMEI, device["imei"])
		c.AndroidID = key.Pseudonym(KindAndroidID, device["androidId"])
		c.MAC = key.Pseudonym(KindMAC, device["mac"])
	}
	if p.settings.IP == "truncate" {
		c.IP = TruncateIP(ip)
	}
	if p.settings.UserAgent == "parse" && p.agents != nil {
		a := p.agents.Parse(ua)
		c.Browser, c.OS, c.DeviceClass = a.Browser, a.OS, a.DeviceClass
		if !coarse {
			c.BrowserVersion, c.OSVersion = a.BrowserVersion, a.OSVersion
		}
	}
	return c, nil
}

// legacySplitContext decodes the event context and returns, apart, the device
// identifiers that become pseudonyms.
func legacySplitContext(raw json.RawMessage) (map[string]any, map[string]string, error) {
	ctx := map[string]any{}
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // numbers pass through unchanged
		if err := dec.Decode(&ctx); err != nil {
			return nil, nil, &event.FieldError{Field: "event.context", Msg: err.Error()}
		}
		if ctx == nil { // "context": null
			ctx = map[string]any{}
		}
	}
	ids := map[string]string{}
	if dev, ok := ctx["device"].(map[string]any); ok {
		for _, k := range deviceIDKeys {
			if s, ok := dev[k].(string); ok {
				ids[k] = s
			}
		}
	}
	return ctx, ids, nil
}

// legacyAllowContext keeps what legacyContextAllowList names, scalars only, and cuts
// URLs to scheme, host and path.
func (p *Profile) legacyAllowContext(ctx map[string]any, allowList map[string][]string) map[string]any {
	out := map[string]any{}
	if prefs := p.legacyConsentPreferences(ctx); len(prefs) > 0 {
		out["consent"] = map[string]any{"categoryPreferences": prefs}
	}
	for key, subKeys := range allowList {
		v, ok := ctx[key]
		if !ok {
			continue
		}
		if subKeys == nil {
			if legacyIsScalar(v) {
				out[key] = p.legacyScrubValue(v)
			}
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			continue
		}
		kept := map[string]any{}
		for _, k := range subKeys {
			sv, ok := obj[k]
			if !ok || !legacyIsScalar(sv) {
				continue
			}
			if str, isStr := sv.(string); isStr && key == "page" {
				switch {
				case legacyURLKeys[k]:
					sv = stripURL(p.scrub(str))
				case k == "path":
					sv, _, _ = strings.Cut(strings.SplitN(str, "#", 2)[0], "?")
				}
				if sv == "" {
					continue
				}
			}
			kept[k] = p.legacyScrubValue(sv)
		}
		if len(kept) > 0 {
			out[key] = kept
		}
	}
	return out
}

// legacyConsentPreferences keeps Segment's consent categories (category name to
// granted or not): the enricher and analysts read them, and they say
// nothing about who the subject is.
func (p *Profile) legacyConsentPreferences(ctx map[string]any) map[string]any {
	consent, _ := ctx["consent"].(map[string]any)
	prefs, _ := consent["categoryPreferences"].(map[string]any)
	kept := map[string]any{}
	for k, v := range prefs {
		if _, personal := p.scrubber.Find(k); personal {
			continue
		}
		if b, ok := v.(bool); ok && len(k) <= 64 {
			kept[k] = b
		}
	}
	return kept
}

func legacyMarshalObject(m map[string]any) (json.RawMessage, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := event.AppendValue(nil, m)
	if err != nil {
		return nil, fmt.Errorf("encode context: %w", err)
	}
	return b, nil
}

// scrubProperties returns the properties with personal data in string
// values, and numbers that are whole phone, IMEI or identity numbers,
// replaced by what they were ("[email]", "[phone]", ...), and the profile's
// drop_fields removed. Keys and structure stay.
func (p *Profile) legacyScrubProperties(in *legacyParsed) (json.RawMessage, error) {
	if !in.hasProps {
		return in.Env.Event.Properties, nil
	}
	v := p.legacyScrubValue(in.props)
	if obj, ok := v.(map[string]any); ok {
		legacyDropPaths(obj, p.drops, "properties")
	}
	b, err := event.AppendValue(nil, v)
	if err != nil {
		return nil, fmt.Errorf("encode properties: %w", err)
	}
	return b, nil
}

// legacyScrubValue returns v with its strings scrubbed and the members
// whose keys are personal information dropped, in new maps and slices:
// the parsed event is shared by every profile.
func (p *Profile) legacyScrubValue(v any) any {
	switch x := v.(type) {
	case string:
		return p.scrub(x)
	case json.Number:
		lit := x.String()
		if plain, ok := plainDecimal(lit); ok {
			lit = plain
		}
		if s := p.scrub(lit); s != lit {
			return s
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			_, named := pii.KeyKind(k)
			if _, found := p.scrubber.Find(k); found || named {
				continue
			}
			out[k] = p.legacyScrubValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = p.legacyScrubValue(e)
		}
		return out
	}
	return v
}

// legacyDropPaths deletes each path of drops that starts at root from obj.
func legacyDropPaths(obj map[string]any, drops [][]string, root string) {
	for _, path := range drops {
		if path[0] != root {
			continue
		}
		m := obj
		for _, k := range path[1 : len(path)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				m = nil
				break
			}
			m = next
		}
		if m != nil {
			delete(m, path[len(path)-1])
		}
	}
}

// Export de-identifies env to the export profile p and runs the last check:
// the event must be allowed to leave (cross-border consent), and its JSON
// must not hold any raw identifier of the envelope (ids, device ids,
// addresses, user agents), however it got there. A refusal wraps
// ErrGateRefused and says which field's value leaked, never the value.
func legacyExport(in *legacyParsed, d Decision, p *Profile) (Exportable, error) {
	if !d.Export || d.Drop != "" {
		return Exportable{}, fmt.Errorf("%w: no cross-border consent", ErrGateRefused)
	}
	clean, err := p.legacyDeidentify(in, d)
	if err != nil {
		return Exportable{}, err
	}
	value := clean.AppendJSON(nil)
	for _, id := range in.RawIdentifiers() {
		quoted, _ := json.Marshal(id.Value)
		if leaks(value, []byte(id.Value)) || leaks(value, quoted[1:len(quoted)-1]) {
			return Exportable{}, fmt.Errorf("%w: output holds the raw value of %s", ErrGateRefused, id.Field)
		}
	}
	return Exportable{key: []byte(clean.Subject), value: value}, nil
}

func legacyIsScalar(v any) bool {
	switch v.(type) {
	case string, json.Number, bool:
		return true
	}
	return false
}
