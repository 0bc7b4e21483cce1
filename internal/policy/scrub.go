package policy

import (
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
	// needsAt and minDigits are what any match must contain: most strings
	// have neither, and skipping the regex for them is most of scrubbing's
	// cost saved. Zero for configured patterns: they always run.
	needsAt   bool
	minDigits int
}

var piPatterns = []piPattern{
	{regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`), "[email]", true, 0},
	{regexp.MustCompile(`\b[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]\b`), "[id_number]", false, 17},
	{regexp.MustCompile(`\b\d{15}\b`), "[imei]", false, 15},
	{regexp.MustCompile(`(?:\+|\b)(?:86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}\b`), "[phone]", false, 11},
	{regexp.MustCompile(`\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,4}\b`), "[phone]", false, 6},
}

// scrubText replaces every personal-data match in s.
func scrubText(s string, patterns []piPattern) string {
	digits, at := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '@':
			at = true
		}
	}
	for _, p := range patterns {
		if digits < p.minDigits || (p.needsAt && !at) {
			continue
		}
		s = p.re.ReplaceAllString(s, p.replacement)
	}
	return s
}

// scrubProperties returns the properties with personal data in string
// values, and numbers that are whole phone, IMEI or identity numbers,
// replaced by what they were ("[email]", "[phone]", ...), and the profile's
// drop_fields removed. Keys and structure stay.
func (p *Profile) scrubProperties(in *Parsed) (json.RawMessage, error) {
	if !in.hasProps {
		return in.Env.Event.Properties, nil
	}
	v := scrubValue(in.props, p.scrub)
	if obj, ok := v.(map[string]any); ok {
		dropPaths(obj, p.drops, "properties")
	}
	b, err := event.AppendValue(nil, v)
	if err != nil {
		return nil, fmt.Errorf("encode properties: %w", err)
	}
	return b, nil
}

// scrubValue returns v with its strings scrubbed, in new maps and slices:
// the parsed event is shared by every profile.
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
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = scrubValue(e, patterns)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = scrubValue(e, patterns)
		}
		return out
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
