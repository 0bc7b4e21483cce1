// Package jsonscan is a one-pass JSON scanner that validates as strictly as
// encoding/json (RFC 8259: no trailing commas, no leading zeros, control
// characters only escaped) without allocating or building values. The
// collector's one-pass decoders and the enricher's de-identifier both read
// their input with it, so they agree on what the fast paths take.
package jsonscan

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// Scanner walks B from I. Every method reports false when the text is not
// valid JSON or is something the scanner leaves to encoding/json (invalid
// UTF-8, nesting deeper than the limit): a false never means "invalid",
// only "not decided here".
type Scanner struct {
	B []byte
	I int
	// Depth is the current nesting of objects and arrays; MaxDepth the
	// deepest seen, Keys the object members seen (Key counts them), for
	// callers that bound a document's shape.
	Depth, MaxDepth, Keys int
	// Escaped says whether the last string scanned held a backslash.
	Escaped bool
	// Limit is the deepest nesting taken; 0 means DefaultLimit.
	Limit int
	// RefuseSurrogates leaves strings with an escaped UTF-16 surrogate to
	// encoding/json, for callers that unescape strings (see Unescape).
	RefuseSurrogates bool
}

// DefaultLimit bounds the nesting a Scanner takes unless told otherwise:
// the collector's shape limits refuse deeper documents long before.
const DefaultLimit = 512

// strSafe marks the bytes a string may hold as they are: not '"', not '\\',
// not a control character, and ASCII (non-ASCII bytes are checked as UTF-8).
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hexDigit marks 0-9, a-f and A-F.
var hexDigit = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()

// Eight bytes at a time, as lanes of a uint64 (internal/event's
// plainPrefix and internal/pii's census use the same names): ones holds 1
// in every lane, highs the top bit of every lane.
const ones, highs = 0x0101010101010101, 0x8080808080808080

// hasZero marks the top bit of the zero lanes of v. A borrow out of a zero
// lane may also mark the lane above it, never one below: the lowest mark
// is always a zero lane. v^(ones*c) makes the lanes equal to c zero.
func hasZero(v uint64) uint64 { return (v - ones) &^ v & highs }

// lookMask marks the bytes of w (eight, little-endian) that strSafe
// refuses: '"', '\\', a control character, or not ASCII. Its lowest mark is
// always such a byte (the bit tricks can only err towards a mark above a
// true one), so it locates the first byte to look at.
func lookMask(w uint64) uint64 {
	return hasZero(w^(ones*'"')) | hasZero(w^(ones*'\\')) | (w-ones*0x20)&^w&highs | w&highs
}

// WS skips insignificant whitespace.
func (s *Scanner) WS() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// Str scans a string starting at its opening quote and returns the bounds
// of its contents, still escaped (s.Escaped says whether any escape was
// seen).
func (s *Scanner) Str() (start, end int, ok bool) {
	b := s.B
	i := s.I + 1
	start = i
	s.Escaped = false
	for {
		// Eight bytes at a time while none of them needs a look.
		for i+8 <= len(b) {
			if m := lookMask(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		for i < len(b) && strSafe[b[i]] {
			i++
		}
		if i >= len(b) {
			return 0, 0, false
		}
		switch c := b[i]; {
		case c == '"':
			s.I = i + 1
			return start, i, true
		case c == '\\':
			s.Escaped = true
			if i+1 >= len(b) {
				return 0, 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !hexDigit[b[i+2]] || !hexDigit[b[i+3]] || !hexDigit[b[i+4]] || !hexDigit[b[i+5]] {
					return 0, 0, false
				}
				// Lone or mismatched surrogates are valid JSON; encoding/json
				// reads them as U+FFFD, and so would a string copied from
				// here into an envelope.
				// A hex digit from 8 on: 8, 9 or a letter (D800-DFFF).
				if s.RefuseSurrogates && b[i+2]|0x20 == 'd' && b[i+3] >= '8' {
					return 0, 0, false
				}
				i += 6
			default:
				return 0, 0, false
			}
		case c < 0x20:
			return 0, 0, false
		default: // non-ASCII
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, 0, false // encoding/json's to judge
			}
			i += size
		}
	}
}

// Literal scans the literal word at s.I.
func (s *Scanner) Literal(word string) bool {
	if len(s.B)-s.I < len(word) || string(s.B[s.I:s.I+len(word)]) != word {
		return false
	}
	s.I += len(word)
	return true
}

// Number scans a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *Scanner) Number() bool {
	b, i := s.B, s.I
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	s.I = i
	return true
}

// Value scans one value starting at s.I (no leading whitespace).
func (s *Scanner) Value() bool {
	if s.I >= len(s.B) {
		return false
	}
	switch c := s.B[s.I]; c {
	case '{':
		return s.Object()
	case '[':
		return s.Array()
	case '"':
		_, _, ok := s.Str()
		return ok
	case 't':
		return s.Literal("true")
	case 'f':
		return s.Literal("false")
	case 'n':
		return s.Literal("null")
	default:
		return s.Number()
	}
}

