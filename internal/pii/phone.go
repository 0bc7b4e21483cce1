package pii

import "strings"

// A phone number is told from other numbers by its grouping alone, so a
// run of ten or more digits, with or without separators, is a phone
// number only in one of these forms:
//
//   - a PRC mobile number, 1[3-9]x xxxx xxxx, optionally after 86 or +86
//     (phonePatternCN);
//   - anything after a '+' that groups like a phone number
//     (phonePatternIntl): +1 415 555 0132, +44 20 7946 0958, +447911123456;
//   - a "00" international prefix with the country code as a group of its
//     own, then the national number in groups (nextPhone00);
//   - a North American number, 3-3-4 with the same separator, or with the
//     area code in parentheses; or ten digits without separators after a
//     word that says it is a phone number, or as the whole string
//     (nextPhoneNANP);
//   - a PRC mobile number with dots, 138.0013.8000, or a UK mobile number
//     in its national form, 07911 123456 (nextPhoneNational).
//
// Other bare digit runs (order numbers, timestamps, ids) are none of
// these, nor are dates (4-2-2), times, prices and versions.

// phonePatternCN is what nextPhoneCN matches; tests hold the two equal.
const phonePatternCN = `(?:\+|\b)(?:86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}\b`

// phonePatternIntl is what nextPhoneIntl matches; tests hold the two equal.
const phonePatternIntl = `\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,4}\b`

func isSpaceOrDash(c byte) bool { return c == ' ' || c == '-' }

// digitsAt reports whether s holds n digits from i on.
func digitsAt(s string, i, n int) bool {
	if i+n > len(s) {
		return false
	}
	for j := i; j < i+n; j++ {
		if !isDigit(s[j]) {
			return false
		}
	}
	return true
}

// nextPhoneCN finds what phonePatternCN finds. Every choice in the pattern
// is forced by the next character (an optional separator must be taken if
// present, as a digit cannot match it; "86" must be the prefix if present,
// as the number proper starts with 1), so a match at a start is decided
// without backtracking.
func nextPhoneCN(s string, from int) (int, int) {
	for i := from; i < len(s); i++ {
		var q int
		switch c := s[i]; {
		case c == '+':
			q = i + 1
		case (c == '8' || c == '1') && wordBoundary(s, i):
			q = i
		default:
			continue
		}
		if e := phoneCNAt(s, q); e >= 0 {
			return i, e
		}
	}
	return -1, -1
}

func phoneCNAt(s string, q int) int {
	if strings.HasPrefix(s[q:], "86") {
		q += 2
		if q < len(s) && isSpaceOrDash(s[q]) {
			q++
		}
	}
	if q+3 > len(s) || s[q] != '1' || s[q+1] < '3' || s[q+1] > '9' || !isDigit(s[q+2]) {
		return -1
	}
	q += 3
	for range 2 {
		if q < len(s) && isSpaceOrDash(s[q]) {
			q++
		}
		if !digitsAt(s, q, 4) {
			return -1
		}
		q += 4
	}
	if !wordBoundary(s, q) {
		return -1
	}
	return q
}

// nextPhoneIntl finds what phonePatternIntl finds, trying the pattern's
// choices in the order the regular expression prefers them (greedy
// repetitions longest first, optional parts taken first): the first that
// matches at the leftmost '+' is the match.
func nextPhoneIntl(s string, from int) (int, int) {
	for from < len(s) {
		i := strings.IndexByte(s[from:], '+')
		if i < 0 {
			break
		}
		i += from
		if e := phoneIntlAt(s, i+1); e >= 0 {
			return i, e
		}
		from = i + 1
	}
	return -1, -1
}

// optional is 1 when s[i] is one that an optional part may take, else 0:
// the greedy choice, tried first; a loop down to 0 then tries leaving it.
func optional(s string, i int, ok bool) int {
	if i < len(s) && ok {
		return 1
	}
	return 0
}

func phoneIntlAt(s string, p int) int {
	for n := min(3, digitRun(s, p)); n >= 1; n-- { // \d{1,3}
		q := p + n
		for t1 := optional(s, q, isSpaceOrDash(byteAt(s, q))); t1 >= 0; t1-- { // [ -]?
			q1 := q + t1
			for t2 := optional(s, q1, byteAt(s, q1) == '('); t2 >= 0; t2-- { // \(?
				q2 := q1 + t2
				for m := min(4, digitRun(s, q2)); m >= 1; m-- { // \d{1,4}
					q3 := q2 + m
					for t3 := optional(s, q3, byteAt(s, q3) == ')'); t3 >= 0; t3-- { // \)?
						if e := phoneIntlGroups(s, q3+t3, 0); e >= 0 {
							return e
						}
					}
				}
			}
		}
	}
	return -1
}

