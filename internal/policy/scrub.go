package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/consentflow/consentflow/internal/event"
)

// piPatterns find personal data that SDKs and developers put in free-form
// properties, most specific first: an 18-character PRC resident identity
// number holds 15 digits that would otherwise read as an IMEI.
type piPattern struct {
	re          *regexp.Regexp
	replacement string
}

var piPatterns = []piPattern{
	{regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`), "[email]"},
	{regexp.MustCompile(`\b[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]\b`), "[id_number]"},
	{regexp.MustCompile(`\b\d{15}\b`), "[imei]"},
	{regexp.MustCompile(`(?:\+|\b)(?:86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}\b`), "[phone]"},
	{regexp.MustCompile(`\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,4}\b`), "[phone]"},
}

// scrubText replaces every personal-data match in s.
func scrubText(s string, patterns []piPattern) string {
	for _, p := range patterns {
		s = p.re.ReplaceAllString(s, p.replacement)
	}
	return s
}

// scrubProperties returns the properties with personal data in string
// values, and numbers that are whole phone, IMEI or identity numbers,
// replaced by what they were ("[email]", "[phone]", ...). Keys and
// structure stay.
func (p *Profile) scrubProperties(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return raw, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &event.FieldError{Field: "event.properties", Msg: err.Error()}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if obj, ok := v.(map[string]any); ok {
		dropPaths(obj, p.drops, "properties")
	}
	if err := enc.Encode(scrubValue(v, p.scrub)); err != nil {
		return nil, fmt.Errorf("encode properties: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func scrubValue(v any, patterns []piPattern) any {
	switch x := v.(type) {
	case string:
		return scrubText(x, patterns)
	case json.Number:
		if s := scrubText(x.String(), patterns); s != x.String() {
			return s
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = scrubValue(e, patterns)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = scrubValue(e, patterns)
		}
		return x
	}
	return v
}

// dropPaths deletes each path of drops that starts at root from obj.
func dropPaths(obj map[string]any, drops [][]string, root string) {
	for _, path := range drops {
		if path[0] != root {
			continue
		}
		m := obj
		for _, k := range path[1 : len(path)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				m = nil
				break
			}
			m = next
		}
		if m != nil {
			delete(m, path[len(path)-1])
		}
	}
}
