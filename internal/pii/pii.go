// Package pii finds and replaces personal information (PI) in the free-form
// strings that SDKs and product teams put in event properties, page titles,
// URLs, campaign fields and object keys.
//
// The contract:
//
//   - Scrub replaces every match of a kind with "[<kind>]" (an extra
//     pattern's with "[<name>]"). Replacements only take away: a replacement
//     text never holds a kind, and every scanner takes a replacement beside
//     a match as it takes the start or end of the string, so that a match
//     refused only because the text beside it was another match of its kind
//     is taken in the same pass. A replacement can still change the context
//     of a neighbour of an earlier kind (one refused because of what stood
//     next to it), so Scrub repeats its passes until nothing more matches,
//     at most maxPasses times: input that would still change after those
//     (only input built to chain refusals, as "a match of kind A next to one
//     of kind B next to one of kind A..." does) comes back as "[redacted]",
//     whole. Scrubbing is so linear in the length of the input, whatever it
//     holds. With the built-in kinds alone Scrub is idempotent and
//     Find(Scrub(s)) finds nothing.
//   - Find(s) reports a kind exactly when Scrub(s) != s, so that a last check
//     can refuse output that Scrub would have changed.
//   - A string with nothing to replace costs one pass over its bytes plus the
//     scanners of the kinds whose minimum ingredients it holds, allocates
//     nothing, and comes back as the very same string.
//
// Each kind's rules, and the false positives they accept or avoid, are told
// on its scanner. The kinds that the pipeline had before this package
// (email, id_number, imei and two phone forms) match exactly what their
// regular expressions matched; they are hand-written for speed and checked
// against those expressions by tests.
package pii

import "regexp"

// Kind names one kind of PI. It is also what Scrub writes in place of a
// match, "[<kind>]", so that a reader of scrubbed output knows what was
// there without seeing it.
type Kind string

// The kinds, in no particular order; Kinds gives the order Scrub applies them.
const (
	// Email is an e-mail address.
	Email Kind = "email"
	// IDNumber is an 18-character PRC resident identity number.
	IDNumber Kind = "id_number"
	// IMEI is a bare 15-digit number, as an IMEI is written.
	IMEI Kind = "imei"
	// Phone is a phone number in one of the groupings that phone numbers,
	// and little else, are written in.
	Phone Kind = "phone"
	// IPv4 is a dotted-quad IPv4 address.
	IPv4 Kind = "ipv4"
	// IPv6 is an IPv6 address, compressed or not.
	IPv6 Kind = "ipv6"
	// MAC is a hardware (MAC) address.
	MAC Kind = "mac"
	// DeviceID is a UUID-shaped identifier (IDFA, IDFV, GAID and the like)
	// or a 16-hex-digit Android ID: they follow a device across apps.
	DeviceID Kind = "device_id"
	// PushToken is an APNs, FCM or Expo push token: it reaches one device.
	PushToken Kind = "push_token"
	// Location is a pair of coordinates precise enough to find a place,
	// latitude first or longitude first.
	Location Kind = "location"
	// Card is a payment card number.
	Card Kind = "card"
)

// Kinds lists every kind, in the order Scrub applies them: more specific
// kinds first, so that a push token is not read as device ids, a UUID's
// groups not as anything else, an identity number not as an IMEI, and a
// card number not as a phone.
func Kinds() []Kind {
	var ks []Kind
	for _, st := range steps {
		if len(ks) == 0 || ks[len(ks)-1] != st.kind {
			ks = append(ks, st.kind)
		}
	}
	return ks
}

// Pattern is an extra, configured pattern (RE2 syntax) with a name, for PI
// that only a deployment knows the shape of. Scrubber applies extra patterns
// after the built-in kinds, in the order given, and writes "[<Name>]" for a
// match. A pattern should match neither the empty string nor any
// replacement text (nor "[redacted]"): one that does still ends (Scrub
// stops after a few passes), but Scrub is then not idempotent.
type Pattern struct {
	Name string
	Re   *regexp.Regexp
}

// Scrubber applies the built-in kinds and the extra patterns. It holds
// nothing that changes after NewScrubber, so one Scrubber may serve all
// goroutines; when nothing matches, Scrub and Find allocate nothing.
type Scrubber struct {
	extra []extraPattern
}

type extraPattern struct {
	Pattern
	replacement string
}

// redacted is what Scrub returns, in place of the whole string, for input
// that would still change after maxPasses passes. No kind matches it, nor
// any extra pattern that matches no replacement text ("[" and a name).
const redacted = "[redacted]"

