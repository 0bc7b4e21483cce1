package policy_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output of Deidentify")

// testKeyID and testKey are the fixed pseudonymization key of the tests. The
// goldens depend on them: changing either means regenerating with -update.
const testKeyID = "k1"

var testKey = []byte("consentflow-golden-test-key-0123456789abcdef") // 44 bytes

func newTestPseudonymizer(t testing.TB) *policy.Pseudonymizer {
	t.Helper()
	p, err := policy.NewPseudonymizer(testKeyID, testKey)
	if err != nil {
		t.Fatalf("NewPseudonymizer: %v", err)
	}
	return p
}

// testAgents is shared: compiling ua-parser's regexes takes a while.
var testAgents = sync.OnceValue(func() *policy.UserAgentParser {
	u, err := policy.NewUserAgentParser(1024)
	if err != nil {
		panic(err)
	}
	return u
})

// inRegionSettings is the shipped in-region profile.
var inRegionSettings = policy.Settings{IP: "truncate", DeviceIDs: true, UserAgent: "parse", Detail: "full", Undeclared: policy.UndeclaredScrub}

func newTestProfile(t testing.TB, s policy.Settings, keys ...policy.Key) *policy.Profile {
	t.Helper()
	return newDeclaredProfile(t, s, policy.Declared{}, keys...)
}

