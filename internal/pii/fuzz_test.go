package pii

import (
	"strings"
	"testing"
)

// FuzzScrub checks the contract on whatever the fuzzer makes: Scrub (and
// KeyKind) never panics, is idempotent and leaves nothing that Find finds; Find finds
// exactly when Scrub changes something; what the prefilters promise
// holds; and Scrub's work is linear in the length of s, its result that
// of passes until nothing changes or, past maxPasses of them, "[redacted]".
func FuzzScrub(f *testing.F) {
	for _, s := range append(append(append([]string{}, benchMix...), legacySeeds...),
		"Call 138 0013 8000 or mail zhang@example.com from 10.0.0.1 at 31.2304,121.4737 with card 4111 1111 1111 1111",
		"device 8c1f2e3d-4b5a-6978-8a9b-0c1d2e3f4a5b mac a4:83:e7:12:34:56 ip 2001:db8::1 imei 490154203237518",
		"push "+apnsToken+" android 9774d56d682e549c", fcmToken, "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]",
		"(415) 555-0132, 415.555.0132, +1.415.555.0132, 0044 7911 123456", "a483.e712.3456", "::ffff:192.0.2.1",
		"-33.8688 151.2093", "3782 822463 10005", "4111111111111111 138 0013 8000", "ip:fe80::1.", "11010519491231002X",
		"(415) 555-0132(415) 555-0132", "31.2304,121.4737-31.2304,121.4737-", "415-555-0132+31.2304,121.4737 415-555-0132+31.2304,121.4737",
		"bob\u200d@exa\u2060mple.co\ufeffm!", "a%40b%40c.com", "用户@例子.中国", "Phone: 4155550132") {
		f.Add(s)
	}
	for _, u := range typicalMatches {
		f.Add(u + " " + u)
	}
	sc := NewScrubber()
	f.Fuzz(func(t *testing.T, s string) {
		KeyKind(s) // never panics, whatever the key
		out, work := scrubWork(sc, s)
		if work > maxWorkPerByte*(len(s)+1) {
			t.Fatalf("Scrub(%q): work %d for %d bytes", s, work, len(s))
		}
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
		checkCensus(t, s, &c)
		checkCensus(t, s+s+s, nil)
		for i := range steps {
			checkStep(t, &steps[i], s, &c)
		}
		changing, x := 0, s
		for changed := true; changed; {
			if x, changed = sc.pass(x); changed {
				changing++
			}
		}
		if want := x; changing > maxPasses && out != redacted || changing <= maxPasses && out != want {
			t.Fatalf("Scrub(%q) = %q after %d passes that changed it, which made %q", s, out, changing, want)
		}
		if c.at(cAt) == 0 && c.at(cDigit) == 0 && c.at(cBracket) == 0 && c.at(cColon) < 2 && c.at(cDash) < 4 && c.at(cDot) < 2 && out != s {
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

// checkCensus checks count(s) against a count of each class, up to
// laneMax; c is count(s) when given.
func checkCensus(t *testing.T, s string, c *census) {
	if c == nil {
		cs := count(s)
		c = &cs
	}
	var n classes
	for i := 0; i < len(s); i++ {
		n[classOf[s[i]]]++
	}
	for k := cDigit; k < nClasses; k++ {
		if want := min(n[k], laneMax); c.at(k) != want {
			t.Fatalf("count(%q): class %d is %d, want %d", s, k, c.at(k), want)
		}
	}
	if c.len != len(s) {
		t.Fatalf("count(%q).len = %d", s, c.len)
	}
}
