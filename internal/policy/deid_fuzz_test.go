package policy_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// fuzzIDs are the raw identifiers a fuzzed envelope carries.
type fuzzIDs struct {
	user, anon, device, ad, hw string // hw goes to imei, androidId and mac
}

// fuzzEnvelope builds an envelope from fuzzed parts. When rawCtx is empty or
// a JSON object, the identifiers are injected where Segment puts them
// (context.device.*, context.ip, context.userAgent, context.traits) and
// injected is true; otherwise rawCtx is used as the context as it is.
// effIP is the address Deidentify should truncate when injected is true.
func fuzzEnvelope(ids fuzzIDs, signalIP, ctxIP string, rawCtx, props []byte, ts string) (env event.Envelope, injected bool, effIP string) {
	env = event.Envelope{
		SchemaVersion: event.SchemaVersion,
		MessageID:     "fuzz-message",
		ReceivedAt:    time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC),
		SourceID:      "fuzz-source",
		Region:        "eu",
		// Trust in context.ip varies with the input, so both paths are fuzzed.
		Signals: event.Signals{DNT: true, IP: signalIP, UserAgent: "signals UA", TrustContextIP: len(signalIP)%2 == 0},
		Event: event.Event{
			Type:        "track",
			Event:       "Fuzz",
			UserID:      ids.user,
			AnonymousID: ids.anon,
			Timestamp:   ts,
		},
	}
	if json.Valid(props) {
		env.Event.Properties = props
	}
	ctx := map[string]any{}
	if len(rawCtx) > 0 {
		dec := json.NewDecoder(bytes.NewReader(rawCtx))
		dec.UseNumber()
		var m map[string]any
		if !json.Valid(rawCtx) || dec.Decode(&m) != nil || m == nil {
			env.Event.Context = rawCtx
			return env, false, ""
		}
		ctx = m
	}
	dev, ok := ctx["device"].(map[string]any)
	if !ok {
		dev = map[string]any{}
		ctx["device"] = dev
	}
	dev["id"] = ids.device
	dev["advertisingId"] = ids.ad
	dev["imei"] = ids.hw
	dev["androidId"] = ids.hw
	dev["mac"] = ids.hw
	if ctxIP != "" {
		ctx["ip"] = ctxIP
	}
	ctx["userAgent"] = "context UA " + ids.user
	ctx["traits"] = map[string]any{"userId": ids.user, "anonymousId": ids.anon, "deviceId": ids.device}
	effIP = signalIP
	if s, ok := ctx["ip"].(string); ok && s != "" && env.Signals.TrustContextIP {
		effIP = s
	}
	b, err := json.Marshal(ctx)
	if err != nil {
		panic(err) // built from decoded JSON and strings: cannot fail
	}
	env.Event.Context = b
	return env, true, effIP
}

// jsonStrings returns every key, string and number of a JSON document.
func jsonStrings(t *testing.T, doc []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, doc)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				out = append(out, k)
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case string:
			out = append(out, v)
		case json.Number:
			out = append(out, string(v))
		}
	}
	walk(v)
	return out
}

func anyContains(haystack []string, needle string) bool {
	for _, s := range haystack {
		if strings.Contains(s, needle) {
			return true
		}
	}
	return false
}