// phoneIntlGroups matches (?:[ -]?\d{2,4}){2,4}\b from p, k groups being
// matched already.
func phoneIntlGroups(s string, p, k int) int {
	if k < 4 {
		for t := optional(s, p, isSpaceOrDash(byteAt(s, p))); t >= 0; t-- {
			q := p + t
			for m := min(4, digitRun(s, q)); m >= 2; m-- {
				if e := phoneIntlGroups(s, q+m, k+1); e >= 0 {
					return e
				}
			}
		}
	}
	if k >= 2 && wordBoundary(s, p) {
		return p
	}
	return -1
}

// nextPhone00 finds a number dialled with the "00" international prefix:
// "00" and a country code (1-3 digits, not starting with 0), as one group
// ("0044") or two ("00 44"), then the national number, 7-14 digits, in one
// or more groups; groups are split by single spaces or by single dashes
// (one kind throughout), and country code and national number together
// are at most 15 digits, as E.164 allows. The separate country code is
// what tells "0044 7911 123456" from a zero-padded id, so the run must not
// be all one group.
func nextPhone00(s string, from int) (int, int) {
	for from < len(s) {
		i := strings.Index(s[from:], "00")
		if i < 0 {
			break
		}
		i += from
		if e := phone00At(s, i); e >= 0 {
			return i, e
		}
		from = i + 1
	}
	return -1, -1
}

func phone00At(s string, i int) int {
	if c := byteAt(s, i-1); isWord(c) || c == '+' || c == '.' || c == '-' || c == ' ' && digitAt(s, i-2) {
		return -1 // inside a longer number or word
	}
	j := i + digitRun(s, i)
	g := j - i
	if j >= len(s) || !isSpaceOrDash(s[j]) {
		return -1
	}
	sep := s[j]
	cc := g - 2
	if g == 2 { // "00 44 ..."
		j++
		cc = digitRun(s, j)
		if cc < 1 || cc > 3 || s[j] == '0' {
			return -1
		}
		j += cc
		if j >= len(s) || s[j] != sep {
			return -1
		}
	} else if cc < 1 || cc > 3 || s[i+2] == '0' {
		return -1
	}
	national := 0
	for j < len(s) && s[j] == sep && digitAt(s, j+1) {
		n := digitRun(s, j+1)
		national += n
		j += 1 + n
	}
	if national < 7 || national > 14 || cc+national > 15 {
		return -1
	}
	if isWord(byteAt(s, j)) || byteAt(s, j) == '.' && digitAt(s, j+1) {
		return -1
	}
	return j
}

// nextPhoneNANP finds a North American number: an area code and an
// exchange (three digits each, neither starting with 0 or 1) and four
// digits, written 415-555-0132, 415.555.0132 or 415 555 0132 (the same
// separator twice), or (415) 555-0132; optionally after "1" or "+1" and a
// separator. A number in a longer run of numbers (an id such as
// sku-415-555-0132, or 12 415 555 0132) is not one.
//
// Ten digits without separators, 4155550132, are one only after a word
// that names a phone ("tel", "phone", "call", "mobile" or "cell", at most
// a few letters and punctuation between: "Phone number: 4155550132"), or
// as the whole string: an order number or other id of ten digits, with an
// area code and exchange that start with 2-9, given alone (as a JSON
// number's literal is) reads as a phone number, a risk accepted, as it
// only takes away. Ten-digit Unix times start with 1 until 2033.
func nextPhoneNANP(s string, from int) (int, int) {
	for i := from; i < len(s); i++ {
		c := s[i]
		if c != '+' && c != '(' && !(c >= '1' && c <= '9') {
			continue
		}
		if p := byteAt(s, i-1); isWord(p) || p == '+' || p == '.' || p == '-' || p == ' ' && digitAt(s, i-2) {
			continue
		}
		if e := phoneNANPAt(s, i); e >= 0 {
			return i, e
		}
		if e := plainNANPAt(s, i); e >= 0 {
			return i, e
		}
	}
	return -1, -1
}

// plainNANPAt returns the end of a North American number written as ten
// digits from p, where something says it is one, or -1.
func plainNANPAt(s string, p int) int {
	if digitRun(s, p) != 10 || !nxx(s, p) || !nxx(s, p+3) {
		return -1
	}
	e := p + 10
	if c := byteAt(s, e); isWord(c) || isNANPSep(c) && digitAt(s, e+1) {
		return -1
	}
	if p == 0 && e == len(s) || phoneWordBefore(s, p) {
		return e
	}
	return -1
}

// phoneWords name a phone; maxPhoneWordGap is how many bytes, none of them
// a digit or a bracket, may stand between one and the number.
var phoneWords = []string{"tel", "telephone", "phone", "phonenumber", "call", "mobile", "cell", "cellphone"}

const maxPhoneWordGap = 12

