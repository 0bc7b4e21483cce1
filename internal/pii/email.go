package pii

import "strings"

// emailPattern is what nextEmail matches, as the regular expression it
// replaces (internal/policy's scrubber had it); tests hold the two equal.
const emailPattern = `[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`

// nextEmail finds what emailPattern finds, as regexp does (leftmost-first
// matches, left to right), without the regular expression engine. A match
// is the run of local-part characters just before an @, and after it the
// longest domain that ends in a dot and two or more letters: the greedy
// (?:\.label)* takes as many labels as let the final \.[A-Za-z]{2,} match.
// The local part stops at from: a search starts where the last match ended.
func nextEmail(s string, from int) (int, int) {
	for {
		i := strings.IndexByte(s[from:], '@')
		if i < 0 {
			return -1, -1
		}
		at := from + i
		start := at
		for start > from && isEmailLocal(s[start-1]) {
			start--
		}
		if end := emailDomainEnd(s, at+1); start < at && end > 0 {
			return start, end
		}
		from = at + 1
	}
}

// emailDomainEnd is where the domain of emailPattern that starts at i
// ends, or -1 when none does.
func emailDomainEnd(s string, i int) int {
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
			end = k // \.[A-Za-z]{2,} matches here, after every label so far
		}
		for k < len(s) && isLabelChar(s[k]) {
			k++
		}
		if k == j+1 {
			break // an empty label ends the domain
		}
		j = k
	}
	return end
}

func isEmailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isLabelChar(c byte) bool { return isAlnum(c) || c == '-' }

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