// After reads what follows a member or an element: a comma (more follow,
// and the whitespace after it is skipped) or closer, which ends the object
// or array. ok false: neither.
func (s *Scanner) After(closer byte) (more, ok bool) {
	s.WS()
	if s.I >= len(s.B) {
		return false, false
	}
	switch s.B[s.I] {
	case ',':
		s.I++
		s.WS()
		return true, true
	case closer:
		s.I++
		s.Depth--
		return false, true
	}
	return false, false
}

// Enter steps into the object or array whose opening bracket is at s.I,
// false when that nests deeper than the limit.
func (s *Scanner) Enter() bool {
	s.Depth++
	if s.Depth > s.MaxDepth {
		s.MaxDepth = s.Depth
	}
	s.I++
	limit := s.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	return s.Depth <= limit
}

// Open enters the object or array at s.I (whose closer is closer) and
// skips the whitespace after its opening bracket. more says it has a
// member or element, at s.I; an empty one is scanned whole.
func (s *Scanner) Open(closer byte) (more, ok bool) {
	if !s.Enter() {
		return false, false
	}
	s.WS()
	if s.I < len(s.B) && s.B[s.I] == closer {
		s.I++
		s.Depth--
		return false, true
	}
	return true, true
}

// Key scans a member's name at s.I and the colon after it, leaving s.I at
// its value, and returns the name's bounds, still escaped (see Escaped).
func (s *Scanner) Key() (start, end int, ok bool) {
	if s.I >= len(s.B) || s.B[s.I] != '"' {
		return 0, 0, false
	}
	if start, end, ok = s.Str(); !ok {
		return 0, 0, false
	}
	s.Keys++
	s.WS()
	if s.I >= len(s.B) || s.B[s.I] != ':' {
		return 0, 0, false
	}
	s.I++
	s.WS()
	return start, end, true
}

// Object scans the object at s.I.
func (s *Scanner) Object() bool {
	more, ok := s.Open('}')
	for ok && more {
		if _, _, ok = s.Key(); !ok || !s.Value() {
			return false
		}
		more, ok = s.After('}')
	}
	return ok
}

// Array scans the array at s.I.
func (s *Scanner) Array() bool {
	more, ok := s.Open(']')
	for ok && more {
		if !s.Value() {
			return false
		}
		more, ok = s.After(']')
	}
	return ok
}

// Unescape appends the contents of a string that Str scanned (between its
// quotes, escapes and all) to dst, unescaped. ok is false when it holds an
// escaped UTF-16 surrogate: encoding/json pairs those or makes them
// U+FFFD, and is left to decide.
func Unescape(dst, s []byte) (out []byte, ok bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(s) {
			return dst, false
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+6 > len(s) {
				return dst, false
			}
			var r rune
			for _, h := range s[i+2 : i+6] {
				switch {
				case h >= '0' && h <= '9':
					h -= '0'
				case h >= 'a' && h <= 'f':
					h = h - 'a' + 10
				case h >= 'A' && h <= 'F':
					h = h - 'A' + 10
				default:
					return dst, false
				}
				r = r<<4 | rune(h)
			}
			if r >= 0xd800 && r < 0xe000 {
				return dst, false
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default:
			return dst, false
		}
		i += 2
	}
	return dst, true
}

// numChar marks the bytes a number may hold after its first.
var numChar = func() (t [256]bool) {
	for _, c := range "0123456789+-.eE" {
		t[c] = true
	}
	return t
}()

// Skip moves past the value at s.I of text that a Scanner validated
// before, without checking it again: a second reading of a document need
// only find where its values end. Depth and Keys are left as they are.
func (s *Scanner) Skip() {
	b, i := s.B, s.I
	switch b[i] {
	case '"':
		s.SkipStr()
		return
	case 't', 'n':
		s.I = i + 4
		return
	case 'f':
		s.I = i + 5
		return
	case '{', '[':
	default:
		for i++; i < len(b) && numChar[b[i]]; i++ {
		}
		s.I = i
		return
	}
	depth := 0
	for {
		switch b[i] {
		case '"':
			s.I = i
			s.SkipStr()
			i = s.I
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				s.I = i + 1
				return
			}
		}
		i++
	}
}

// SkipStr is Str for text that a Scanner validated before: it only finds
// the closing quote (and sets Escaped).
func (s *Scanner) SkipStr() (start, end int) {
	b := s.B
	i := s.I + 1
	start = i
	s.Escaped = false
	for {
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			if m := hasZero(w^(ones*'"')) | hasZero(w^(ones*'\\')); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		for b[i] != '"' && b[i] != '\\' {
			i++
		}
		if b[i] == '"' {
			s.I = i + 1
			return start, i
		}
		s.Escaped = true
		i += 2 // the escaped byte is never a quote that ends the string
	}
}
