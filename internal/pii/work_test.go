package pii

import (
	"regexp"
	"strings"
	"testing"
)

// typicalMatches are matches of each kind, in each of its forms, that
// adversarialInputs repeat.
var typicalMatches = []string{
	"alice@example.com", "leak.用户@example.cn", "alice%40example.com", "bob.app\u200b@example.com",
	apnsToken, fcmToken, "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]",
	"8c1f2e3d-4b5a-6978-8a9b-0c1d2e3f4a5b", "9774d56d682e549c",
	"a4:83:e7:12:34:56", "a4-83-e7-12-34-56", "a483.e712.3456", "a483e7123456",
	"2001:db8::1", "fe80::1", "::ffff:192.0.2.1",
	"203.0.113.7",
	"31.2304,121.4737", "31.2304,121.4737-", "121.473701,31.230416", "-33.8688 151.2093",
	"11010519491231002X",
	"490154203237518",
	"4111111111111111", "4111 1111 1111 1111", "3782 822463 10005",
	"(415) 555-0132", "415-555-0132", "415.555.0132", "+1 415 555 0132", "1-800-555-0199", "138 0013 8000",
	"13800138000", "+86 13900139000", "+44 20 7946 0958", "0044 7911 123456", "tel:4155550132", "4155550132",
	"138.0013.8000", "07911 123456",
}

// adversarialSeparators are put between the repeats.
var adversarialSeparators = []string{"", " ", "-", ",", "."}

// repeatTo repeats u+sep until the string is at least n bytes long.
func repeatTo(u, sep string, n int) string {
	unit := u + sep
	return strings.Repeat(unit, (n+len(unit)-1)/len(unit))
}

// scrubWork returns what sc.Scrub(s) returns and the bytes that its passes
// and its scanners covered.
func scrubWork(sc *Scrubber, s string) (string, int) {
	work := 0
	workHook = func(n int) { work += n }
	defer func() { workHook = nil }()
	return sc.Scrub(s), work
}

// maxWorkPerByte bounds the work per byte of input: a census and every
// step over the whole string, on each of at most maxPasses passes, and
// the check after the last.
var maxWorkPerByte = (maxPasses + 1) * (len(steps) + 1)

// TestScrubWorkIsLinear repeats each kind's typical match with each
// separator, to 1 KB and to 32 KB: scrubbing the longer must cost no more
// per byte than the shorter (as the work that a test hook counts says,
// not a clock), and at most two passes must change the string (a
// neighbour refused because of a match before it of its own kind is taken
// in the same pass). Scrub repeated passes until nothing changed, each
// taking one more of "(415) 555-0132(415) 555-0132...": 0.6 s for 30 KB.
func TestScrubWorkIsLinear(t *testing.T) {
	sc := NewScrubber()
	for _, u := range typicalMatches {
		for _, sep := range adversarialSeparators {
			small, large := repeatTo(u, sep, 1<<10), repeatTo(u, sep, 32<<10)
			_, ws := scrubWork(sc, small)
			out, wl := scrubWork(sc, large)
			perSmall, perLarge := float64(ws)/float64(len(small)), float64(wl)/float64(len(large))
			if perLarge > 1.25*perSmall+1 || wl > maxWorkPerByte*len(large) {
				t.Errorf("%q repeated with %q: work per byte %.1f at 1 KB, %.1f at 32 KB", u, sep, perSmall, perLarge)
			}
			passes := 0
			for x, changed := large, true; changed; passes++ {
				x, changed = sc.pass(x)
			}
			if passes > 3 {
				t.Errorf("%q repeated with %q: %d passes", u, sep, passes)
			}
			if k, found := sc.Find(out); found {
				t.Errorf("%q repeated with %q: Find(Scrub(s)) = %q", u, sep, k)
			}
			if again := sc.Scrub(out); again != out {
				t.Errorf("%q repeated with %q: Scrub not idempotent", u, sep)
			}
			if k, found := sc.Find(large); found != (out != large) {
				t.Errorf("%q repeated with %q: Find = %q, %v; Scrub changed it: %v", u, sep, k, found, out != large)
			}
			if out == redacted {
				t.Errorf("%q repeated with %q: redacted whole", u, sep)
			}
		}
	}
}

