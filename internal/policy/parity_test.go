package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/event"
)

// parityProfiles are profiles that between them take every path of
// de-identification: both details, drop_fields at every depth of the
// context and the properties, and a configured scrub pattern.
func parityProfiles(t testing.TB) []*Profile {
	t.Helper()
	agents, err := NewUserAgentParser(64)
	if err != nil {
		t.Fatal(err)
	}
	var profiles []*Profile
	for i, s := range []Settings{
		{IP: "truncate", DeviceIDs: true, UserAgent: "parse", Detail: "full"},
		{IP: "drop", UserAgent: "parse", Detail: "coarse"},
		{IP: "truncate", DeviceIDs: true, UserAgent: "drop", Detail: "full",
			DropFields: []string{"context.app", "context.device.model", "context.consent.categoryPreferences.ads",
				"context.locale.x", "properties.email", "properties.user.name", "properties.a.b.c", "properties.a.b.d.e"},
			ScrubPatterns: []ScrubPattern{{"sku", `sku-\d+`}, {"word", `(?i)secret`}}},
		{IP: "drop", UserAgent: "drop", Detail: "full",
			DropFields: []string{"context.consent.categoryPreferences", "context.library.name", "context.library.version",
				"context.page.url", "context.page.path", "context.timezone", "properties.x", "properties.x.y"}},
		{IP: "truncate", UserAgent: "parse", Detail: "coarse",
			DropFields: []string{"context.consent", "context.os", "context.app.name", "properties.a", "properties.a.b"}},
	} {
		s.Undeclared = UndeclaredScrub // what the reference does, with no catalogue
		ring, err := NewKeyring(Key{ID: fmt.Sprintf("p%d", i), Secret: []byte("parity-test-key-0123456789abcdef-0123")})
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewProfile(fmt.Sprintf("parity%d", i), s, ring, agents, Declared{})
		if err != nil {
			t.Fatal(err)
		}
		profiles = append(profiles, p)
	}
	return profiles
}

// checkParity compares Parse, the consent the event carries, its raw
// identifiers, Deidentify under every parity profile and Export with the
// map-based implementation they replaced: the output must be the same
// bytes.
func checkParity(t *testing.T, profiles []*Profile, env event.Envelope) {
	t.Helper()
	in, err := Parse(env)
	old, oldErr := legacyParse(env)
	if (err == nil) != (oldErr == nil) || err != nil && err.Error() != oldErr.Error() {
		t.Fatalf("Parse error %v, was %v\ncontext %q\nproperties %q", err, oldErr, env.Event.Context, env.Event.Properties)
	}
	if err != nil {
		var fe *event.FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("Parse error %v is not a FieldError", err)
		}
		return
	}
	if got, want := in.CarriedPreferences(), old.CarriedPreferences(); !reflect.DeepEqual(got, want) {
		t.Fatalf("CarriedPreferences = %v, was %v\ncontext %q", got, want, env.Event.Context)
	}
	if got, want := in.RawIdentifiers(), old.RawIdentifiers(); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("RawIdentifiers = %v, was %v", got, want)
	}
	if in.ip != old.ip || in.ua != old.ua || !in.At.Equal(old.At) {
		t.Fatalf("ip, ua, at = %q %q %v, was %q %q %v", in.ip, in.ua, in.At, old.ip, old.ua, old.At)
	}
	for _, d := range []Decision{{Purposes: Analytics | Marketing, Export: true}, {Purposes: Personalization}} {
		for _, p := range profiles {
			c, err := p.Deidentify(in, d)
			oc, oldErr := p.legacyDeidentify(old, d)
			if err != nil || oldErr != nil {
				t.Fatalf("%s: Deidentify error %v, was %v", p.Name, err, oldErr)
			}
			got, want := c.AppendJSON(nil), oc.AppendJSON(nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: Deidentify\n got %s\nwant %s\ncontext %q\nproperties %q", p.Name, got, want, env.Event.Context, env.Event.Properties)
			}
			if (c.Context == nil) != (oc.Context == nil) || (c.Properties == nil) != (oc.Properties == nil) {
				t.Fatalf("%s: nil context or properties differ: %q %q, was %q %q", p.Name, c.Context, c.Properties, oc.Context, oc.Properties)
			}
			x, err := Export(in, d, p)
			ox, oldErr := legacyExport(old, d, p)
			if (err == nil) != (oldErr == nil) || err != nil && err.Error() != oldErr.Error() ||
				!bytes.Equal(x.Key(), ox.Key()) || !bytes.Equal(x.Value(), ox.Value()) {
				t.Fatalf("%s: Export %s %s %v, was %s %s %v", p.Name, x.Key(), x.Value(), err, ox.Key(), ox.Value(), oldErr)
			}
		}
	}
}

