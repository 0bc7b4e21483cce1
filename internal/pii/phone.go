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
//     area code in parentheses (nextPhoneNANP).
//
// Bare digit runs (order numbers, timestamps, ids) are none of these, nor
// are dates (4-2-2), times, prices and versions.

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
	}
	return -1, -1
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
