package policy

import (
	"encoding/json"
	"regexp"
	"slices"

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
// drop_fields removed, as JSON with object keys sorted. Keys and structure
// stay.
func (p *Profile) scrubProperties(in *Parsed) json.RawMessage {
	if !in.hasProps {
		return in.Env.Event.Properties
	}
	t := &in.props
	var path []string // keys from the root, while drop_fields may apply
	if len(p.drops) > 0 && t.kind(in.propsRoot) == kindObject {
		path = make([]string, 0, 8)
	}
	return p.appendScrubbed(make([]byte, 0, 2*len(in.Env.Event.Properties)), t, in.propsRoot, path, path != nil)
}

// appendScrubbed appends node i scrubbed. dropping says whether i is the
// properties object or reached from it through objects only, by path:
// drop_fields apply to its members.
func (p *Profile) appendScrubbed(b []byte, t *jsonTree, i int32, path []string, dropping bool) []byte {
	switch t.kind(i) {
	case kindString:
		return event.AppendString(b, scrubText(t.val(i), p.scrub))
	case kindNumber:
		lit := t.val(i)
		if s := scrubText(lit, p.scrub); s != lit {
			return event.AppendString(b, s)
		}
		return append(b, lit...)
	case kindObject:
		b = append(b, '{')
		written := 0
		for _, k := range t.children(i) {
			key := t.key(k)
			sub := path
			if dropping {
				if p.dropsProperty(path, key) {
					continue
				}
				sub = append(path, key)
			}
			b = appendKey(b, written, key)
			written++
			b = p.appendScrubbed(b, t, k, sub, dropping)
		}
		return append(b, '}')
	case kindArray:
		b = append(b, '[')
		for j, k := range t.children(i) {
			if j > 0 {
				b = append(b, ',')
			}
			b = p.appendScrubbed(b, t, k, nil, false)
		}
		return append(b, ']')
	}
	return appendScalar(b, t, i)
}

// dropsProperty reports whether drop_fields names properties.<path...>.<key>.
func (p *Profile) dropsProperty(path []string, key string) bool {
	for _, d := range p.drops {
		if len(d) == len(path)+2 && d[0] == "properties" && d[len(d)-1] == key && slices.Equal(d[1:len(d)-1], path) {
			return true
		}
	}
	return false
}