// maxPasses bounds Scrub's passes, each linear in the length of the
// string. Real text needs one pass, or two where a replacement freed the
// neighbour of an earlier kind; each pass after that undoes one more link
// of a chain of refusals that only input built for it holds. An extra
// pattern that matches its own replacement would, without the bound, never
// stop changing the string.
const maxPasses = 4

// NewScrubber returns a Scrubber for the built-in kinds and extra. It
// panics on a pattern without a regular expression, as regexp.MustCompile
// panics on a bad one: that is a programming error, not input.
func NewScrubber(extra ...Pattern) *Scrubber {
	sc := &Scrubber{}
	for _, p := range extra {
		if p.Re == nil {
			panic("pii: extra pattern " + p.Name + " has no regular expression")
		}
		sc.extra = append(sc.extra, extraPattern{Pattern: p, replacement: "[" + p.Name + "]"})
	}
	return sc
}

// Scrub returns s with every match replaced by "[<kind>]" (or "[<name>]" for
// an extra pattern); s itself (the same string, no allocation) when nothing
// matches.
//
// Input that would still change after maxPasses passes comes back as
// "[redacted]", when the built-in kinds would change it: a string that
// only an extra pattern matching its own replacement keeps changing comes
// back as the last pass left it.
func (sc *Scrubber) Scrub(s string) string {
	s, changed := sc.pass(s)
	for n := 1; changed && n < maxPasses; n++ {
		s, changed = sc.pass(s)
	}
	if changed && sc.findBuiltin(s) >= 0 {
		return redacted
	}
	return s
}

// pass applies every step once, in order, each to what the one before left.
func (sc *Scrubber) pass(s string) (string, bool) {
	c := count(s)
	if workHook != nil {
		workHook(len(s))
	}
	changed := false
	for i := range steps {
		st := &steps[i]
		if !c.holds(&st.need) {
			continue
		}
		if out, ok := replaceAll(s, st); ok {
			s, changed = out, true
		}
	}
	for i := range sc.extra {
		p := &sc.extra[i]
		if !p.Re.MatchString(s) { // which, unlike replacing, allocates nothing
			continue
		}
		if out := p.Re.ReplaceAllString(s, p.replacement); out != s {
			s, changed = out, true
		}
	}
	return s, changed
}

// Find reports the first kind found in s, in the order Scrub applies them
// (Kind(name) for an extra pattern), for a last check that refuses output
// holding PI. It agrees with Scrub: Find(s) reports a kind iff Scrub(s) != s,
// because the first step of Scrub's first pass that changes anything sees s
// itself, and Find asks each step, in the same order, about s.
func (sc *Scrubber) Find(s string) (Kind, bool) {
	if i := sc.findBuiltin(s); i >= 0 {
		return steps[i].kind, true
	}
	for i := range sc.extra {
		p := &sc.extra[i]
		if p.Re.MatchString(s) && p.Re.ReplaceAllString(s, p.replacement) != s {
			return Kind(p.Name), true
		}
	}
	return "", false
}

// findBuiltin returns the index of the first step that matches in s, or -1.
func (sc *Scrubber) findBuiltin(s string) int {
	c := count(s)
	for i := range steps {
		st := &steps[i]
		if c.holds(&st.need) {
			if start, _ := st.next(s, 0); start >= 0 {
				return i
			}
		}
	}
	return -1
}

// workHook, when a test sets it, is told how many bytes each pass and each
// scanner call covered, so that a test can count Scrub's work rather than
// time it. It is nil otherwise, and never set while Scrub runs elsewhere.
var workHook func(n int)

// A step is one scanner of one kind; a kind may have several (phone has
// six), applied in turn.
type step struct {
	kind        Kind
	replacement string
	// need is what any match must hold, at least: most strings hold too
	// little for most kinds, and skipping their scanners is most of the
	// cost of a string with no PI.
	need need
	// next returns the first match in s that starts at or after from, or
	// -1, -1. It may look at s before from, for context. It takes what is
	// outside s as it takes a replacement, "[" or "]": replaceAll hands it
	// the rest of the string after a match as a string of its own, so that
	// what the match was does not count against its neighbour. A scanner
	// must cover no more than a constant times the bytes from from to the
	// end of the match it returns (to the end of s when it returns none).
	next func(s string, from int) (start, end int)
}