// asEncoded is s as it reads after a JSON round trip (invalid UTF-8 becomes
// U+FFFD), which is how a leaked s would show in the output.
func asEncoded(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

func checkPseudonym(t *testing.T, field, raw, got string) {
	t.Helper()
	if raw == "" {
		if got != "" {
			t.Errorf("%s = %q for an empty identifier, want empty", field, got)
		}
		return
	}
	h, ok := strings.CutPrefix(got, testKeyID+".")
	if b, err := hex.DecodeString(h); !ok || err != nil || len(b) != 16 {
		t.Errorf("%s = %q, want %s.<32 hex digits>", field, got, testKeyID)
	}
}

func checkMaskedIP(t *testing.T, ip string) {
	t.Helper()
	if ip == "" {
		return
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("IP = %q is not an address: %v", ip, err)
	}
	bits := 48
	switch {
	case a.Zone() != "":
		t.Fatalf("IP = %q carries a zone", ip)
	case a.Is4In6():
		t.Fatalf("IP = %q is IPv4-mapped, want the plain IPv4 form", ip)
	case a.Is4():
		bits = 24
	}
	if m := netip.PrefixFrom(a, bits).Masked().Addr(); m != a || m.String() != ip {
		t.Fatalf("IP = %q is not a /%d network address (want %q)", ip, bits, m)
	}
}

func FuzzDeidentify(f *testing.F) {
	type seed struct {
		ids             fuzzIDs
		signalIP, ctxIP string
		rawCtx, props   string
		timestamp       string
	}
	full := fuzzIDs{"user-4f1c9a7e", "anon-507f191e810c19729de860ea", "device-B5372DB0-C21E", "adid-7A3CBEA0-BDF5", "356938035643809"}
	for _, s := range []seed{
		{full, "198.51.100.23", "203.0.113.77", `{"app":{"build":12345678901234567890,"version":1.10},"device":{"model":"iPhone7,2"}}`, `{"revenue":25.00}`, "2026-03-14T11:26:50.123+02:00"},
		{fuzzIDs{anon: "anon-only-00000000"}, "2001:db8:85a3:1234:5678:8a2e:370:7334", "", ``, `{}`, ""},
		{fuzzIDs{user: "user-ipv4-mapped"}, "::ffff:198.51.100.250", "", `null`, `null`, "2026-03-14T11:26:50Z"},
		{full, "", "garbage", `{"device":"a-device-string","ip":7}`, `[1,2`, "not a time"},
		{full, "10.0.0.1", "", `{"ip":"203.0.113.9","traits":{"email":"a@b.c"}}`, ``, "2026-03-14T11:26:50Z"},
		{full, "fe80::1%eth0", "", `[1,2]`, ``, ""},
		{full, "1.2.3.4", "", `{"device":`, ``, ""},
		{full, "1.2.3.4", "", `"context"`, ``, ""},
		{fuzzIDs{"same-value-1234", "same-value-1234", "same-value-1234", "same-value-1234", "same-value-1234"}, "1.2.3.4", "", `{"other":"same-value-1234"}`, `{"p":"same-value-1234"}`, ""},
		{fuzzIDs{user: "\xff\xfe invalid utf-8 \x00 user", anon: "<script>&amp;</script>"}, "1.2.3.4", "", `{"a":"\u003c\ud800"}`, `{"b":"<>&\u2028"}`, "2026-03-14T00:30:00+01:00"},
	} {
		f.Add(s.ids.user, s.ids.anon, s.ids.device, s.ids.ad, s.ids.hw, s.signalIP, s.ctxIP, []byte(s.rawCtx), []byte(s.props), s.timestamp)
	}

	f.Fuzz(func(t *testing.T, user, anon, device, ad, hw, signalIP, ctxIP string, rawCtx, props []byte, ts string) {
		ids := fuzzIDs{user, anon, device, ad, hw}
		env, injected, effIP := fuzzEnvelope(ids, signalIP, ctxIP, rawCtx, props, ts)
		out, err := deidentify(t, env)
		if err != nil {
			var fe *event.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, event.ErrPermanent) {
				t.Fatalf("Deidentify error %v (%T) is not a permanent *event.FieldError", err, err)
			}
			if injected {
				t.Fatalf("Deidentify failed on a valid object context: %v", err)
			}
			return
		}
		got, err := json.Marshal(out)
		if err != nil {
			t.Fatalf("Deidentify output cannot be encoded (timestamp %q): %v", ts, err)
		}

		// Identifiers: pseudonyms of the right shape, IP masked.
		subject := user
		if subject == "" {
			subject = anon
		}
		checkPseudonym(t, "Subject", subject, out.Subject)
		checkPseudonym(t, "UserID", user, out.UserID)
		checkPseudonym(t, "AnonymousID", anon, out.AnonymousID)
		if injected {
			checkPseudonym(t, "DeviceID", device, out.DeviceID)
			checkPseudonym(t, "AdvertisingID", ad, out.AdvertisingID)
			if want := policy.TruncateIP(effIP); out.IP != want {
				t.Errorf("IP = %q, want TruncateIP(%q) = %q", out.IP, effIP, want)
			}
		}
		checkMaskedIP(t, out.IP)

		// Timestamp: the event's time, else the receive time, in UTC.
		want := env.ReceivedAt
		if parsed, err := event.ParseTime(ts); err == nil && !parsed.IsZero() {
			want = parsed
		}
		if !out.Timestamp.Equal(want) || out.Timestamp.Location() != time.UTC {
			t.Errorf("Timestamp = %v, want %v in UTC", out.Timestamp, want)
		}

		// The context keeps no identifying key.
		if len(out.Context) > 0 {
			var ctx map[string]any
			if err := json.Unmarshal(out.Context, &ctx); err != nil {
				t.Fatalf("clean context is not an object: %v: %s", err, out.Context)
			}
			for _, k := range []string{"ip", "userAgent", "userAgentData", "traits"} {
				if _, ok := ctx[k]; ok {
					t.Errorf("clean context keeps %q: %s", k, out.Context)
				}
			}
			if dev, ok := ctx["device"].(map[string]any); ok {
				for _, k := range []string{"id", "advertisingId", "imei", "androidId", "mac"} {
					if _, ok := dev[k]; ok {
						t.Errorf("clean context.device keeps %q: %s", k, out.Context)
					}
				}
			}
		}

		// No raw identifier of 8+ characters in the output. A needle may
		// legitimately be there when the pass-through parts (properties,
		// other context keys, fixed fields) hold it, so compare with the
		// output for the same envelope with every identifier replaced.
		repl := func(s string) string {
			if s == "" {
				return ""
			}
			return "~"
		}
		baseEnv, _, _ := fuzzEnvelope(fuzzIDs{repl(user), repl(anon), repl(device), repl(ad), repl(hw)}, signalIP, ctxIP, rawCtx, props, ts)
		baseOut, err := deidentify(t, baseEnv)
		if err != nil {
			t.Fatalf("Deidentify(baseline): %v", err)
		}
		baseJSON, err := json.Marshal(baseOut)
		if err != nil {
			t.Fatalf("marshal baseline: %v", err)
		}
		gotStrings, baseStrings := jsonStrings(t, got), jsonStrings(t, baseJSON)
		needles := map[string]string{"userId": user, "anonymousId": anon}
		if injected {
			needles["device id"], needles["advertisingId"], needles["imei/androidId/mac"] = device, ad, hw
		}
		for what, raw := range needles {
			needle := asEncoded(raw)
			if len(needle) < 8 || anyContains(baseStrings, needle) {
				continue
			}
			if anyContains(gotStrings, needle) {
				t.Errorf("raw %s %q leaks into the clean event:\n%s", what, raw, got)
			}
		}
	})
}
