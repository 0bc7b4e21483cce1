package pii

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// legacyPattern is internal/policy's piPattern as it was before this
// package: the reference for the kinds it had, and for the benchmark.
type legacyPattern struct {
	re                 *regexp.Regexp
	replacement        string
	needsAt, needsPlus bool
	minDigits          int
	replaceAll         func(s string) string
}

var legacyPatterns = []legacyPattern{
	{re: regexp.MustCompile(emailPattern), replacement: "[email]", needsAt: true, replaceAll: legacyScrubEmails},
	{re: regexp.MustCompile(idNumberPattern), replacement: "[id_number]", minDigits: 17},
	{re: regexp.MustCompile(imeiPattern), replacement: "[imei]", minDigits: 15},
	{re: regexp.MustCompile(phonePatternCN), replacement: "[phone]", minDigits: 11},
	{re: regexp.MustCompile(phonePatternIntl), replacement: "[phone]", needsPlus: true, minDigits: 6},
}

// legacyScrubText is internal/policy's scrubText.
func legacyScrubText(s string, patterns []legacyPattern) string {
	digits, at, plus := 0, false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '@':
			at = true
		case c == '+':
			plus = true
		}
	}
	for _, p := range patterns {
		if digits < p.minDigits || (p.needsAt && !at) || (p.needsPlus && !plus) {
			continue
		}
		switch {
		case p.replaceAll != nil:
			s = p.replaceAll(s)
		case p.re.MatchString(s):
			s = p.re.ReplaceAllString(s, p.replacement)
		}
	}
	return s
}

// legacyScrubEmails is internal/policy's scrubEmails.
func legacyScrubEmails(s string) string {
	var b []byte
	from, copied := 0, 0
	for {
		i := strings.IndexByte(s[from:], '@')
		if i < 0 {
			break
		}
		at := from + i
		start := at
		for start > from && legacyIsEmailLocal(s[start-1]) {
			start--
		}
		if end := legacyEmailDomainEnd(s, at+1); start < at && end > 0 {
			if b == nil {
				b = make([]byte, 0, len(s))
			}
			b = append(append(b, s[copied:start]...), "[email]"...)
			copied, from = end, end
			continue
		}
		from = at + 1
	}
	if b == nil {
		return s
	}
	return string(append(b, s[copied:]...))
}

// legacyEmailDomainEnd is internal/policy's emailDomainEnd: where the
// domain of emailPattern that starts at i ends, or -1 when none does.
func legacyEmailDomainEnd(s string, i int) int {
	j := i
	for j < len(s) && isLabelChar(s[j]) {
		j++
	}
	if j == i {
		return -1
	}
	end := -1
	for j < len(s) && s[j] == '.' {
		k := j + 1
		for k < len(s) && isLetter(s[k]) {
			k++
		}
		if k-(j+1) >= 2 {
			end = k
		}
		for k < len(s) && isLabelChar(s[k]) {
			k++
		}
		if k == j+1 {
			break
		}
		j = k
	}
	return end
}

func legacyIsEmailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

// legacySteps pairs each hand-written scanner of a kind the pipeline had
// with the regular expression it replaces.
// The e-mail scanner goes beyond its expression on text with "%40" or
// beyond ASCII, which legacyText keeps out.
var legacySteps = []struct {
	next func(s string, from int) (int, int)
	re   *regexp.Regexp
	only func(s string) bool // the inputs where the two agree; nil: all
}{
	{nextEmail, regexp.MustCompile(emailPattern), legacyText},
	{nextIDNumber, regexp.MustCompile(idNumberPattern), nil},
	{nextIMEI, regexp.MustCompile(imeiPattern), nil},
	{nextPhoneCN, regexp.MustCompile(phonePatternCN), nil},
	{nextPhoneIntl, regexp.MustCompile(phonePatternIntl), nil},
}

// legacyText reports whether s is ASCII without "%40": text that the
// scanners of the legacy kinds read as their expressions did.
func legacyText(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return !strings.Contains(s, "%40")
}

var legacySeeds = []string{
	// internal/policy's FuzzScrubEmails seeds
	"contact me at buyer@example.com", "a@b.cc.dd-x", "a@b.com1", "x@y@b.com", "a@b.cc1d@e.ff",
	"a@b..cc", "@b.cc", "a@", "a.b+c%d_e-f@g-h.i.jk, x@y.zz", "é@b.cc", "a@b.c", "a@b.c.dd.e", "1@2.3.ab4.cd",
	// its golden properties
	"call me on 138 0013 8000 or +86 13900139000, mail zhang.san@example.com.cn", "Li.Si+shop@mail.example.org",
	"490154203237518", "11010519491231002X", "+44 20 7946 0958", "13800138000", "ord-202603140001",
	// the choices of the phone patterns
	"+1 (415) 555-0132", "+447911123456", "+86-138-0013-8000", "8613800138000", "+123 (1234) 12 34 56 78 90",
	"+1 2 34 56x", "+12-(34)-56-78", "x13800138000", "_13800138000", "13800138000_", "138001380001",
	"1101051949123100211", "x11010519491231002X", "490154203237518490154203237518", "490154203237518 490154203237518",
}

// TestLegacyScanners holds each scanner equal to its regular expression on
// the seeds; FuzzLegacyScanners on whatever the fuzzer makes.
func TestLegacyScanners(t *testing.T) {
	for _, s := range legacySeeds {
		checkLegacy(t, s)
	}
}

func FuzzLegacyScanners(f *testing.F) {
	for _, s := range legacySeeds {
		f.Add(s)
	}
	f.Fuzz(checkLegacy)
}

func checkLegacy(t *testing.T, s string) {
	for i, ls := range legacySteps {
		if ls.only != nil && !ls.only(s) {
			continue
		}
		st := &step{replacement: "[x]", next: ls.next}
		got, _ := replaceAll(s, st)
		if want := ls.re.ReplaceAllString(s, "[x]"); got != want {
			t.Fatalf("scanner %d on %q = %q, %s makes %q", i, s, got, ls.re, want)
		}
	}
}

// TestLegacyScrubText checks that Scrub agrees with the old scrubber where
// the new kinds have nothing to say, on ASCII text without "%40".
func TestLegacyScrubText(t *testing.T) {
	sc := NewScrubber()
	for _, s := range legacySeeds {
		if !legacyText(s) {
			continue
		}
		want := legacyScrubText(s, legacyPatterns)
		if got := sc.Scrub(s); got != want {
			t.Errorf("Scrub(%q) = %q, the old scrubber %q", s, got, want)
		}
	}
}

// FuzzValidIPv6 holds validIPv6 equal to what net/netip accepts as IPv6.
func FuzzValidIPv6(f *testing.F) {
	for _, s := range []string{"::", "::1", "1::", "2001:db8::1", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::",
		"1:2:3:4:5:6:7:8::", "1::2::3", "12345::", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.04", "1.2.3.4", "1.2::3", ":1::2",
		"1:", "::1:", "abcd:ef01::", ":", "", "::1.2.3.4.5", "1:2:3:4:5:6:7:1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i := 0; i < len(s); i++ {
			if !isV6Char(s[i]) {
				return
			}
		}
		a, err := netip.ParseAddr(s)
		if want := err == nil && a.Is6(); validIPv6(s) != want {
			t.Fatalf("validIPv6(%q) = %v, netip: %v %v", s, !want, a, err)
		}
	})
}
