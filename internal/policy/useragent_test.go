package policy_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// chromeUA is a desktop Chrome user agent.
const chromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"

// longUA is a 29 KB user agent whose first event.MaxUserAgentBytes say
// Chrome and whose rest says Edge (Edge's rule comes first), so what
// is generalized shows what was read.
var longUA = func() string {
	head := chromeUA + " " + strings.Repeat("x", event.MaxUserAgentBytes-len(chromeUA)-1)
	return head + " Edg/120.0.2210.91 " + strings.Repeat("y", 29<<10)
}()

var chrome = policy.Agent{Browser: "Chrome", BrowserVersion: "120", OS: "Windows", OSVersion: "10", DeviceClass: "desktop"}

// uaEnvelope is a track event kept for analytics whose user agent is
// context.userAgent, or the request's when ctxUA is "".
func uaEnvelope(signalsUA, ctxUA string) event.Envelope {
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	ctx, _ := json.Marshal(map[string]string{"userAgent": ctxUA})
	if ctxUA == "" {
		ctx = []byte(`{}`)
	}
	return event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: "m-1", ReceivedAt: at, SourceID: "web", Region: "cn",
		Signals: event.Signals{IP: "1.2.4.8", UserAgent: signalsUA},
		Event:   event.Event{Type: "track", Event: "Viewed", AnonymousID: "a-1", Timestamp: at.Format(time.RFC3339Nano), Context: ctx}}
}

// TestUserAgentCut: a 29 KB user agent, in context.userAgent (which the
// collector does not cut) or in signals (an envelope from elsewhere), is
// generalized from its first event.MaxUserAgentBytes, and the event says
// it was cut; one at the limit is read whole.
func TestUserAgentCut(t *testing.T) {
	profile := newTestProfile(t, inRegionSettings)
	for _, tc := range []struct {
		name          string
		env           event.Envelope
		cut, unparsed bool
		want          policy.Agent
	}{
		{"context", uaEnvelope("curl/8.0", longUA), true, false, chrome},
		{"signals", uaEnvelope(longUA, ""), true, false, chrome},
		{"at the limit", uaEnvelope("", longUA[:event.MaxUserAgentBytes]), false, false, chrome},
		{"short", uaEnvelope("", chromeUA), false, false, chrome},
	} {
		// Both readings: the one-pass reader and the one of DecodeEnvelope.
		fast, ok := policy.ParseRaw(tc.env.AppendJSON(nil))
		if !ok {
			t.Fatalf("%s: ParseRaw refused the envelope", tc.name)
		}
		slow, err := policy.Parse(tc.env)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range []*policy.Parsed{fast, slow} {
			if in.UserAgentCut() != tc.cut || in.UserAgentUnparsed() != tc.unparsed {
				t.Errorf("%s: UserAgentCut %v, UserAgentUnparsed %v; want %v, %v", tc.name, in.UserAgentCut(), in.UserAgentUnparsed(), tc.cut, tc.unparsed)
			}
			c, err := profile.Deidentify(in, policy.Decision{Purposes: policy.Analytics})
			if err != nil {
				t.Fatal(err)
			}
			got := policy.Agent{Browser: c.Browser, BrowserVersion: c.BrowserVersion, OS: c.OS, OSVersion: c.OSVersion, DeviceClass: c.DeviceClass}
			if got != tc.want {
				t.Errorf("%s: generalized to %+v, want %+v (from the first %d bytes)", tc.name, got, tc.want, event.MaxUserAgentBytes)
			}
		}
	}
}

// TestUserAgentParserReadsTheCap: the parser itself reads no more than
// event.MaxUserAgentBytes, whoever calls it, and its cache does not hold
// a user agent past it.
func TestUserAgentParserReadsTheCap(t *testing.T) {
	agents := testAgents()
	if got := agents.Parse(longUA); got != chrome {
		t.Errorf("Parse(29 KB) = %+v, want %+v, what its first %d bytes say", got, chrome, event.MaxUserAgentBytes)
	}
}

// TestUserAgentSemicolons: a user agent with more semicolons than any
// real one, where hundreds of regexes start, is not parsed.
func TestUserAgentSemicolons(t *testing.T) {
	agents := testAgents()
	ua := func(semicolons int) string {
		// chromeUA has 2.
		return chromeUA + strings.Repeat(" a;", semicolons-2)
	}
	if got := agents.Parse(ua(32)); got != chrome {
		t.Errorf("with 32 semicolons: %+v, want %+v", got, chrome)
	}
	other := policy.Agent{DeviceClass: "other"}
	if got := agents.Parse(ua(33)); got != other || policy.ParseableUserAgent(ua(33)) {
		t.Errorf("with 33 semicolons: %+v, parseable %v; want %+v, not parseable", got, policy.ParseableUserAgent(ua(33)), other)
	}
	in, err := policy.Parse(uaEnvelope("", ua(33)))
	if err != nil {
		t.Fatal(err)
	}
	if !in.UserAgentUnparsed() || in.UserAgentCut() {
		t.Errorf("UserAgentUnparsed %v, UserAgentCut %v; want true, false", in.UserAgentUnparsed(), in.UserAgentCut())
	}
}

