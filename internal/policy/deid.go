// Package policy holds the pure privacy rules of the pipeline: no I/O, no
// clocks, no globals, so every rule is golden-tested.
//
// Data contract: Deidentify turns an event.Envelope (raw PI) into an
// event.Clean in which every identifier is a keyed pseudonym, the IP is
// truncated, and the user agent and traits are gone.
package policy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

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
}

// NewPseudonymizer checks the key id (letters, digits, - and _) and key length.
func NewPseudonymizer(keyID string, key []byte) (*Pseudonymizer, error) {
	if !keyIDPattern.MatchString(keyID) {
		return nil, fmt.Errorf("key id %q must be 1-32 letters, digits, - or _", keyID)
	}
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("key %s is %d bytes, want at least %d", keyID, len(key), MinKeyBytes)
	}
	return &Pseudonymizer{keyID: keyID, key: bytes.Clone(key)}, nil
}

// Identifier kinds are mixed into the HMAC so that equal strings in
// different roles (a userId equal to a device id) do not share a pseudonym.
const (
	KindUser        = "user"
	KindAnonymous   = "anonymous"
	KindDevice      = "device"
	KindAdvertising = "advertising"
)

// Pseudonym returns "<keyId>.<hex of the first 16 bytes of HMAC-SHA256>", or
// "" for an empty value. 128 bits keep collisions out of reach for any
// realistic number of subjects.
func (p *Pseudonymizer) Pseudonym(kind, value string) string {
	if value == "" {
		return ""
	}
	mac := hmac.New(sha256.New, p.key)
	mac.Write([]byte(kind))
	mac.Write([]byte{0})
	mac.Write([]byte(value))
	return p.keyID + "." + hex.EncodeToString(mac.Sum(nil)[:16])
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

// deviceIdentifiers are the context.device keys that identify a device;
// they are removed from the context (device id and advertising id come back
// as pseudonyms).
var deviceIdentifiers = []string{"id", "advertisingId", "imei", "androidId", "mac"}

// contextIdentifiers are context keys that identify a person or a device
// directly and are removed.
var contextIdentifiers = []string{"ip", "userAgent", "userAgentData", "traits"}

// Deidentify applies the in-region profile to one raw event.
func Deidentify(env event.Envelope, p *Pseudonymizer) (event.Clean, error) {
	ev := env.Event
	ctx, device, err := splitContext(ev.Context)
	if err != nil {
		return event.Clean{}, err
	}
	ts, _ := event.ParseTime(ev.Timestamp) // validated by event.DecodeEnvelope
	if ts.IsZero() {
		ts = env.ReceivedAt
	}
	name := ev.Event
	if name == "" {
		name = ev.Name
	}
	ip := env.Signals.IP
	if ctxIP, ok := ctx["ip"].(string); ok && ctxIP != "" {
		// A server-side source reports the end user's address in context.ip;
		// it wins over the address of the server that posted the event.
		ip = ctxIP
	}
	deleteFold(ctx, contextIdentifiers)
	cleanCtx, err := marshalObject(ctx)
	if err != nil {
		return event.Clean{}, err
	}
	subjectKind, subjectID := KindUser, ev.UserID
	if subjectID == "" {
		subjectKind, subjectID = KindAnonymous, ev.AnonymousID
	}
	return event.Clean{
		SchemaVersion: event.SchemaVersion,
		MessageID:     env.MessageID,
		Type:          ev.Type,
		Event:         name,
		Timestamp:     ts.UTC(),
		ReceivedAt:    env.ReceivedAt.UTC(),
		SourceID:      env.SourceID,
		Region:        env.Region,
		Subject:       p.Pseudonym(subjectKind, subjectID),
		UserID:        p.Pseudonym(KindUser, ev.UserID),
		AnonymousID:   p.Pseudonym(KindAnonymous, ev.AnonymousID),
		DeviceID:      p.Pseudonym(KindDevice, device["id"]),
		AdvertisingID: p.Pseudonym(KindAdvertising, device["advertisingId"]),
		IP:            TruncateIP(ip),
		DNT:           env.Signals.DNT,
		GPC:           env.Signals.GPC,
		Context:       cleanCtx,
		Properties:    ev.Properties,
	}, nil
}

// splitContext decodes the event context and removes the device
// identifiers from it, returning them separately.
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
	for k, v := range ctx {
		if !strings.EqualFold(k, "device") {
			continue
		}
		dev, ok := v.(map[string]any)
		if !ok {
			// A device that is not an object cannot be split into known
			// fields, so none of it is kept.
			delete(ctx, k)
			continue
		}
		for _, id := range deviceIdentifiers {
			if s, ok := dev[id].(string); ok {
				ids[id] = s
			}
		}
		deleteFold(dev, deviceIdentifiers)
	}
	return ctx, ids, nil
}

// deleteFold removes keys from m ignoring case: encoding/json matches field
// names that way, so an SDK's "IP" would otherwise slip past a delete of "ip".
func deleteFold(m map[string]any, keys []string) {
	for k := range m {
		for _, drop := range keys {
			if strings.EqualFold(k, drop) {
				delete(m, k)
			}
		}
	}
}

func marshalObject(m map[string]any) (json.RawMessage, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode context: %w", err)
	}
	return b, nil
}