var steps = []step{
	{kind: Email, need: need{n: classes{cAt: 1, cDot: 1}}, next: nextEmail},
	// Push tokens first: an FCM token's dash-separated pieces, or an Expo
	// token's content, could otherwise read as device ids.
	{kind: PushToken, need: need{n: classes{cColon: 1, cDigit: 2, cHex: 3}, len: len(fcmMarker) + 100}, next: nextFCM},
	{kind: PushToken, need: need{n: classes{cBracket: 1, cHex: 2}, len: len("ExpoPushToken[]") + 16}, next: nextExpo},
	{kind: PushToken, need: need{n: classes{cDigit: 1, cHex: 1}, hexish: 64}, next: nextAPNs},
	{kind: DeviceID, need: need{n: classes{cDash: 4}, hexish: 32}, next: nextUUID},
	{kind: DeviceID, need: need{n: classes{cDigit: 1, cHex: 1}, hexish: 16}, next: nextAndroidID},
	{kind: MAC, need: need{n: classes{cColon: 5}, hexish: 12}, next: nextMACColon},
	{kind: MAC, need: need{n: classes{cDash: 5}, hexish: 12}, next: nextMACDash},
	{kind: MAC, need: need{n: classes{cDot: 2, cHex: 1}, hexish: 12}, next: nextCiscoMAC},
	{kind: MAC, need: need{n: classes{cDigit: 1, cHex: 1}, hexish: 12}, next: nextBareMAC},
	// IPv6 before IPv4: "::ffff:192.0.2.1" is one IPv6 address.
	{kind: IPv6, need: need{n: classes{cColon: 2, cDigit: 1}}, next: nextIPv6},
	{kind: IPv4, need: need{n: classes{cDigit: 4, cDot: 3}}, next: nextIPv4},
	{kind: Location, need: need{n: classes{cDigit: 8, cDot: 2}}, next: nextLocation},
	// An identity number holds 15 digits that would read as an IMEI, and
	// an IMEI (Luhn-checked too) would read as a card.
	{kind: IDNumber, need: need{n: classes{cDigit: 17}}, next: nextIDNumber},
	{kind: IMEI, need: need{n: classes{cDigit: 15}}, next: nextIMEI},
	{kind: Card, need: need{n: classes{cDigit: 13}}, next: nextCard},
	// The "00" form before the PRC mobile form, which would otherwise
	// take the number after "0086 " and leave the prefix.
	{kind: Phone, need: need{n: classes{cDigit: 10}}, next: nextPhone00},
	{kind: Phone, need: need{n: classes{cDigit: 11}}, next: nextPhoneCN},
	{kind: Phone, need: need{n: classes{cPlus: 1, cDigit: 6}}, next: nextPhoneIntl},
	{kind: Phone, need: need{n: classes{cDigit: 10}}, next: nextPhoneNANP},
	{kind: Phone, need: need{n: classes{cDigit: 11}}, next: nextPhoneNational},
}

func init() {
	for i := range steps {
		st := &steps[i]
		st.replacement = "[" + string(st.kind) + "]"
		for k := cDigit; k < nClasses; k++ {
			if st.need.n[k] > laneMax || st.need.hexish > laneMax {
				panic("pii: a step needs more of a class than census counts")
			}
			st.need.lanes |= uint64(st.need.n[k]) << (8 * (k - 1))
		}
	}
}

// replaceAll replaces every match of st in s, left to right, each search
// starting where the last match ended, as regexp's ReplaceAllString does;
// but the search after a match is in the rest of s as a string of its
// own, which is what the rest is next to once the match is replaced: a
// neighbour refused only because of the match before it ("(415) 555-0132"
// just after another) is taken now, not on a later pass. The regular
// expressions that the legacy kinds match agree, as what ends their
// matches (\b, a domain) cannot go on into the next.
func replaceAll(s string, st *step) (string, bool) {
	start, end := st.next(s, 0)
	if start < 0 {
		if workHook != nil {
			workHook(len(s))
		}
		return s, false
	}
	b := make([]byte, 0, len(s)+len(st.replacement))
	copied := 0
	for start >= 0 {
		if workHook != nil {
			workHook(end - copied)
		}
		b = append(append(b, s[copied:start]...), st.replacement...)
		copied = end
		if start, end = st.next(s[copied:], 0); start >= 0 {
			start, end = start+copied, end+copied
		}
	}
	if workHook != nil {
		workHook(len(s) - copied)
	}
	return string(append(b, s[copied:]...)), true
}

