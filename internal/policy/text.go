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

// span is where a value is in its text: from at to end. esc says a string
// has escapes. at is -1 for a value that is absent.
type span struct {
	at, end int32
	esc     bool
}

// absent is the span of no value.
var absent = span{at: -1}

// spanAt scans the value at offset at of validated text.
func spanAt(text []byte, at int32) span {
	s := jsonscan.Scanner{B: text, I: int(at), Limit: validated}
	s.Skip()
	return span{at: at, end: int32(s.I), esc: s.Escaped && text[at] == '"'}
}

// kindOf is the kind of the value v of text, valid JSON.
func kindOf(text []byte, v span) byte {
	switch c := text[v.at]; c {
	case '{', '[', '"', 't', 'f', 'n':
		return c
	}
	return kindNumber
}

// isScalar says whether v is a string, number or boolean.
func isScalar(text []byte, v span) bool {
	switch text[v.at] {
	case '{', '[', 'n':
		return false
	}
	return true
}

// isBool says whether v is true or false.
func isBool(text []byte, v span) bool {
	return text[v.at] == 't' || text[v.at] == 'f'
}

// valOf is the value v: a string's contents (unescaped), a number's or a
// boolean's literal, "" for null. It shares text's memory unless it had
// escapes.
func valOf(text []byte, v span) string {
	switch text[v.at] {
	case '"':
		return stringOf(text[v.at+1:v.end-1], v.esc)
	case 'n':
		return ""
	}
	return unsafe.String(&text[v.at], int(v.end-v.at))
}

// strOf is v if it is a string, else "".
func strOf(text []byte, v span) string {
	if v.at < 0 || text[v.at] != '"' {
		return ""
	}
	return valOf(text, v)
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

// member is an object's member: its name and its value.
type member struct {
	key string
	v   span
}

// members iterates over the members of an object of validated text, in
// the order they come (repeated names included), skipping over values
// (jsonscan.Scanner.Skip) rather than checking them again.
type members struct {
	s    jsonscan.Scanner
	more bool
	member
}

// membersOf starts iterating over the members of v (none if it is not an
// object).
func membersOf(text []byte, v span) members {
	var m members
	if v.at >= 0 && text[v.at] == '{' {
		m.s = jsonscan.Scanner{B: text, I: int(v.at), Limit: validated}
		m.more, _ = m.s.Open('}')
	}
	return m
}

// next moves to the next member, false after the last.
func (m *members) next() bool {
	if !m.more {
		return false
	}
	start, end := m.s.SkipStr()
	m.key = stringOf(m.s.B[start:end], m.s.Escaped)
	m.s.WS()
	m.s.I++ // the colon
	m.s.WS()
	at := m.s.I
	m.s.Skip()
	m.v = span{at: int32(at), end: int32(m.s.I), esc: m.s.Escaped && m.s.B[at] == '"'}
	m.more, _ = m.s.After('}')
	return true
}

// sortedMembers appends the members of the object v to dst sorted by
// name, only the last of a repeated name kept: what decoding into a map
// and encoding it again gives, which the outputs have always been.
func sortedMembers(dst []member, text []byte, v span) []member {
	mark := len(dst)
	for m := membersOf(text, v); m.next(); {
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
	v    span
}

// elementsOf starts iterating over the elements of the array v.
func elementsOf(text []byte, v span) elements {
	e := elements{s: jsonscan.Scanner{B: text, I: int(v.at), Limit: validated}}
	e.more, _ = e.s.Open(']')
	return e
}

// next moves to the next element, false after the last.
func (e *elements) next() bool {
	if !e.more {
		return false
	}
	at := e.s.I
	e.s.Skip()
	e.v = span{at: int32(at), end: int32(e.s.I), esc: e.s.Escaped && e.s.B[at] == '"'}
	e.more, _ = e.s.After(']')
	return true
}

// appendScalar appends v, a string, number, boolean or null, as JSON.
func appendScalar(b []byte, text []byte, v span) []byte {
	switch text[v.at] {
	case '"':
		return event.AppendString(b, valOf(text, v))
	case 'n':
		return append(b, "null"...)
	}
	return append(b, text[v.at:v.end]...)
}