func parityEnvelope(user, anon, ip, ua string, trust bool, ctx, props []byte) event.Envelope {
	env := event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: "parity-message", ReceivedAt: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC),
		SourceID: "parity", Region: "cn", Signals: event.Signals{IP: ip, UserAgent: ua, TrustContextIP: trust},
		Event: event.Event{Type: "track", Event: "Parity", UserID: user, AnonymousID: anon, Timestamp: "2026-03-14T08:59:59.5Z"}}
	if len(ctx) > 0 {
		env.Event.Context = ctx
	}
	if len(props) > 0 {
		env.Event.Properties = props
	}
	return env
}

// TestParityGoldenInputs runs the parity check on every golden input.
func TestParityGoldenInputs(t *testing.T) {
	profiles := parityProfiles(t)
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	decisions, _ := filepath.Glob(filepath.Join("testdata", "decisions", "*.json"))
	for _, path := range append(inputs, decisions...) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var env event.Envelope
		var c struct{ Envelope *event.Envelope }
		if json.Unmarshal(raw, &c) == nil && c.Envelope != nil {
			env = *c.Envelope
		} else if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		t.Run(filepath.Base(path), func(t *testing.T) { checkParity(t, profiles, env) })
	}
}

// FuzzParity compares de-identification with the map-based one it
// replaced, byte for byte, on any context and properties.
func FuzzParity(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, path := range inputs {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		var env event.Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			f.Fatal(err)
		}
		f.Add(env.Event.UserID, env.Event.AnonymousID, env.Signals.IP, env.Signals.UserAgent, env.Signals.TrustContextIP,
			[]byte(env.Event.Context), []byte(env.Event.Properties))
	}
	f.Add("u-1", "", "1.2.3.4", "", true, []byte(`{"ip":"5.6.7.8","consent":{"categoryPreferences":{"ads":true,"ads":1,"a":false}},"app":{"name":"x","name":2}}`),
		[]byte(`{"a":{"b":{"c":1,"d":{"e":"sku-12"}}},"email":"x@y.cn","user":{"name":"n"},"x":[{"y":1}]}`))
	f.Add("", "a-1", "", "", false, []byte(`{"page":{"url":"mailto:a@b.c","path":"#x","referrer":"https://h/p?q#f","title":"\u00e9\n"},"locale":{"x":1}}`),
		[]byte(`[1,"13812345678",{"b":true},null]`))
	f.Add("\xff", "a", "::1", "\u2028", false, []byte(`{"a":"\ud800"} x`), []byte(`{"a":"\xff"}  `))
	f.Add("u", "a", "", "", false, []byte(` null `), []byte(`{"a":1}{"b":2}`))
	profiles := parityProfiles(f)
	f.Fuzz(func(t *testing.T, user, anon, ip, ua string, trust bool, ctx, props []byte) {
		// Parsing long user agents is slow and the same in both.
		ua = ua[:min(len(ua), 64)]
		checkParity(t, profiles, parityEnvelope(user, anon, ip, ua, trust, ctx, props))
	})
}

// checkSameParsed compares two Parsed of one envelope through everything
// the enricher reads of them.
func checkSameParsed(t *testing.T, profiles []*Profile, raw []byte, in, want *Parsed) {
	t.Helper()
	if !reflect.DeepEqual(in.Env, want.Env) || in.Env.ReceivedAt.Location() != want.Env.ReceivedAt.Location() {
		t.Fatalf("%q: envelope\n got %#v\nwant %#v", raw, in.Env, want.Env)
	}
	if !in.At.Equal(want.At) || in.ip != want.ip || in.ua != want.ua || in.hasProps != want.hasProps {
		t.Fatalf("%q: at, ip, ua, hasProps %v %q %q %v, want %v %q %q %v", raw, in.At, in.ip, in.ua, in.hasProps, want.At, want.ip, want.ua, want.hasProps)
	}
	if got, w := in.CarriedPreferences(), want.CarriedPreferences(); !reflect.DeepEqual(got, w) {
		t.Fatalf("%q: CarriedPreferences = %v, want %v", raw, got, w)
	}
	if got, w := in.RawIdentifiers(), want.RawIdentifiers(); !reflect.DeepEqual(got, w) {
		t.Fatalf("%q: RawIdentifiers = %v, want %v", raw, got, w)
	}
	d := Decision{Purposes: Analytics, Export: true}
	for _, p := range profiles {
		c, err := p.Deidentify(in, d)
		wc, wantErr := p.Deidentify(want, d)
		if err != nil || wantErr != nil {
			t.Fatalf("%s: Deidentify error %v, want %v", p.Name, err, wantErr)
		}
		if got, w := c.AppendJSON(nil), wc.AppendJSON(nil); !bytes.Equal(got, w) {
			t.Fatalf("%s: %q: Deidentify\n got %s\nwant %s", p.Name, raw, got, w)
		}
	}
}