// Byte classes that the prefilters count.
const (
	cOther = iota
	cDigit
	cHex // a-f, A-F
	cAt  // '@', or '%' of "%40"
	cPlus
	cColon
	cDot
	cDash
	cBracket // '['
	nClasses
)

var classOf = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c], t[c-'a'+'A'] = cHex, cHex
	}
	t['@'], t['+'], t[':'], t['.'], t['-'], t['['] = cAt, cPlus, cColon, cDot, cDash, cBracket
	t['%'] = cAt // "%40" is an @ too
	return t
}()

// classes counts bytes by class.
type classes [nClasses]int32

// census is what one pass over a string's bytes counts for the prefilters:
// the bytes of each class but cOther, each in a lane of 8 bits of lanes
// (class k in bits 8(k-1) to 8k-1), up to 127 (more counts as 127: no step
// needs as many), and the length.
type census struct {
	lanes uint64
	len   int
}

// The lanes of a census are the eight bytes of a uint64, as in
// internal/jsonscan and internal/event, which name highs so too.
const (
	highs   = 0x8080808080808080 // the top bit of each lane
	laneMax = 0x7f               // what a lane counts up to
)

// laneOf is the lane increment of a byte: one in the lane of its class.
var laneOf = func() (t [256]uint64) {
	for c := range t {
		if k := classOf[c]; k != cOther {
			t[c] = 1 << (8 * (k - 1))
		}
	}
	return t
}()

func count(s string) census {
	c := census{len: len(s)}
	for len(s) > 0 {
		chunk := s[:min(len(s), laneMax)] // no lane can overflow in it
		var add uint64
		for i := 0; i < len(chunk); i++ {
			add += laneOf[chunk[i]]
		}
		sum := c.lanes + add                                // each lane at most 2*laneMax: no carry between
		c.lanes = (sum | ((sum&highs)>>7)*laneMax) &^ highs // more: laneMax
		s = s[len(chunk):]
	}
	return c
}

// at is the count of class k, up to laneMax.
func (c *census) at(k int) int32 { return int32(c.lanes >> (8 * (k - 1)) & laneMax) }

// need is the least a string holds that a step can match in: so many
// bytes of each class (cOther counts for nothing; at most laneMax), hexish
// hex digits of either kind, len bytes in all.
type need struct {
	n      classes
	hexish int32
	len    int
	lanes  uint64 // n as census counts it, which init sets
}

// holds reports whether a string counted so holds what nd asks: a lane
// with its top bit set, less a lane that is at most laneMax, keeps the top
// bit exactly when the first is at least the second, and borrows nothing.
func (c *census) holds(nd *need) bool {
	return ((c.lanes|highs)-nd.lanes)&highs == highs &&
		c.at(cDigit)+c.at(cHex) >= nd.hexish && c.len >= nd.len
}

// Character predicates. Word characters are those of regexp's \b: ASCII
// letters, digits and '_'; every byte of a multi-byte UTF-8 character is
// a non-word byte, as the character is.
var isWordTab = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
	}
	return t
}()

func isWord(c byte) bool  { return isWordTab[c] }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return classOf[c] == cDigit || classOf[c] == cHex }
func isAlnum(c byte) bool { return isWord(c) && c != '_' }

// wordAt reports whether s[i] is a word character; outside s is not.
func wordAt(s string, i int) bool { return i >= 0 && i < len(s) && isWord(s[i]) }

// digitAt reports whether s[i] is a digit; outside s is not.
func digitAt(s string, i int) bool { return i >= 0 && i < len(s) && isDigit(s[i]) }

// byteAt is s[i], or 0 outside s.
func byteAt(s string, i int) byte {
	if i >= 0 && i < len(s) {
		return s[i]
	}
	return 0
}

// wordBoundary is regexp's \b at i.
func wordBoundary(s string, i int) bool { return wordAt(s, i-1) != wordAt(s, i) }

// digitRun is the number of digits from i on.
func digitRun(s string, i int) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	return j - i
}

// wordRunStart returns the start of the first run of word characters at or
// after from that does not continue one begun before from, or -1.
func wordRunStart(s string, from int) int {
	i := from
	if wordAt(s, i-1) {
		for i < len(s) && isWord(s[i]) {
			i++
		}
	}
	for i < len(s) && !isWord(s[i]) {
		i++
	}
	if i == len(s) {
		return -1
	}
	return i
}

// wordRunEnd is where the run of word characters from i ends.
func wordRunEnd(s string, i int) int {
	for i < len(s) && isWord(s[i]) {
		i++
	}
	return i
}
