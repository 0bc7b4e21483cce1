package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrGateRefused marks an event the cross-border gate would not let out.
var ErrGateRefused = errors.New("cross-border gate refused the event")

// Exportable is an event de-identified to an export profile and checked
// for raw identifiers: the only value the export producer accepts. Its
// fields are unexported, so nothing outside this package can make one
// except through Export, and nothing can skip the check.
type Exportable struct {
	key, value []byte
}

// Key is the record key: the subject's export pseudonym.
func (x Exportable) Key() []byte { return x.key }

// Value is the export event as JSON.
func (x Exportable) Value() []byte { return x.value }

// minCheckedIDBytes is the length from which an identifier is refused
// wherever it occurs; a shorter one ("10086") occurs by chance inside other
// text, so it is refused only as a whole token (minTokenIDBytes and up).
const (
	minCheckedIDBytes = 6
	minTokenIDBytes   = 3
)

// Export de-identifies env to the export profile p and runs the last check:
// the event must be allowed to leave (cross-border consent), and its JSON
// must hold neither any raw identifier of the envelope (ids, device ids,
// addresses, user agents), however it got there, nor anything the
// scrubbers find (an e-mail address, a phone number, a MAC, ...). A refusal wraps
// ErrGateRefused and says which field's value leaked, never the value.
func Export(in *Parsed, d Decision, p *Profile) (Exportable, error) {
	if !d.Export || d.Drop != "" {
		return Exportable{}, fmt.Errorf("%w: no cross-border consent", ErrGateRefused)
	}
	var r passReport
	c, _, err := p.deidentify(in, d, nil, &r)
	if err != nil {
		return Exportable{}, err
	}
	if r.leak != "" {
		// A value kept as sent holds what the scrubbers find: a field
		// declared public wrongly, or a client that put it there.
		return Exportable{}, fmt.Errorf("%w: %s holds %s-shaped data", ErrGateRefused, r.leakAt, r.leak)
	}
	value, subject := c.AppendJSON(make([]byte, 0, c.SizeHint())), c.Subject
	var scratch [256]byte
	for _, id := range in.RawIdentifiers() {
		if leaks(value, append(scratch[:0], id.Value...)) || needsEscape(id.Value) && leaks(value, escaped(id.Value)) {
			return Exportable{}, fmt.Errorf("%w: output holds the raw value of %s", ErrGateRefused, id.Field)
		}
	}
	return Exportable{key: []byte(subject), value: value}, nil
}

// needsEscape reports whether json.Marshal writes s otherwise than as it
// is, between quotes.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if !unescaped[s[i]] {
			return true
		}
	}
	return false
}

// unescaped marks the bytes json.Marshal writes as they are in a string.
var unescaped = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// escaped is s as json.Marshal writes it, without the quotes.
func escaped(s string) []byte {
	quoted, _ := json.Marshal(s)
	return quoted[1 : len(quoted)-1]
}

// Identifier is one raw identifying value of an event and where it was.
type Identifier struct{ Field, Value string }

// leaks reports whether out holds id: anywhere for a long id, as a whole
// token (not inside a longer run of letters and digits) for a short one.
func leaks(out, id []byte) bool {
	switch {
	case len(id) >= minCheckedIDBytes:
		return bytes.Contains(out, id)
	case len(id) < minTokenIDBytes:
		return false
	}
	for i := 0; ; {
		j := bytes.Index(out[i:], id)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(id)
		if (start == 0 || !isAlnum(out[start-1])) && (end == len(out) || !isAlnum(out[end])) {
			return true
		}
		i = start + 1
	}
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