// FuzzParseRaw checks the one-pass decoding of raw records against
// event.DecodeEnvelope and Parse: what ParseRaw takes they take too, with
// the same result.
func FuzzParseRaw(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, path := range inputs {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		var env event.Envelope
		if json.Unmarshal(raw, &env) == nil {
			f.Add(env.AppendJSON(nil))
		}
	}
	f.Add([]byte(`{"schemaVersion":1,"messageId":"m","receivedAt":"2026-03-14T09:30:00.5Z","sourceId":"s","region":"cn",` +
		`"signals":{"dnt":true,"gpc":false,"ip":"1.2.3.4","userAgent":"ua","trustContextIp":true},` +
		`"event":{"type":"track","event":"E","userId":"u","anonymousId":"a","timestamp":"2026-03-14T09:30:00+08:00",` +
		`"context":{"ip":"5.6.7.8","device":{"id":"d"}},"properties":{"a":[1,{"b":"x@y.cn"}]},"traits":null,"integrations":{}}}`))
	f.Add([]byte(`{"schemaVersion":1,"messageId":"m","receivedAt":"2026-03-14T09:30:00Z","event":{"type":"page","userId":"u","context":null,"properties":null}}`))
	f.Add([]byte(`{"schemaVersion":1,"messageId":"m","receivedAt":"2026-03-14T09:30:00Z","messageId":"n","event":{"type":"page","userId":"u"}}`))
	f.Add([]byte(`{"schemaversion":1,"messageId":"m","receivedAt":"2026-03-14T9:30:00Z","event":{"type":"page","userId":"\u00e9"}}`))
	profiles := parityProfiles(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, ok := ParseRaw(raw)
		env, err := event.DecodeEnvelope(raw)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("ParseRaw took %q, which DecodeEnvelope refuses: %v", raw, err)
		}
		want, err := Parse(env)
		if err != nil {
			t.Fatalf("ParseRaw took %q, which Parse refuses: %v", raw, err)
		}
		checkSameParsed(t, profiles, raw, in, want)
	})
}

// TestParseRawTakesCollectorOutput checks that the one-pass decoding is
// the one taken for what the collector writes.
func TestParseRawTakesCollectorOutput(t *testing.T) {
	profiles := parityProfiles(t)
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, path := range inputs {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var env event.Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatal(err)
		}
		env.ReceivedAt = env.ReceivedAt.UTC()
		rec := env.AppendJSON(nil)
		decoded, err := event.DecodeEnvelope(rec)
		if err != nil {
			continue // a case of Deidentify's alone
		}
		in, ok := ParseRaw(rec)
		if !ok {
			t.Errorf("%s: ParseRaw refused %s", path, rec)
			continue
		}
		want, err := Parse(decoded)
		if err != nil {
			t.Fatal(err)
		}
		checkSameParsed(t, profiles, rec, in, want)
	}
}

// TestReleaseReuse checks that a released Parsed's memory serves the next
// records without changing what was taken from it or what they give.
func TestReleaseReuse(t *testing.T) {
	profiles := parityProfiles(t)
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	var recs [][]byte
	for _, path := range inputs {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var env event.Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatal(err)
		}
		env.ReceivedAt = env.ReceivedAt.UTC()
		recs = append(recs, env.AppendJSON(nil))
	}
	d := Decision{Purposes: Analytics, Export: true}
	outputs := func(raw []byte) (*Parsed, []string) {
		in, ok := ParseRaw(raw)
		if !ok {
			env, err := event.DecodeEnvelope(raw)
			if err != nil {
				return nil, nil
			}
			if in, err = Parse(env); err != nil {
				return nil, nil
			}
		}
		var out []string
		for _, p := range profiles {
			c, err := p.Deidentify(in, d)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(c.AppendJSON(nil)), c.Subject, in.Env.MessageID)
		}
		return in, out
	}
	want := map[int][]string{}
	for i, raw := range recs {
		_, want[i] = outputs(raw)
	}
	for round := 0; round < 3; round++ {
		for i, raw := range recs {
			in, got := outputs(raw)
			if in == nil {
				continue
			}
			in.Release()
			in.Release() // twice is harmless
			if !reflect.DeepEqual(got, want[i]) {
				t.Fatalf("record %d after releases: %q, want %q", i, got, want[i])
			}
		}
	}
}
