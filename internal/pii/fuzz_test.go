package pii

import (
	"strings"
	"testing"
)

// FuzzScrub checks the contract on whatever the fuzzer makes: Scrub (and
// KeyKind) never panics, is idempotent and leaves nothing that Find finds; Find finds
// exactly when Scrub changes something; and what the prefilters promise
// holds.
func FuzzScrub(f *testing.F) {
	for _, s := range append(append(append([]string{}, benchMix...), legacySeeds...),
		"Call 138 0013 8000 or mail zhang@example.com from 10.0.0.1 at 31.2304,121.4737 with card 4111 1111 1111 1111",
		"device 8c1f2e3d-4b5a-6978-8a9b-0c1d2e3f4a5b mac a4:83:e7:12:34:56 ip 2001:db8::1 imei 490154203237518",
		"push "+apnsToken+" android 9774d56d682e549c", fcmToken, "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]",
		"(415) 555-0132, 415.555.0132, +1.415.555.0132, 0044 7911 123456", "a483.e712.3456", "::ffff:192.0.2.1",
		"-33.8688 151.2093", "3782 822463 10005", "4111111111111111 138 0013 8000", "ip:fe80::1.", "11010519491231002X") {
		f.Add(s)
	}
	sc := NewScrubber()
	f.Fuzz(func(t *testing.T, s string) {
		KeyKind(s) // never panics, whatever the key
		out := sc.Scrub(s)
		if again := sc.Scrub(out); again != out {
			t.Fatalf("Scrub not idempotent on %q:\n once %q\ntwice %q", s, out, again)
		}
		if k, found := sc.Find(out); found {
			t.Fatalf("Find(Scrub(%q)) = %q in %q", s, k, out)
		}
		if k, found := sc.Find(s); found != (out != s) {
			t.Fatalf("Find(%q) = %q, %v but Scrub gave %q", s, k, found, out)
		}
		if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x80 && (r == '@' || isHex(byte(r))) }) && out != s {
			t.Fatalf("Scrub(%q) = %q: no digit, '@' or hex letter, yet changed", s, out)
		}
		c := count(s)
		for i := range steps {
			checkStep(t, &steps[i], s, &c)
		}
		passes := 0
		for x, changed := s, true; changed; passes++ {
			x, changed = sc.pass(x)
		}
		if passes > 3 {
			t.Fatalf("Scrub(%q) took %d passes", s, passes)
		}
		if c.n[cAt] == 0 && c.n[cDigit] == 0 && c.n[cBracket] == 0 && c.n[cColon] < 2 && c.n[cDash] < 4 && c.n[cDot] < 2 && out != s {
			t.Fatalf("Scrub(%q) = %q: no '@', digit or '[', too few separators, yet changed", s, out)
		}
	})
}

// checkStep checks a step's prefilter and scanner on s: every match is
// in s, after the last one, not empty, and in a string that holds what
// the step's need says a match must.
func checkStep(t *testing.T, st *step, s string, c *census) {
	from := 0
	for {
		start, end := st.next(s, from)
		if start < 0 {
			return
		}
		if start < from || end <= start || end > len(s) {
			t.Fatalf("%s step on %q from %d: [%d, %d)", st.kind, s, from, start, end)
		}
		if !c.holds(&st.need) {
			t.Fatalf("%s step matches %q in %q, which its need %v rules out (census %v)", st.kind, s[start:end], s, st.need, *c)
		}
		from = end
	}
}
