package pii

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Fold maps what a reader takes for ASCII to ASCII, so that a check with
// Find sees through it: fullwidth forms ("１３８", "＠") to their ASCII
// letters, the ideographic full stop to '.', the decimal digits of every
// script to 0-9, every kind of space to ' '; and it drops format
// characters (zero-width spaces and joiners) and combining marks, which
// split a number without showing. It returns s itself when s is ASCII.
// Fold is for checking: what it returns is not written anywhere.
func Fold(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r >= 0xFF01 && r <= 0xFF5E: // fullwidth ASCII
			b.WriteRune(r - 0xFEE0)
		case r == '。' || r == '｡':
			b.WriteByte('.')
		case unicode.IsDigit(r):
			b.WriteByte(byte('0' + digitValue(r)))
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		case unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Mn, r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// digitValue is the value of r, a decimal digit (Nd): Unicode puts each
// script's digits in runs of ten from zero, some runs side by side.
func digitValue(r rune) int {
	start := r
	for unicode.IsDigit(start - 1) {
		start--
	}
	return int(r-start) % 10
}