// TestScrubAdjacentMatches holds that matches side by side are each
// replaced in one pass, those of the DoS report among them.
func TestScrubAdjacentMatches(t *testing.T) {
	sc := NewScrubber()
	for _, c := range []scrubCase{
		{"(415) 555-0132(415) 555-0132(415) 555-0132", "[phone][phone][phone]"},
		{"31.2304,121.4737-31.2304,121.4737-31.2304,121.4737-", "[location][location][location]-"},
		{"203.0.113.7-203.0.113.8", "[ipv4]-[ipv4]"},
		{"a483.e712.3456 a483.e712.3456", "[mac] [mac]"},
		{"+44 20 7946 0958+44 20 7946 0958", "[phone][phone]"},
	} {
		if out, changed := sc.pass(c.in); !changed || out != c.want {
			t.Errorf("one pass on %q = %q, want %q", c.in, out, c.want)
		}
	}
}

// TestScrubPassCap holds that input still changing after maxPasses passes
// comes back as "[redacted]", which Find finds nothing in, and that an
// extra pattern that keeps matching its own replacement still ends.
func TestScrubPassCap(t *testing.T) {
	sc := NewScrubber()
	if k, found := sc.Find(redacted); found {
		t.Fatalf("Find(%q) = %q", redacted, k)
	}
	if got := sc.Scrub(redacted); got != redacted {
		t.Fatalf("Scrub(%q) = %q", redacted, got)
	}
	// A chain of refusals between two kinds that each pass shortens by
	// one link: a place is refused after a phone number's digit and '+',
	// and a phone number after a place's digit and a space; each is taken
	// once the other is replaced, on the next pass (the place's step comes
	// first).
	chain := func(n int) string {
		return strings.Repeat("415-555-0132+31.2304,121.4737 ", n)
	}
	capped := false
	for n := 1; n <= 8; n++ {
		s := chain(n)
		passes, x := 0, s
		for changed := true; changed; passes++ {
			x, changed = sc.pass(x)
		}
		got := sc.Scrub(s)
		if passes-1 > maxPasses {
			capped = true
			if got != redacted {
				t.Errorf("Scrub(%q) after %d changing passes = %q, want %q", s, passes-1, got, redacted)
			}
		} else if got != x {
			t.Errorf("Scrub(%q) = %q, want %q", s, got, x)
		}
		if k, found := sc.Find(s); !found || sc.Scrub(got) != got {
			t.Errorf("Find(%q) = %q, %v; Scrub(Scrub(s)) = %q", s, k, found, sc.Scrub(got))
		}
	}
	if !capped {
		t.Errorf("no chain needed more than %d passes", maxPasses)
	}
	// An extra pattern that matches its own replacement stops changing
	// the string after maxPasses passes, left as the last one left it.
	bad := NewScrubber(Pattern{Name: "x", Re: regexp.MustCompile(`x`)})
	if got, want := bad.Scrub("x"), "[[[[x]]]]"; got != want {
		t.Errorf("Scrub(%q) = %q, want %q", "x", got, want)
	}
}

// TestScrubWorkIsLinearMixed does as TestScrubWorkIsLinear for two
// typical matches, of any two kinds, repeated in turn: chains of refusals
// between kinds are what the cap on passes is for.
func TestScrubWorkIsLinearMixed(t *testing.T) {
	sc := NewScrubber()
	redactedWhole := 0
	for _, u := range typicalMatches {
		for _, v := range typicalMatches {
			for _, sep := range adversarialSeparators {
				unit := u + sep + v
				small, large := repeatTo(unit, sep, 1<<10), repeatTo(unit, sep, 4<<10)
				_, ws := scrubWork(sc, small)
				out, wl := scrubWork(sc, large)
				perSmall, perLarge := float64(ws)/float64(len(small)), float64(wl)/float64(len(large))
				if perLarge > 1.25*perSmall+1 || wl > maxWorkPerByte*len(large) {
					t.Errorf("%q repeated with %q: work per byte %.1f at 1 KB, %.1f at 4 KB", unit, sep, perSmall, perLarge)
				}
				if k, found := sc.Find(out); found {
					t.Errorf("%q repeated with %q: Find(Scrub(s)) = %q", unit, sep, k)
				}
				if k, found := sc.Find(large); found != (out != large) {
					t.Errorf("%q repeated with %q: Find = %q, %v; Scrub changed it: %v", unit, sep, k, found, out != large)
				}
				if out == redacted {
					redactedWhole++
					if testing.Verbose() {
						t.Logf("%q repeated with %q: redacted whole", unit, sep)
					}
				}
			}
		}
	}
	t.Logf("%d of %d redacted whole", redactedWhole, len(typicalMatches)*len(typicalMatches)*len(adversarialSeparators))
}
