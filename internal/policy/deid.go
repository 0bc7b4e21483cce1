// Package policy holds the pure privacy rules of the pipeline: no I/O, no
// clocks, no globals, so every rule is golden-tested.
//
// Data contract: Decide judges an event by the consent in force at its
// time (kept for which purposes, exported or not, or dropped and why).
// Profile.Deidentify turns an event.Envelope (raw PI) into an event.Clean in
// which every identifier is a keyed pseudonym under the profile's key, the
// country is derived and the IP truncated or dropped, the user agent is
// generalized, the context keeps only an allow-list, and e-mail addresses,
// phone, IMEI and identity numbers in the properties are replaced by what
// they were (scrubProperties). Export wraps an export-profile event in the
// only type the export producer accepts, after a last check for raw
// identifiers.
package policy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

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
	p.macs.New = func() any { return hmac.New(sha256.New, p.key) }
	return p, nil
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
	mac := p.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write([]byte(kind))
	mac.Write([]byte{0})
	mac.Write([]byte(value))
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	p.macs.Put(mac)
	out := make([]byte, len(p.keyID)+1+32)
	copy(out, p.keyID)
	out[len(p.keyID)] = '.'
	hex.Encode(out[len(p.keyID)+1:], sum[:16])
	return string(out)
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
var deviceIDKeys = []string{"id", "advertisingId", "imei", "androidId", "mac"}

// contextAllowList is every part of the Segment context that survives
// de-identification, and for objects the keys kept inside them (scalar
// values only). Everything else goes: ip, userAgent, traits, location,
// externalIds, device.token, device.name, IMEI, MAC and whatever an SDK adds
// tomorrow. An allow-list, because a block-list leaks each new field.
// consent.categoryPreferences is kept too (consentPreferences).
var contextAllowList = map[string][]string{
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

// coarseContextAllowList is what a coarse profile keeps: what an app and
// its platform are, nothing of the device, page, network or campaign.
var coarseContextAllowList = map[string][]string{
	"app":     {"name", "version"},
	"library": {"name", "version"},
	"os":      {"name"},
	"locale":  nil,
}

// urlKeys are page fields whose query string and fragment are cut: they
// carry e-mail addresses, tokens and search terms.
var urlKeys = map[string]bool{"url": true, "referrer": true}

// Deidentify applies the profile to one parsed event kept for d.Purposes.
func (p *Profile) Deidentify(in *Parsed, d Decision) (event.Clean, error) {
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
	allowList := contextAllowList
	if coarse {
		allowList = coarseContextAllowList
	}
	kept := allowContext(ctx, allowList)
	dropPaths(kept, p.drops, "context")
	cleanCtx, err := marshalObject(kept)
	if err != nil {
		return event.Clean{}, err
	}
	props, err := p.scrubProperties(in)
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
		Event:         name,
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

// splitContext decodes the event context and returns, apart, the device
// identifiers that become pseudonyms.
func splitContext(raw json.RawMessage) (map[string]any, map[string]string, error) {
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

// allowContext keeps what contextAllowList names, scalars only, and cuts
// URLs to scheme, host and path.
func allowContext(ctx map[string]any, allowList map[string][]string) map[string]any {
	out := map[string]any{}
	if prefs := consentPreferences(ctx); len(prefs) > 0 {
		out["consent"] = map[string]any{"categoryPreferences": prefs}
	}
	for key, subKeys := range allowList {
		v, ok := ctx[key]
		if !ok {
			continue
		}
		if subKeys == nil {
			if isScalar(v) {
				out[key] = v
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
			if !ok || !isScalar(sv) {
				continue
			}
			if str, isStr := sv.(string); isStr && key == "page" {
				switch {
				case urlKeys[k]:
					sv = stripURL(str)
				case k == "path":
					sv, _, _ = strings.Cut(strings.SplitN(str, "#", 2)[0], "?")
				}
				if sv == "" {
					continue
				}
			}
			kept[k] = sv
		}
		if len(kept) > 0 {
			out[key] = kept
		}
	}
	return out
}

// consentPreferences keeps Segment's consent categories (category name to
// granted or not): the enricher and analysts read them, and they say
// nothing about who the subject is.
func consentPreferences(ctx map[string]any) map[string]any {
	consent, _ := ctx["consent"].(map[string]any)
	prefs, _ := consent["categoryPreferences"].(map[string]any)
	kept := map[string]any{}
	for k, v := range prefs {
		if b, ok := v.(bool); ok && len(k) <= 64 {
			kept[k] = b
		}
	}
	return kept
}

func isScalar(v any) bool {
	switch v.(type) {
	case string, json.Number, bool:
		return true
	}
	return false
}

// stripURL keeps scheme, host and path of an http or https URL: query
// strings and fragments carry e-mail addresses, reset tokens and search
// terms. Anything else (mailto:, tel:, what does not parse) is dropped whole.
func stripURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" {
		return ""
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

func marshalObject(m map[string]any) (json.RawMessage, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := event.AppendValue(nil, m)
	if err != nil {
		return nil, fmt.Errorf("encode context: %w", err)
	}
	return b, nil
}
