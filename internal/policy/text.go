package policy

import (
	"strings"
	"unsafe"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/jsonscan"
)

// The de-identifier reads the context, properties and traits as the JSON
// text they came in, at offsets, instead of a decoded tree: ParseRaw (or
// Parse) validates each part once, and the writers scan what they keep
// straight into the output. Building the tree was a third of the
// enricher's JSON work, and most of it was for values it drops.

// Value kinds, as the first byte of a value says.
const (
	kindObject = '{'
	kindArray  = '['
	kindString = '"'
	kindNumber = '0'
	kindTrue   = 't'
	kindFalse  = 'f'
	kindNull   = 'n'
)

// validated is the nesting the scanners take in text already validated:
// the validation bounded it.
const validated = 1 << 30

// kindAt is the kind of the value at offset at of text, valid JSON.
func kindAt(text []byte, at int32) byte {
	switch c := text[at]; c {
	case '{', '[', '"', 't', 'f', 'n':
		return c
	}
	return kindNumber
}

// isScalar says whether the value at is a string, number or boolean.
func isScalar(text []byte, at int32) bool {
	switch text[at] {
	case '{', '[', 'n':
		return false
	}
	return true
}

// isBool says whether the value at is true or false.
func isBool(text []byte, at int32) bool {
	return text[at] == 't' || text[at] == 'f'
}

// valAt is the value at: a string's contents (unescaped), a number's or a
// boolean's literal. The string shares text's memory unless it had
// escapes.
func valAt(text []byte, at int32) string {
	s := jsonscan.Scanner{B: text, I: int(at), Limit: validated}
	switch text[at] {
	case '"':
		start, end, _ := s.Str()
		return stringOf(text[start:end], s.Escaped)
	case 't':
		return "true"
	case 'f':
		return "false"
	case 'n':
		return ""
	}
	s.Number()
	return unsafe.String(&text[at], s.I-int(at))
}

// strAt is the value at if it is a string, else "".
func strAt(text []byte, at int32) string {
	if at < 0 || text[at] != '"' {
		return ""
	}
	return valAt(text, at)
}

// stringOf is the contents of a string scanned and validated already.
func stringOf(raw []byte, escaped bool) string {
	if !escaped {
		if len(raw) == 0 {
			return ""
		}
		return unsafe.String(&raw[0], len(raw))
	}
	b, _ := jsonscan.Unescape(make([]byte, 0, len(raw)), raw)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// member is an object's member: its name and the offset of its value.
type member struct {
	key string
	val int32
}

// members iterates over the members of an object of validated text, in
// the order they come (repeated names included).
type members struct {
	s    jsonscan.Scanner
	more bool
	member
}

// membersAt starts iterating over the object at (none if it is not one).
func membersAt(text []byte, at int32) members {
	m := members{s: jsonscan.Scanner{B: text, I: int(at), Limit: validated}}
	if at >= 0 && text[at] == '{' {
		m.more, _ = m.s.Open('}')
	}
	return m
}

// next moves to the next member, false after the last.
func (m *members) next() bool {
	if !m.more {
		return false
	}
	start, end, _ := m.s.Key()
	m.key = stringOf(m.s.B[start:end], m.s.Escaped)
	m.val = int32(m.s.I)
	m.s.Value()
	m.more, _ = m.s.After('}')
	return true
}

// sortedMembers appends the members of the object at to dst sorted by
// name, only the last of a repeated name kept: what decoding into a map
// and encoding it again gives, which the outputs have always been.
func sortedMembers(dst []member, text []byte, at int32) []member {
	mark := len(dst)
	for m := membersAt(text, at); m.next(); {
		dst = append(dst, m.member)
	}
	ms := dst[mark:]
	// An insertion sort, stable, which only compares neighbours when
	// they are in order already, as most are. A repeated name shows as an
	// equal comparison.
	dup := false
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0; j-- {
			c := compareNames(ms[j-1].key, ms[j].key)
			if c <= 0 {
				dup = dup || c == 0
				break
			}
			ms[j-1], ms[j] = ms[j], ms[j-1]
		}
	}
	if !dup {
		return dst
	}
	kept := ms[:0]
	for i, m := range ms {
		if i+1 < len(ms) && ms[i+1].key == m.key {
			continue
		}
		kept = append(kept, m)
	}
	return dst[:mark+len(kept)]
}

// compareNames is strings.Compare, deciding on the first bytes where they
// differ, as member names mostly do, without a call.
func compareNames(a, b string) int {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] {
		return int(a[0]) - int(b[0])
	}
	return strings.Compare(a, b)
}

// elements iterates over the elements of an array of validated text.
type elements struct {
	s    jsonscan.Scanner
	more bool
	val  int32
}

// elementsAt starts iterating over the array at.
func elementsAt(text []byte, at int32) elements {
	e := elements{s: jsonscan.Scanner{B: text, I: int(at), Limit: validated}}
	e.more, _ = e.s.Open(']')
	return e
}

// next moves to the next element, false after the last.
func (e *elements) next() bool {
	if !e.more {
		return false
	}
	e.val = int32(e.s.I)
	e.s.Value()
	e.more, _ = e.s.After(']')
	return true
}

// appendScalar appends the value at, a string, number, boolean or null,
// as JSON.
func appendScalar(b []byte, text []byte, at int32) []byte {
	switch text[at] {
	case '"':
		return event.AppendString(b, valAt(text, at))
	case 't':
		return append(b, "true"...)
	case 'f':
		return append(b, "false"...)
	case 'n':
		return append(b, "null"...)
	}
	return append(b, valAt(text, at)...)
}