// BenchmarkUserAgentUnique is the cost of an event whose user agent the
// parser has not seen (each op's is new within its first
// event.MaxUserAgentBytes, so no cache helps): read, de-identified in
// region. short is a real browser's; at_cap the same padded to
// event.MaxUserAgentBytes; 29KB the same padded to 29 KB, which costs
// what at_cap does, being cut to it. junk_32_semicolons matches no rule,
// so every regex runs over all of it, with as many semicolons as are
// parsed: the costliest kind of 512 bytes found (README, "User agents");
// semicolons, with more, is not parsed.
func BenchmarkUserAgentUnique(b *testing.B) {
	profile := newTestProfile(b, inRegionSettings)
	// pad makes s n bytes long, cutting or filling.
	pad := func(s string, n int) string { return (s + strings.Repeat("x", max(n-len(s), 0)))[:n] }
	seq := 0 // across runs and cases, so that none meets another's in the cache
	for _, bc := range []struct {
		name string
		ua   func(i int) string
	}{
		{"short", func(i int) string { return fmt.Sprintf("%s.%d", chromeUA, i) }},
		{"at_cap", func(i int) string { return pad(fmt.Sprintf("%s.%d ", chromeUA, i), event.MaxUserAgentBytes) }},
		{"29KB", func(i int) string { return pad(fmt.Sprintf("%s.%d ", chromeUA, i), 29<<10) }},
		{"junk_32_semicolons", func(i int) string { return pad(fmt.Sprintf("%d", i)+strings.Repeat(";", 32), event.MaxUserAgentBytes) }},
		{"semicolons", func(i int) string {
			return pad(fmt.Sprintf("%d", i)+strings.Repeat(";", event.MaxUserAgentBytes), event.MaxUserAgentBytes)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				seq++
				env := uaEnvelope("", bc.ua(seq))
				in, ok := policy.ParseRaw(env.AppendJSON(nil))
				if !ok {
					b.Fatal("refused")
				}
				if _, err := profile.Deidentify(in, policy.Decision{Purposes: policy.Analytics}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestUserAgentParseBudget: once the parses of the second are spent, a user
// agent not in the cache generalizes to device class other, uncached and
// counted, while one in the cache is still answered whole.
func TestUserAgentParseBudget(t *testing.T) {
	u, err := policy.NewUserAgentParser(64)
	if err != nil {
		t.Fatal(err)
	}
	u.LimitParses(1, 2) // two at once, then one a second
	if got := u.Parse(chromeUA); got != chrome {
		t.Fatalf("first parse: %+v", got)
	}
	u.Parse(chromeUA + " a")
	other := policy.Agent{DeviceClass: "other"}
	if got := u.Parse(chromeUA + " b"); got != other || u.OverBudget() != 1 {
		t.Errorf("third unique user agent at once: %+v, over budget %d; want device class other, counted", got, u.OverBudget())
	}
	if got := u.Parse(chromeUA); got != chrome {
		t.Errorf("a cached user agent over budget: %+v, want it whole", got)
	}
	time.Sleep(1100 * time.Millisecond) // the budget refills: "b" was not cached as other
	if got := u.Parse(chromeUA + " b"); got != chrome {
		t.Errorf("after the budget refilled: %+v, want it parsed", got)
	}
}

// BenchmarkUserAgentUniqueBudgeted is BenchmarkUserAgentUnique's 29KB
// case through a parser with a budget (enricher user_agent_parses_per_second):
// past it, a unique user agent costs what a cache lookup does, so a flood
// of them costs the enricher at most the budget's parses a second.
func BenchmarkUserAgentUniqueBudgeted(b *testing.B) {
	u, err := policy.NewUserAgentParser(4096)
	if err != nil {
		b.Fatal(err)
	}
	u.LimitParses(200, 10)
	pad := strings.Repeat("x", 29<<10)
	seq := 0
	for b.Loop() {
		seq++
		u.Parse(fmt.Sprintf("%s.%d %s", chromeUA, seq, pad))
	}
}
