package event

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// scanner walks JSON text once, validating it as strictly as the reference
// decoder (RFC 8259: no trailing commas, no leading zeros, control
// characters only escaped) while it counts what Shape bounds. It never
// allocates and never builds values: the one-pass decoders (fast.go) use
// it to find the fields they copy.
//
// Every method reports false when the text is not valid JSON or is
// something the scanner leaves to the reference decoder (invalid UTF-8,
// nesting deeper than maxScanDepth): a false never means "invalid", only
// "not decided here".
type scanner struct {
	b []byte
	i int
	// depth is the current nesting of objects and arrays; maxDepth the
	// deepest seen, keys the object members seen.
	depth, maxDepth, keys int
	// escaped says whether the last string scanned held a backslash.
	escaped bool
}

// maxScanDepth bounds the scanner's recursion; deeper documents go to the
// reference decoder (and Shape refuses them long before).
const maxScanDepth = 512

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

// lookMask marks the bytes of w (eight, little-endian) that strSafe
// refuses: '"', '\\', a control character, or not ASCII. Its lowest mark is
// always such a byte (the bit tricks can only err towards a mark above a
// true one), so it locates the first byte to look at.
func lookMask(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	return hasZero(w^(ones*'"')) | hasZero(w^(ones*'\\')) | (w-ones*0x20)&^w&highs | w&highs
}

// ws skips insignificant whitespace.
func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str scans a string starting at its opening quote and returns the bounds
// of its contents, still escaped (s.escaped says whether any escape was
// seen).
func (s *scanner) str() (start, end int, ok bool) {
	b := s.b
	i := s.i + 1
	start = i
	s.escaped = false
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
			s.i = i + 1
			return start, i, true
		case c == '\\':
			s.escaped = true
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
				// Lone or mismatched surrogates are valid JSON; the reference
				// decoder reads them as U+FFFD, and so would a string copied
				// from here into an envelope.
				i += 6
			default:
				return 0, 0, false
			}
		case c < 0x20:
			return 0, 0, false
		default: // non-ASCII
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, 0, false // the reference decoder's to judge
			}
			i += size
		}
	}
}

// literal scans the literal word at s.i.
func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// number scans a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	b, i := s.b, s.i
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
	s.i = i
	return true
}

// value scans one value starting at s.i (no leading whitespace).
func (s *scanner) value() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; c {
	case '{':
		return s.object()
	case '[':
		return s.array()
	case '"':
		_, _, ok := s.str()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

// after reads what follows a member or an element: a comma (more follow)
// or closer, which ends the object or array. ok false: neither.
func (s *scanner) after(closer byte) (more, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return false, false
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		s.ws()
		return true, true
	case closer:
		s.i++
		s.depth--
		return false, true
	}
	return false, false
}

func (s *scanner) enter() bool {
	s.depth++
	if s.depth > s.maxDepth {
		s.maxDepth = s.depth
	}
	s.i++
	return s.depth <= maxScanDepth
}

func (s *scanner) object() bool {
	if !s.enter() {
		return false
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return true
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		if _, _, ok := s.str(); !ok {
			return false
		}
		s.keys++
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if !s.value() {
			return false
		}
		more, ok := s.after('}')
		if !ok || !more {
			return ok
		}
	}
}

func (s *scanner) array() bool {
	if !s.enter() {
		return false
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return true
	}
	for {
		if !s.value() {
			return false
		}
		more, ok := s.after(']')
		if !ok || !more {
			return ok
		}
	}
}
