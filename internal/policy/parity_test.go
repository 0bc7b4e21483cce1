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
		ring, err := NewKeyring(Key{ID: fmt.Sprintf("p%d", i), Secret: []byte("parity-test-key-0123456789abcdef-0123")})
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewProfile(fmt.Sprintf("parity%d", i), s, ring, agents)
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

// FuzzDecodeTree checks the fast decoder against encoding/json: when it
// takes a document, the tree is the one of encoding/json's value.
func FuzzDecodeTree(f *testing.F) {
	f.Add([]byte(`{"b":[1,"x",null,true,{"z":1.50,"a":"<&>"}],"a":"\u2028\u00e9","a":-0.5e+7}`))
	f.Add([]byte(` "plain\t\"\\\/\b\f\n\r" `))
	f.Add([]byte(`[{"":{}},[],-0,1E9]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, ok := decodeTree(doc)
		var v any
		err := decodeWithEncodingJSON(doc, &v)
		if !ok {
			return
		}
		if err != nil || !json.Valid(doc) {
			t.Fatalf("decodeTree took %q, which encoding/json refuses: %v", doc, err)
		}
		want := treeOf(v)
		if !reflect.DeepEqual(canonical(&got, 0), canonical(&want, 0)) {
			t.Fatalf("decodeTree(%q)\n got %v\nwant %v", doc, canonical(&got, 0), canonical(&want, 0))
		}
	})
}

// canonical is a tree's node i as nested values, independent of the order
// of the node slice.
func canonical(t *jsonTree, i int32) any {
	n := &t.nodes[i]
	switch n.kind {
	case kindObject, kindArray:
		var out []any
		for _, k := range t.children(i) {
			out = append(out, []any{t.nodes[k].key, canonical(t, k)})
		}
		return []any{string(n.kind), out}
	}
	return []any{string(n.kind), n.text}
}