// phoneWordBefore reports whether one of phoneWords, as a word of its own
// (in any case, or ending where a camelCase word starts: "phoneNumber";
// "hotel", "iPhone", "telemetry" and "calls" do not count), ends at most
// maxPhoneWordGap bytes before p, with no digit and no '[' or ']' between:
// a replacement ("[phone]") is no word of the text.
func phoneWordBefore(s string, p int) bool {
	for gap := 1; gap <= maxPhoneWordGap && gap < p; gap++ {
		e := p - gap
		if c := s[e]; isDigit(c) || c == '[' || c == ']' {
			return false
		}
		if isLower(s[e]) || !isLetter(s[e-1]) {
			continue
		}
		for _, w := range phoneWords {
			if e >= len(w) && asciiEqualFold(s[e-len(w):e], w) && !isLetter(byteAt(s, e-len(w)-1)) {
				return true
			}
		}
	}
	return false
}

// asciiEqualFold reports whether t is lower, a lower-case ASCII word, in
// any case.
func asciiEqualFold(t, lower string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if isUpper(c) {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isNANPSep(c byte) bool { return c == '-' || c == '.' || c == ' ' }

// nxx reports whether s holds an area code or exchange at i.
func nxx(s string, i int) bool {
	return digitsAt(s, i, 3) && s[i] >= '2'
}

func phoneNANPAt(s string, p int) int {
	switch {
	case s[p] == '+':
		if byteAt(s, p+1) != '1' || !isNANPSep(byteAt(s, p+2)) {
			return -1
		}
		p += 3
	case s[p] == '1' && isNANPSep(byteAt(s, p+1)):
		p += 2
	}
	if byteAt(s, p) == '(' {
		if !nxx(s, p+1) || byteAt(s, p+4) != ')' {
			return -1
		}
		p += 5
		if byteAt(s, p) == ' ' {
			p++
		}
		if !nxx(s, p) || !isNANPSep(byteAt(s, p+3)) {
			return -1
		}
		p += 4
	} else {
		if !nxx(s, p) {
			return -1
		}
		sep := byteAt(s, p+3)
		if !isNANPSep(sep) || !nxx(s, p+4) || byteAt(s, p+7) != sep {
			return -1
		}
		p += 8
	}
	if !digitsAt(s, p, 4) {
		return -1
	}
	p += 4
	if c := byteAt(s, p); isWord(c) || isNANPSep(c) && digitAt(s, p+1) {
		return -1
	}
	return p
}

// nextPhoneNational finds a PRC mobile number written with dots,
// 138.0013.8000 (1[3-9]x.xxxx.xxxx, optionally after 86 or +86 and a
// space, a dash or a dot), and a UK mobile number in its national form,
// 07xxx xxxxxx or 07xxx xxx xxx (07 then 1-9: 070 and 076 are personal
// numbers and pagers, but few write them so). Neither is part of a word, of
// a longer dotted number ("1.138.0013.8000") or of a longer run of
// numbers, as for nextPhoneNANP.
func nextPhoneNational(s string, from int) (int, int) {
	for i := from; i < len(s); i++ {
		c := s[i]
		if c != '+' && c != '0' && c != '1' && c != '8' {
			continue
		}
		if p := byteAt(s, i-1); isWord(p) || p == '+' || p == '.' || p == '-' || p == ' ' && digitAt(s, i-2) {
			continue
		}
		e := -1
		if c == '0' {
			e = ukMobileAt(s, i)
		} else {
			e = dottedCNAt(s, i)
		}
		if e >= 0 {
			if c := byteAt(s, e); !isWord(c) && !(isNANPSep(c) && digitAt(s, e+1)) {
				return i, e
			}
		}
	}
	return -1, -1
}

// dottedCNAt returns the end of 1[3-9]x.xxxx.xxxx from p, after 86 or
// +86 and an optional separator, or -1.
func dottedCNAt(s string, p int) int {
	plus := s[p] == '+'
	if plus {
		p++
	}
	if strings.HasPrefix(s[p:], "86") {
		p += 2
		if isNANPSep(byteAt(s, p)) {
			p++
		}
	} else if plus {
		return -1
	}
	if byteAt(s, p) != '1' || byteAt(s, p+1) < '3' || byteAt(s, p+1) > '9' || digitRun(s, p) != 3 ||
		byteAt(s, p+3) != '.' || digitRun(s, p+4) != 4 || byteAt(s, p+8) != '.' || digitRun(s, p+9) != 4 {
		return -1
	}
	return p + 13
}

// ukMobileAt returns the end of 07xxx xxxxxx or 07xxx xxx xxx from p, or
// -1.
func ukMobileAt(s string, p int) int {
	if byteAt(s, p+1) != '7' || byteAt(s, p+2) == '0' || digitRun(s, p) != 5 || byteAt(s, p+5) != ' ' {
		return -1
	}
	switch p += 6; digitRun(s, p) {
	case 6:
		return p + 6
	case 3:
		if byteAt(s, p+3) == ' ' && digitRun(s, p+4) == 3 {
			return p + 7
		}
	}
	return -1
}
