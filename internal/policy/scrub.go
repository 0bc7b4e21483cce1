package policy

import (
	"regexp"
	"slices"
	"strings"

	"github.com/consentflow/consentflow/internal/event"
)

// piPatterns find personal data that SDKs and developers put in free-form
// properties, most specific first: an 18-character PRC resident identity
// number holds 15 digits that would otherwise read as an IMEI.
type piPattern struct {
	re          *regexp.Regexp
	replacement string
	// needsAt, needsPlus and minDigits are what any match must contain:
	// most strings have none, and skipping the regex for them is most of
	// scrubbing's cost saved. Zero for configured patterns: they always run.
	needsAt, needsPlus bool
	minDigits          int
	// replaceAll, when set, is re.ReplaceAllString(s, replacement) done
	// without the regular expression engine.
	replaceAll func(s string) string
}

var piPatterns = []piPattern{
	{re: regexp.MustCompile(emailPattern), replacement: "[email]", needsAt: true, replaceAll: scrubEmails},
	{re: regexp.MustCompile(`\b[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]\b`), replacement: "[id_number]", minDigits: 17},
	{re: regexp.MustCompile(`\b\d{15}\b`), replacement: "[imei]", minDigits: 15},
	{re: regexp.MustCompile(`(?:\+|\b)(?:86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}\b`), replacement: "[phone]", minDigits: 11},
	{re: regexp.MustCompile(`\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,4}\b`), replacement: "[phone]", needsPlus: true, minDigits: 6},
}

const emailPattern = `[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`

// scrubText replaces every personal-data match in s. What a string holds
// is counted before any replacement: replacements only take away.
func scrubText(s string, patterns []piPattern) string {
	digits, at, plus := 0, false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '@':
			at = true
		case c == '+':
			plus = true
		}
	}
	for _, p := range patterns {
		if digits < p.minDigits || (p.needsAt && !at) || (p.needsPlus && !plus) {
			continue
		}
		switch {
		case p.replaceAll != nil:
			s = p.replaceAll(s)
		case p.re.MatchString(s): // which, unlike replacing, allocates nothing
			s = p.re.ReplaceAllString(s, p.replacement)
		}
	}
	return s
}

// scrubEmails replaces what emailPattern matches with "[email]", as
// regexp's ReplaceAllString does (leftmost-first matches, left to right),
// in one pass. A match is the run of local-part characters just before an
// @, and after it the longest domain that ends in a dot and two or more
// letters: the greedy (?:\.label)* takes as many labels as let the final
// \.[A-Za-z]{2,} match.
func scrubEmails(s string) string {
	var b []byte
	from, copied := 0, 0
	for {
		i := strings.IndexByte(s[from:], '@')
		if i < 0 {
			break
		}
		at := from + i
		start := at
		for start > from && isEmailLocal(s[start-1]) {
			start--
		}
		if end := emailDomainEnd(s, at+1); start < at && end > 0 {
			if b == nil {
				b = make([]byte, 0, len(s))
			}
			b = append(append(b, s[copied:start]...), "[email]"...)
			copied, from = end, end
			continue
		}
		from = at + 1
	}
	if b == nil {
		return s
	}
	return string(append(b, s[copied:]...))
}

// emailDomainEnd is where the domain of emailPattern that starts at i
// ends, or -1 when none does.
func emailDomainEnd(s string, i int) int {
	j := i
	for j < len(s) && isLabelChar(s[j]) {
		j++
	}
	if j == i {
		return -1
	}
	end := -1
	for j < len(s) && s[j] == '.' {
		k := j + 1
		for k < len(s) && isLetter(s[k]) {
			k++
		}
		if k-(j+1) >= 2 {
			end = k // \.[A-Za-z]{2,} matches here, after every label so far
		}
		for k < len(s) && isLabelChar(s[k]) {
			k++
		}
		if k == j+1 {
			break // an empty label ends the domain
		}
		j = k
	}
	return end
}

func isEmailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isLabelChar(c byte) bool { return isAlnum(c) || c == '-' }

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// appendProperties appends the properties (in.hasProps) with personal
// data in string values, and numbers that are whole phone, IMEI or identity
// numbers, replaced by what they were ("[email]", "[phone]", ...), and the
// profile's drop_fields removed, as JSON with object keys sorted. Keys and
// structure stay.
func (p *Profile) appendProperties(b []byte, in *Parsed) []byte {
	t := &in.props
	var path []string // keys from the root, while drop_fields may apply
	if len(p.drops) > 0 && t.kind(in.propsRoot) == kindObject {
		path = make([]string, 0, 8)
	}
	return p.appendScrubbed(b, t, in.propsRoot, path, path != nil)
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
