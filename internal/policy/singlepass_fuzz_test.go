package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/catalogue"
	"github.com/consentflow/consentflow/internal/event"
)

// singlePassProfiles are the profiles FuzzSinglePass compares under: the
// golden catalogue in region and abroad (drop_fields under properties and
// context, a scrub pattern), and the parity profiles, which declare
// nothing.
func singlePassProfiles(t testing.TB) []*Profile {
	t.Helper()
	cat, err := catalogue.Load(filepath.Join("testdata", "catalogue.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	agents, err := NewUserAgentParser(64)
	if err != nil {
		t.Fatal(err)
	}
	drops := []string{"properties.internal_note", "properties.shipping.city", "context.page.title", "context.app.version",
		"context.consent.categoryPreferences.ads"}
	patterns := []ScrubPattern{{Name: "order_ref", Pattern: `ORD-\d{6}`}}
	var profiles []*Profile
	for i, c := range []struct {
		s      Settings
		export bool
	}{
		{Settings{IP: "truncate", DeviceIDs: true, UserAgent: "parse", Detail: "full", Undeclared: UndeclaredScrub, DropFields: drops, ScrubPatterns: patterns}, false},
		{Settings{IP: "truncate", DeviceIDs: true, UserAgent: "drop", Detail: "full", Undeclared: UndeclaredDrop, DropFields: drops}, false},
		{Settings{IP: "drop", UserAgent: "parse", Detail: "coarse", DropFields: drops, ScrubPatterns: patterns}, true},
		{Settings{IP: "drop", UserAgent: "drop", Detail: "full", DropFields: drops}, true},
	} {
		ring, err := NewKeyring(Key{ID: fmt.Sprintf("s%d", i), Secret: []byte("single-pass-test-key-0123456789abcdef")})
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewProfile(fmt.Sprintf("singlepass%d", i), c.s, ring, agents, Declared{Catalogue: cat, Export: c.export})
		if err != nil {
			t.Fatal(err)
		}
		profiles = append(profiles, p)
	}
	return append(profiles, parityProfiles(t)...)
}

// jsonGen writes random JSON driven by the fuzzer's bytes: the names the
// catalogue and the context allow-list know, repeated names, escapes,
// non-ASCII text, personal data, arrays and nesting, and now and then
// what the fast path leaves to encoding/json (escaped surrogates, invalid
// UTF-8).
type jsonGen struct {
	in []byte
	b  []byte
}

func (g *jsonGen) pick(n int) int {
	if len(g.in) == 0 {
		return 0
	}
	v := int(g.in[0]) % n
	g.in = g.in[1:]
	return v
}

var (
	genKeys = []string{"orderId", "revenue", "currency", "contact", "shipping", "city", "street", "geo", "lat", "lng", "products",
		"sku", "quantity", "tags", "gift", "coupon", "note", "page", "order", "amount", "path", "title", "email", "plan", "age",
		"internal_note", "phone", "client_ip", "buyer@example.com", `order\u0049d`, "é", "", "x", "y", "ads", "analytics",
		"name", "version", "model", "url", "referrer", "width", "id", "imei", `\"q\\`, "categoryPreferences", "k\u2028"}
	genContextKeys = []string{"app", "campaign", "consent", "device", "library", "locale", "network", "os", "page", "screen",
		"timezone", "ip", "userAgent", "traits", "location", `dev\u0069ce`, "Device"}
	genStrings = []string{"", "plain", "wang.1000@qq.com", "call 13812345678 now", "ORD-123456", "https://shop.example.cn/p?q=a@b.c#f",
		"/path?x=1#y", "mailto:a@b.c", `\u00e9\n\t\"\\\/`, "中文 text", `\u2028<&>`, "1.2.4.8", "2001:da8::1", "356938035643809",
		"a4:83:e7:12:34:56", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)", "dev-5f3e9a1c", "😀", "x1.0123", "sku-12"}
	// genRare are strings the fast path leaves to encoding/json.
	genRare    = []string{`\ud83d\ude00`, `\ud800`, "\xff\xfe", `\uDC00x`}
	genNumbers = []string{"0", "1", "-1", "459.5", "-0.5e3", "1E9", "13812345678", "12", "31.2304", "1e-2", "356938035643809"}
)

func (g *jsonGen) value(depth int) {
	switch k := g.pick(40); {
	case k == 0:
		g.b = append(g.b, '"')
		g.b = append(g.b, genRare[g.pick(len(genRare))]...)
		g.b = append(g.b, '"')
	case k < 18 || depth > 4:
		g.b = append(g.b, '"')
		g.b = append(g.b, genStrings[g.pick(len(genStrings))]...)
		g.b = append(g.b, '"')
	case k < 26:
		g.b = append(g.b, genNumbers[g.pick(len(genNumbers))]...)
	case k < 32:
		g.b = append(g.b, []string{"true", "false", "null"}[g.pick(3)]...)
	case k < 36:
		g.object(depth+1, genKeys)
	default:
		g.b = append(g.b, '[')
		for i, n := 0, g.pick(4); i < n; i++ {
			if i > 0 {
				g.b = append(g.b, ',')
			}
			g.value(depth + 1)
		}
		g.b = append(g.b, ']')
	}
}

func (g *jsonGen) object(depth int, keys []string) {
	g.b = append(g.b, '{')
	var prev string
	for i, n := 0, g.pick(7); i < n; i++ {
		if i > 0 {
			g.b = append(g.b, ',')
		}
		if g.pick(4) == 0 {
			g.b = append(g.b, ' ')
		}
		key := keys[g.pick(len(keys))]
		if i > 0 && g.pick(4) == 0 {
			key = prev // a repeated name: the last counts
		}
		prev = key
		g.b = append(g.b, '"')
		g.b = append(g.b, key...)
		g.b = append(g.b, `":`...)
		g.value(depth)
	}
	g.b = append(g.b, '}')
}

// context writes a context: the allow-list's keys, with objects of the
// keys kept in them, device identifiers and consent categories.
func (g *jsonGen) context() {
	g.b = append(g.b, '{')
	var prev string
	for i, n := 0, g.pick(12); i < n; i++ {
		if i > 0 {
			g.b = append(g.b, ',')
		}
		key := genContextKeys[g.pick(len(genContextKeys))]
		if i > 0 && g.pick(4) == 0 {
			key = prev
		}
		prev = key
		g.b = append(g.b, '"')
		g.b = append(g.b, key...)
		g.b = append(g.b, `":`...)
		switch {
		case key == "consent" && g.pick(4) != 0:
			g.b = append(g.b, `{"categoryPreferences":`...)
			g.object(5, []string{"analytics", "ads", "functional", "a@b.cn", "ads", strings.Repeat("x", 65), `\u0061ds`})
			g.b = append(g.b, '}')
		case g.pick(3) == 0:
			g.value(0)
		default:
			var keys []string
			for _, a := range contextAllowList {
				keys = append(keys, a.keys...)
			}
			g.object(5, append(keys, "advertisingId", "id", "imei", "androidId", "mac", "token", "x"))
		}
	}
	g.b = append(g.b, '}')
}

// singlePassEvents are the events the fuzzer chooses from: declared ones
// (for their source or not), undeclared ones, pages and identifies.
var singlePassEvents = []struct{ typ, name, source string }{
	{"track", "Order Completed", "web"}, {"track", "Refund Issued", "backend"}, {"track", "Refund Issued", "web"},
	{"track", "Mystery", "web"}, {"page", "Home", "web"}, {"page", "", "web"}, {"identify", "", "backend"}, {"track", "", "web"},
}

// FuzzSinglePass compares the single-pass reading with encoding/json's
// (checkSinglePass) on generated records: what ParseRaw makes of them, the
// consent they carry, their raw identifiers, each profile's output byte
// for byte, its violations and subject, and the gate's decision. The tree
// the single pass replaced was compared the same way until the two were
// proven equal; it is gone, so that every rule is written once.
//
// go test -run '^$' -fuzz FuzzSinglePass ./internal/policy/
func FuzzSinglePass(f *testing.F) {
	f.Add([]byte("seed"), uint8(0), true, uint16(0), uint8(0))
	f.Add([]byte{7, 7, 7, 3, 9, 1, 200, 5, 6, 6, 6, 6, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, uint8(1), false, uint16(3), uint8(0))
	f.Add([]byte{250, 5, 7, 7, 7, 7, 7, 7, 40, 41, 42, 43, 44, 45}, uint8(4), true, uint16(0), uint8(0))
	f.Add([]byte{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, uint8(6), true, uint16(77), uint8('"'))
	f.Add([]byte{1, 2, 3}, uint8(0), false, uint16(2), uint8(1))
	profiles := singlePassProfiles(f)
	f.Fuzz(func(t *testing.T, in []byte, ev uint8, trust bool, at uint16, with uint8) {
		g := jsonGen{in: in}
		e := singlePassEvents[int(ev)%len(singlePassEvents)]
		env := event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: "m-1", ReceivedAt: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC),
			SourceID: e.source, Region: "cn", Signals: event.Signals{IP: "1.2.4.8", UserAgent: "Mozilla/5.0 (Windows NT 10.0)", TrustContextIP: trust},
			Event: event.Event{Type: e.typ, UserID: "user-0012345", AnonymousID: "anon-8c1f", Timestamp: "2026-03-14T08:59:59.5Z"}}
		if e.typ == "page" {
			env.Event.Name = e.name
		} else {
			env.Event.Event = e.name
		}
		g.context()
		env.Event.Context = bytes.Clone(g.b)
		g.b = g.b[:0]
		g.object(0, genKeys)
		env.Event.Properties = bytes.Clone(g.b)
		if e.typ == "identify" {
			g.b = g.b[:0]
			g.object(0, genKeys)
			env.Event.Traits = bytes.Clone(g.b)
		}
		raw := env.AppendJSON(nil)
		switch {
		case with == 1:
			// Cut short: refusals.
			raw = raw[:len(raw)-1-int(at)%len(raw)]
		case with != 0:
			// A byte changed: refusals and the slow path.
			raw[int(at)%len(raw)] = with
		}
		checkSinglePass(t, profiles, raw)
	})
}

// checkSinglePass reads raw with the single pass (ParseRaw) and as
// encoding/json reads it (DecodeEnvelope, then Parse, whose canonical
// re-encoding takes no shortcut of the single pass: sorted names, no
// repeats, no escapes but its own), and compares all they give. The
// writers are the same; what differs is the reading.
func checkSinglePass(t *testing.T, profiles []*Profile, raw []byte) {
	t.Helper()
	in, fast := ParseRaw(raw)
	env, err := event.DecodeEnvelope(raw)
	switch {
	case err != nil && fast:
		t.Fatalf("%q: ParseRaw took what DecodeEnvelope refuses: %v", raw, err)
	case err != nil || !fast:
		return // the enricher reads it the slow way, which is the reference
	}
	if asIs, err := Parse(env); err != nil || !reflect.DeepEqual(in.Env, asIs.Env) {
		t.Fatalf("%q: parsed %#v, DecodeEnvelope and Parse %#v %v", raw, in.Env, asIs.Env, err)
	}
	// Parse takes what the scanner validates as it is: for a reading of
	// encoding/json's own, its parts are written again from its values.
	canon := env
	for _, part := range []*json.RawMessage{&canon.Event.Context, &canon.Event.Properties, &canon.Event.Traits} {
		var v any
		if len(*part) == 0 || decodeWithEncodingJSON(*part, &v) != nil {
			continue
		}
		if *part, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := Parse(canon)
	if err != nil {
		t.Fatalf("%q: ParseRaw took what Parse refuses: %v", raw, err)
	}
	ref.Env = env // the same envelope, but for the parts written again
	if !reflect.DeepEqual(in.Env, ref.Env) || !in.At.Equal(ref.At) || in.ip != ref.ip || in.ua != ref.ua || in.hasProps != ref.hasProps {
		t.Fatalf("%q: parsed\n got %#v %v %q %q\nwant %#v %v %q %q", raw, in.Env, in.At, in.ip, in.ua, ref.Env, ref.At, ref.ip, ref.ua)
	}
	if got, want := in.CarriedPreferences(), ref.CarriedPreferences(); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: CarriedPreferences = %v, reference %v", raw, got, want)
	}
	if got, want := in.RawIdentifiers(), ref.RawIdentifiers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: RawIdentifiers = %v, reference %v", raw, got, want)
	}
	for _, d := range []Decision{{Purposes: Analytics | Marketing, Export: true}, {Purposes: Personalization, Export: true}} {
		for _, p := range profiles {
			var violations, refViolations []Violation
			out, subject, err := p.AppendDeidentified(nil, in, d, &violations)
			want, refSubject, refErr := p.AppendDeidentified(nil, ref, d, &refViolations)
			if err != nil || refErr != nil {
				t.Fatalf("%s: %q: Deidentify error %v, reference %v", p.Name, raw, err, refErr)
			}
			if !bytes.Equal(out, want) || subject != refSubject {
				t.Fatalf("%s: %q: Deidentify\n got %s %s\nwant %s %s", p.Name, raw, out, subject, want, refSubject)
			}
			if !reflect.DeepEqual(violations, refViolations) {
				t.Fatalf("%s: %q: violations %v, reference %v", p.Name, raw, violations, refViolations)
			}
			x, err := Export(in, d, p)
			rx, refErr := Export(ref, d, p)
			if (err == nil) != (refErr == nil) || err != nil && err.Error() != refErr.Error() ||
				!bytes.Equal(x.Key(), rx.Key()) || !bytes.Equal(x.Value(), rx.Value()) {
				t.Fatalf("%s: %q: Export %s %s %v, reference %s %s %v", p.Name, raw, x.Key(), x.Value(), err, rx.Key(), rx.Value(), refErr)
			}
		}
	}
}