// newDeclaredProfile is newTestProfile following a catalogue.
func newDeclaredProfile(t testing.TB, s policy.Settings, declared policy.Declared, keys ...policy.Key) *policy.Profile {
	t.Helper()
	if len(keys) == 0 {
		keys = []policy.Key{{ID: testKeyID, Secret: testKey}}
	}
	ring, err := policy.NewKeyring(keys...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	p, err := policy.NewProfile("test", s, ring, testAgents(), declared)
	if err != nil {
		t.Fatalf("NewProfile: %v", err)
	}
	return p
}

// deidentify applies the in-region profile under the test key to an event
// kept for analytics.
func deidentify(t testing.TB, env event.Envelope) (event.Clean, error) {
	in, err := policy.Parse(env)
	if err != nil {
		return event.Clean{}, err
	}
	return newTestProfile(t, inRegionSettings).Deidentify(in, policy.Decision{Purposes: policy.Analytics})
}

// TestDeidentifyGolden runs Deidentify on every testdata/<case>.json (an
// event.Envelope) and compares the indented JSON of the event.Clean with
// testdata/<case>.golden. Run with -update to rewrite the goldens, then
// review the diff: no raw identifier may appear in a golden.
func TestDeidentifyGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/*.json cases")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			// The enricher only de-identifies envelopes that DecodeEnvelope
			// accepted, so every input must be one.
			if _, err := event.DecodeEnvelope(raw); err != nil {
				t.Fatalf("input is not a valid envelope: %v", err)
			}
			// Decode strictly so a typo in a testdata key fails loudly
			// instead of silently testing less.
			var env event.Envelope
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&env); err != nil {
				t.Fatalf("decode input: %v", err)
			}
			clean, err := deidentify(t, env)
			if err != nil {
				t.Fatalf("Deidentify: %v", err)
			}
			got, err := json.MarshalIndent(clean, "", "  ")
			if err != nil {
				t.Fatalf("marshal clean: %v", err)
			}
			got = append(got, '\n')

			compareGolden(t, filepath.Join("testdata", name+".golden"), got)

			// Whatever the golden says, no raw identifier may survive.
			for _, id := range rawIdentifiers(t, env) {
				if bytes.Contains(got, []byte(id)) {
					t.Errorf("output contains raw identifier %q:\n%s", id, got)
				}
			}
			// The output must be readable by the next stage.
			if _, err := event.DecodeClean(got); err != nil {
				t.Errorf("DecodeClean(output): %v", err)
			}
		})
	}
}

// forEachCase runs f as a subtest on every <dir>/<case>.json, with the
// case's name and its bytes decoded strictly into a new T (a typo in a
// testdata key fails loudly); it fails when there is no case.
func forEachCase[T any](t *testing.T, dir string, f func(t *testing.T, name string, c *T)) {
	t.Helper()
	inputs, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no %s/*.json cases (%v)", dir, err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			c := new(T)
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(c); err != nil {
				t.Fatalf("decode case: %v", err)
			}
			f(t, name, c)
		})
	}
}

// compareGolden compares got with the golden file, after rewriting it
// under -update.
func compareGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s mismatch (run with -update and review the diff)\n--- got\n%s\n--- want\n%s", golden, got, want)
	}
}

// rawIdentifiers lists the identifying values of an envelope that must not
// appear in its clean form: ids, addresses, user agents and trait values.
func rawIdentifiers(t *testing.T, env event.Envelope) []string {
	t.Helper()
	ids := []string{env.Event.UserID, env.Event.AnonymousID, env.Signals.IP, env.Signals.UserAgent}
	var ctx struct {
		IP        string            `json:"ip"`
		UserAgent string            `json:"userAgent"`
		Device    any               `json:"device"`
		Traits    map[string]string `json:"traits"`
	}
	if len(env.Event.Context) > 0 {
		if err := json.Unmarshal(env.Event.Context, &ctx); err != nil {
			t.Fatalf("testdata context: %v", err)
		}
	}
	ids = append(ids, ctx.IP, ctx.UserAgent)
	switch dev := ctx.Device.(type) {
	case string:
		ids = append(ids, dev)
	case map[string]any:
		for k, v := range dev {
			for _, id := range []string{"id", "advertisingId", "imei", "androidId", "mac"} {
				if s, ok := v.(string); ok && strings.EqualFold(k, id) {
					ids = append(ids, s)
				}
			}
		}
	}
	for _, v := range ctx.Traits {
		ids = append(ids, v)
	}
	var top map[string]string
	if len(env.Event.Traits) > 0 {
		if err := json.Unmarshal(env.Event.Traits, &top); err != nil {
			t.Fatalf("testdata traits: %v", err)
		}
	}
	for _, v := range top {
		ids = append(ids, v)
	}
	var out []string
	for _, id := range ids {
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

func TestDeidentifyFields(t *testing.T) {
	p := newTestPseudonymizer(t)
	received := time.Date(2026, 3, 14, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	base := func() event.Envelope {
		return event.Envelope{
			SchemaVersion: event.SchemaVersion,
			MessageID:     "m-1",
			ReceivedAt:    received,
			SourceID:      "src",
			Region:        "eu",
			Signals:       event.Signals{IP: "192.0.2.1", DNT: true},
			Event: event.Event{
				Type:        "track",
				Event:       "E",
				UserID:      "user-aaaaaaaa",
				AnonymousID: "anon-bbbbbbbb",
				Timestamp:   "2026-03-14T10:00:00+02:00",
			},
		}
	}

	t.Run("subject is the userId pseudonym when known", func(t *testing.T) {
		c, err := deidentify(t, base())
		if err != nil {
			t.Fatal(err)
		}
		if want := p.Pseudonym(policy.KindUser, "user-aaaaaaaa"); c.Subject != want || c.UserID != want {
			t.Errorf("Subject=%q UserID=%q, want both %q", c.Subject, c.UserID, want)
		}
		if want := p.Pseudonym(policy.KindAnonymous, "anon-bbbbbbbb"); c.AnonymousID != want {
			t.Errorf("AnonymousID=%q, want %q", c.AnonymousID, want)
		}
		if !c.Timestamp.Equal(time.Date(2026, 3, 14, 8, 0, 0, 0, time.UTC)) || c.Timestamp.Location() != time.UTC {
			t.Errorf("Timestamp=%v, want 2026-03-14T08:00:00Z in UTC", c.Timestamp)
		}
		if !c.ReceivedAt.Equal(received) || c.ReceivedAt.Location() != time.UTC {
			t.Errorf("ReceivedAt=%v, want %v in UTC", c.ReceivedAt, received)
		}
		if c.SchemaVersion != event.SchemaVersion || c.MessageID != "m-1" || c.SourceID != "src" || c.Region != "eu" || !c.DNT || c.GPC {
			t.Errorf("envelope fields not copied: %+v", c)
		}
	})

	t.Run("subject is the anonymousId pseudonym otherwise", func(t *testing.T) {
		env := base()
		env.Event.UserID = ""
		c, err := deidentify(t, env)
		if err != nil {
			t.Fatal(err)
		}
		if want := p.Pseudonym(policy.KindAnonymous, "anon-bbbbbbbb"); c.Subject != want || c.AnonymousID != want {
			t.Errorf("Subject=%q AnonymousID=%q, want both %q", c.Subject, c.AnonymousID, want)
		}
		if c.UserID != "" {
			t.Errorf("UserID=%q, want empty", c.UserID)
		}
	})

	t.Run("page name becomes the event name", func(t *testing.T) {
		env := base()
		env.Event.Type, env.Event.Event, env.Event.Name = "page", "", "Home"
		c, err := deidentify(t, env)
		if err != nil {
			t.Fatal(err)
		}
		if c.Event != "Home" {
			t.Errorf("Event=%q, want %q", c.Event, "Home")
		}
	})

	t.Run("context.ip that is not a string is dropped, signals IP used", func(t *testing.T) {
		env := base()
		env.Event.Context = json.RawMessage(`{"ip":{"v":"203.0.113.9"}}`)
		c, err := deidentify(t, env)
		if err != nil {
			t.Fatal(err)
		}
		if c.IP != "192.0.2.0" {
			t.Errorf("IP=%q, want 192.0.2.0", c.IP)
		}
		if c.Context != nil {
			t.Errorf("Context=%s, want none", c.Context)
		}
	})

	t.Run("device identifiers that are not strings are dropped", func(t *testing.T) {
		env := base()
		env.Event.Context = json.RawMessage(`{"device":{"id":12345678901,"advertisingId":{"x":"y"},"imei":356938035643809,"model":"m"}}`)
		c, err := deidentify(t, env)
		if err != nil {
			t.Fatal(err)
		}
		if c.DeviceID != "" || c.AdvertisingID != "" {
			t.Errorf("DeviceID=%q AdvertisingID=%q, want empty", c.DeviceID, c.AdvertisingID)
		}
		if got, want := string(c.Context), `{"device":{"model":"m"}}`; got != want {
			t.Errorf("Context=%s, want %s", got, want)
		}
	})

	t.Run("input is not modified", func(t *testing.T) {
		env := base()
		ctx := `{"ip":"203.0.113.9","device":{"id":"device-cccccccc"},"traits":{"email":"a@b.c"}}`
		env.Event.Context = json.RawMessage(ctx)
		env.Event.Properties = json.RawMessage(`{"a":1}`)
		if _, err := deidentify(t, env); err != nil {
			t.Fatal(err)
		}
		if string(env.Event.Context) != ctx || string(env.Event.Properties) != `{"a":1}` {
			t.Errorf("input changed: context=%s properties=%s", env.Event.Context, env.Event.Properties)
		}
	})

	t.Run("deterministic", func(t *testing.T) {
		env := base()
		env.Event.Context = json.RawMessage(`{"b":1,"a":{"z":2,"y":3},"device":{"id":"device-cccccccc"}}`)
		first, err := deidentify(t, env)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(first)
		for i := 0; i < 20; i++ {
			c, err := deidentify(t, env)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := json.Marshal(c); !bytes.Equal(a, b) {
				t.Fatalf("run %d differs:\n%s\n%s", i, a, b)
			}
		}
	})
}

func TestDeidentifyBadContext(t *testing.T) {
	for _, ctx := range []string{`[1,2]`, `"device"`, `42`, `true`, `{`, `{"device":`, `nul`} {
		t.Run(ctx, func(t *testing.T) {
			env := event.Envelope{
				SchemaVersion: event.SchemaVersion,
				MessageID:     "m",
				Event:         event.Event{Type: "page", UserID: "u", Context: json.RawMessage(ctx)},
			}
			_, err := deidentify(t, env)
			var fe *event.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want *event.FieldError", err, err)
			}
			if fe.Field != "event.context" {
				t.Errorf("Field = %q, want event.context", fe.Field)
			}
			if !errors.Is(err, event.ErrPermanent) {
				t.Errorf("errors.Is(%v, ErrPermanent) = false", err)
			}
		})
	}
}

// TestDeidentifyOutputEncodes checks that every envelope DecodeEnvelope
// accepts gives a Clean that can be JSON-encoded for the clean topic.
func TestDeidentifyOutputEncodes(t *testing.T) {
	for _, tc := range []struct {
		ts string
	}{
		{ts: "0000-01-01T12:00:00Z"},
		{ts: "9999-12-31T23:59:59.999999999Z"},
		{ts: "0001-01-01T00:00:00Z"},
		// Valid RFC 3339 in its own offset, but its UTC year is -1 / 10000:
		// Deidentify converts to UTC and json.Marshal then fails, so the
		// enricher dead-letters an event the collector accepted.
		{ts: "0000-01-01T00:30:00+01:00"},
		{ts: "9999-12-31T23:30:00-01:00"},
	} {
		t.Run(tc.ts, func(t *testing.T) {
			raw := []byte(`{"schemaVersion":1,"messageId":"m","receivedAt":"2026-01-01T00:00:00Z","event":{"type":"page","userId":"u","timestamp":"` + tc.ts + `"}}`)
			env, err := event.DecodeEnvelope(raw)
			if err != nil {
				return // rejected at the door: fine
			}
			c, err := deidentify(t, env)
			if err != nil {
				t.Fatalf("Deidentify: %v", err)
			}
			_, err = json.Marshal(c)
			if err := err; err != nil {
				t.Error(err)
			}
		})
	}
}

func TestTruncateIP(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// IPv4 keeps /24.
		{"203.0.113.77", "203.0.113.0"},
		{"192.0.2.0", "192.0.2.0"},
		{"255.255.255.255", "255.255.255.0"},
		{"0.0.0.0", "0.0.0.0"},
		{"10.1.2.3", "10.1.2.0"},
		// IPv6 keeps /48.
		{"2001:db8:85a3:1234:5678:8a2e:370:7334", "2001:db8:85a3::"},
		{"2001:0DB8:0000:0001:0000:0000:0000:0001", "2001:db8::"},
		{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8:ffff::"},
		{"::1", "::"},
		{"::", "::"},
		{"fe80::1%eth0", "fe80::"}, // the zone is an interface name: dropped
		// IPv4-mapped IPv6 is treated as the IPv4 address it carries.
		{"::ffff:198.51.100.250", "198.51.100.0"},
		{"::ffff:c633:64fa", "198.51.100.0"},
		// Anything else is not an IP address.
		{"", ""},
		{"garbage", ""},
		{"203.0.113", ""},
		{"203.0.113.256", ""},
		{"203.0.113.77/24", ""},
		{"203.0.113.77:8080", ""},
		{"[2001:db8::1]", ""},
		{" 203.0.113.77", ""},
		{"203.0.113.77 ", ""},
		{"0203.0.113.77", ""},
		{"1.2.3.4%eth0", ""},
		{"2001:db8::1::2", ""},
		{"localhost", ""},
	} {
		if got := policy.TruncateIP(tc.in); got != tc.want {
			t.Errorf("TruncateIP(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPseudonym(t *testing.T) {
	p := newTestPseudonymizer(t)

	t.Run("known answer", func(t *testing.T) {
		// printf 'user\0user-4f1c9a7e' | openssl dgst -sha256 -hmac "$key", first 16 bytes.
		const want = "k1.7e6ce34632a0960fba50295502dd29ec"
		if got := p.Pseudonym(policy.KindUser, "user-4f1c9a7e"); got != want {
			t.Errorf("Pseudonym = %q, want %q", got, want)
		}
	})

	t.Run("format", func(t *testing.T) {
		got := p.Pseudonym(policy.KindDevice, "device-1")
		hexPart, ok := strings.CutPrefix(got, testKeyID+".")
		if !ok {
			t.Fatalf("Pseudonym = %q, want prefix %q", got, testKeyID+".")
		}
		if b, err := hex.DecodeString(hexPart); err != nil || len(b) != 16 || strings.ToLower(hexPart) != hexPart {
			t.Errorf("Pseudonym = %q, want 32 lower-case hex digits after the key id", got)
		}
	})

	t.Run("deterministic", func(t *testing.T) {
		p2 := newTestPseudonymizer(t)
		for _, v := range []string{"a", "user-1", "356938035643809", "é\x00\xff"} {
			if a, b := p.Pseudonym(policy.KindUser, v), p2.Pseudonym(policy.KindUser, v); a != b {
				t.Errorf("Pseudonym(%q) = %q then %q", v, a, b)
			}
		}
	})

	t.Run("differs across kinds", func(t *testing.T) {
		seen := map[string]string{}
		for _, kind := range []string{policy.KindUser, policy.KindAnonymous, policy.KindDevice, policy.KindAdvertising} {
			got := p.Pseudonym(kind, "same-value-123")
			if other, dup := seen[got]; dup {
				t.Errorf("kinds %q and %q share pseudonym %q", kind, other, got)
			}
			seen[got] = kind
		}
	})

	t.Run("kind and value do not run together", func(t *testing.T) {
		// The separator keeps ("user","x") apart from ("use","rx").
		if p.Pseudonym("user", "x") == p.Pseudonym("use", "rx") {
			t.Error("kind/value boundary is ambiguous")
		}
	})

	t.Run("differs across values", func(t *testing.T) {
		if p.Pseudonym(policy.KindUser, "user-1") == p.Pseudonym(policy.KindUser, "user-2") {
			t.Error("different values share a pseudonym")
		}
	})

	t.Run("differs across keys", func(t *testing.T) {
		other := bytes.Clone(testKey)
		other[0] ^= 1
		q, err := policy.NewPseudonymizer(testKeyID, other)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := p.Pseudonym(policy.KindUser, "user-1"), q.Pseudonym(policy.KindUser, "user-1"); a == b {
			t.Errorf("two keys give the same pseudonym %q", a)
		}
	})

	t.Run("carries its key id", func(t *testing.T) {
		q, err := policy.NewPseudonymizer("export-2026_04", testKey)
		if err != nil {
			t.Fatal(err)
		}
		a, b := p.Pseudonym(policy.KindUser, "user-1"), q.Pseudonym(policy.KindUser, "user-1")
		if !strings.HasPrefix(b, "export-2026_04.") {
			t.Errorf("Pseudonym = %q, want prefix export-2026_04.", b)
		}
		// Same key bytes: only the key id differs.
		if a[len("k1."):] != b[len("export-2026_04."):] {
			t.Errorf("same key gives different digests: %q vs %q", a, b)
		}
	})

	t.Run("empty value", func(t *testing.T) {
		for _, kind := range []string{policy.KindUser, policy.KindAnonymous, policy.KindDevice, policy.KindAdvertising} {
			if got := p.Pseudonym(kind, ""); got != "" {
				t.Errorf("Pseudonym(%q, \"\") = %q, want empty", kind, got)
			}
		}
	})

	t.Run("key is copied", func(t *testing.T) {
		key := bytes.Clone(testKey)
		q, err := policy.NewPseudonymizer(testKeyID, key)
		if err != nil {
			t.Fatal(err)
		}
		before := q.Pseudonym(policy.KindUser, "user-1")
		for i := range key {
			key[i] = 0
		}
		if after := q.Pseudonym(policy.KindUser, "user-1"); after != before {
			t.Error("changing the caller's key slice changed the pseudonyms")
		}
	})
}

func TestNewPseudonymizer(t *testing.T) {
	key32 := bytes.Repeat([]byte{7}, policy.MinKeyBytes)
	for _, tc := range []struct {
		name  string
		keyID string
		key   []byte
		ok    bool
	}{
		{"minimum key", "k1", key32, true},
		{"long key", "k1", bytes.Repeat([]byte{7}, 64), true},
		{"key id with - and _", "eu-2026_01", key32, true},
		{"32 char key id", strings.Repeat("a", 32), key32, true},
		{"nil key", "k1", nil, false},
		{"empty key", "k1", []byte{}, false},
		{"31 byte key", "k1", key32[:policy.MinKeyBytes-1], false},
		{"empty key id", "", key32, false},
		{"33 char key id", strings.Repeat("a", 33), key32, false},
		{"dot in key id", "k.1", key32, false},
		{"space in key id", "k 1", key32, false},
		{"slash in key id", "k/1", key32, false},
		{"newline after key id", "k1\n", key32, false},
		{"non-ASCII key id", "clé", key32, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.NewPseudonymizer(tc.keyID, tc.key)
			if tc.ok {
				if err != nil || p == nil {
					t.Fatalf("NewPseudonymizer(%q, %d bytes) = %v, %v; want ok", tc.keyID, len(tc.key), p, err)
				}
				return
			}
			if err == nil || p != nil {
				t.Fatalf("NewPseudonymizer(%q, %d bytes) = %v, %v; want an error", tc.keyID, len(tc.key), p, err)
			}
			if len(tc.key) > 0 && bytes.Contains([]byte(err.Error()), tc.key) {
				t.Errorf("error %q reveals the key", err)
			}
		})
	}
}

// TestAppendDeidentifiedIsDeidentify: the enricher's way, through reused
// memory, writes exactly what Deidentify returns, encoded, for every golden
// case in turn and again in reverse, so each case follows others in the
// same buffers.
func TestAppendDeidentifiedIsDeidentify(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no testdata/*.json cases (%v)", err)
	}
	profile := newTestProfile(t, inRegionSettings)
	d := policy.Decision{Purposes: policy.Analytics}
	order := append(slices.Clone(inputs), inputs...)
	slices.Reverse(order[len(inputs):])
	var outputs [][]byte
	for _, path := range order {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		env, err := event.DecodeEnvelope(raw)
		if err != nil {
			t.Fatal(err)
		}
		in, err := policy.Parse(env)
		if err != nil {
			t.Fatal(err)
		}
		clean, err := profile.Deidentify(in, d)
		if err != nil {
			t.Fatal(err)
		}
		got, subject, err := profile.AppendDeidentified([]byte("prefix:"), in, d, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := clean.AppendJSON([]byte("prefix:")); !bytes.Equal(got, want) || subject != clean.Subject {
			t.Fatalf("%s: AppendDeidentified wrote\n%s (subject %s)\nwant\n%s (subject %s)", path, got, subject, want, clean.Subject)
		}
		outputs = append(outputs, got)
	}
	// Earlier outputs are not the reused memory's: they stay as written.
	for i := range inputs {
		if j := len(order) - 1 - i; !bytes.Equal(outputs[i], outputs[j]) {
			t.Fatalf("%s: output changed after later events (%s vs %s)", inputs[i], outputs[i], outputs[j])
		}
	}
}
