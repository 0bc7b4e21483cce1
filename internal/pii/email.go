package pii

import (
	"unicode"
	"unicode/utf8"
)

// emailPattern is what nextEmail matches in ASCII text without "%40", as
// the regular expression it replaces (internal/policy's scrubber had it);
// tests hold the two equal there.
const emailPattern = `[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`

// nextEmail finds an e-mail address: what emailPattern finds, as regexp
// does (leftmost-first matches, left to right), without the regular
// expression engine, and besides:
//
//   - "%40" stands for the @, as in a URL's query ("alice%40example.com"),
//     and is replaced with the rest;
//   - a letter, digit or combining mark beyond ASCII is a character of the
//     local part and of a domain label, and a letter beyond ASCII one of
//     the top-level domain ("leak.用户@example.cn", "alice@münchen.de"):
//     so Chinese text run into an address ("邮箱lee@163.com") goes with it,
//     a risk accepted, as it only takes away; punctuation and symbols
//     ("：", "，") do not;
//   - a format character (Unicode Cf: zero-width space, joiners, word
//     joiner, BOM, soft hyphen, direction marks) counts as absent inside
//     the address, and is replaced with it: "bob.app\u200b@example.com".
//
// A match is the run of local-part characters just before an @, and after
// it the longest domain that ends in a dot and two or more letters: the
// greedy (?:\.label)* takes as many labels as let the final \.[A-Za-z]{2,}
// match. The local part stops at from: a search starts where the last
// match ended.
func nextEmail(s string, from int) (int, int) {
	local := -1 // where the run of local-part characters before i starts
	for i := from; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '@':
				if local >= 0 {
					if end := emailDomainEnd(s, i+1); end > 0 {
						return local, end
					}
				}
				local = -1
				i++
				continue
			case c == '%' && i+2 < len(s) && s[i+1] == '4' && s[i+2] == '0':
				if local >= 0 {
					if end := emailDomainEnd(s, i+3); end > 0 {
						return local, end
					}
				}
				// "%40" is of the local part too: the run goes on.
			}
			if !isEmailLocal(c) {
				local = -1
			} else if local < 0 {
				local = i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case isInvisible(r): // as if absent: the run goes on, not starting
		case isWordRune(r):
			if local < 0 {
				local = i
			}
		default:
			local = -1
		}
		i += size
	}
	return -1, -1
}

// emailDomainEnd is where the domain that starts at i ends, or -1 when
// none does: one or more labels split by dots, the last of them starting
// with two or more letters (where the match ends).
func emailDomainEnd(s string, i int) int {
	j, n := labelEnd(s, i)
	if n == 0 {
		return -1
	}
	end := -1
	for j < len(s) && s[j] == '.' {
		k, letters := j+1, 0
		for k < len(s) {
			c := s[k]
			if c < utf8.RuneSelf {
				if !isLetter(c) {
					break
				}
				k++
				letters++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[k:])
			if isLetterRune(r) {
				letters++
			} else if !isInvisible(r) {
				break
			}
			k += size
		}
		if letters >= 2 {
			end = k // \.[A-Za-z]{2,} matches here, after every label so far
			for s[end-1] >= utf8.RuneSelf {
				r, size := utf8.DecodeLastRuneInString(s[:end])
				if !isInvisible(r) {
					break
				}
				end -= size // ends on a letter, not on what counts as absent
			}
		}
		k, n = labelEnd(s, k)
		if letters == 0 && n == 0 {
			break // an empty label ends the domain
		}
		j = k
	}
	return end
}

// labelEnd returns where the run of label characters from i ends, and how
// many characters (not counting invisible ones) it holds.
func labelEnd(s string, i int) (int, int) {
	n := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if !isLabelChar(c) {
				break
			}
			i++
			n++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if isWordRune(r) {
			n++
		} else if !isInvisible(r) {
			break
		}
		i += size
	}
	return i, n
}

var emailLocalTab = func() (t [utf8.RuneSelf]bool) {
	for c := 0; c < utf8.RuneSelf; c++ {
		t[c] = isAlnum(byte(c)) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
	}
	return t
}()

func isEmailLocal(c byte) bool { return c < utf8.RuneSelf && emailLocalTab[c] }

func isLabelChar(c byte) bool { return isAlnum(c) || c == '-' }

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isWordRune reports whether r, beyond ASCII, is a letter, a digit or a
// combining mark: what an internationalised address may hold.
func isWordRune(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r))
}

// isLetterRune reports whether r, beyond ASCII, is a letter or a combining
// mark: what an internationalised top-level domain may hold.
func isLetterRune(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsMark(r))
}

// isInvisible reports whether r is a format character (Unicode Cf), which
// shows as nothing: U+200B-U+200D, U+2060, U+FEFF, U+00AD, the direction
// marks and the like.
func isInvisible(r rune) bool { return unicode.Is(unicode.Cf, r) }
