package event

import (
	"fmt"
	"unicode/utf8"
)

// Shape bounds what a JSON document may look like before anyone decodes it:
// deep nesting and huge objects cost memory and CPU out of proportion to
// their size in bytes.
type Shape struct {
	// MaxDepth is the deepest nesting of objects and arrays allowed.
	MaxDepth int
	// MaxKeys is the most object keys allowed in the whole document.
	MaxKeys int
}

// Check scans raw once, without allocating, and reports the first limit it
// breaks, or invalid UTF-8. It does not otherwise validate JSON: the decoder
// that follows does.
func (s Shape) Check(raw []byte) error {
	if !utf8.Valid(raw) {
		return &FieldError{Field: "(body)", Msg: "is not valid UTF-8"}
	}
	depth, keys := 0, 0
	inString, escaped := false, false
	for _, c := range raw {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > s.MaxDepth {
				return &FieldError{Field: "(body)", Msg: fmt.Sprintf("nests deeper than %d levels", s.MaxDepth)}
			}
		case '}', ']':
			depth--
		case ':':
			keys++
			if keys > s.MaxKeys {
				return &FieldError{Field: "(body)", Msg: fmt.Sprintf("has more than %d keys", s.MaxKeys)}
			}
		}
	}
	return nil
}
