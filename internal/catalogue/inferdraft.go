package catalogue

// The draft an Inferrer writes: the class each path is guessed to be, and
// the YAML of the catalogue's format.

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/consentflow/consentflow/internal/pii"
)

// InferSummary is what a draft holds.
type InferSummary struct {
	// Events is the events added; Declared the events and Paths the
	// paths (context included) the draft declares.
	Events, Declared, Paths int
}

// Summary is what WriteYAML would write, in numbers.
func (in *Inferrer) Summary() InferSummary {
	_, s := in.render()
	return s
}

// WriteYAML writes the draft catalogue: the format of configs/catalogue.yaml,
// events by type and then name, paths sorted, each with a comment saying
// how often it was seen and why its class was guessed.
func (in *Inferrer) WriteYAML(w io.Writer) error {
	doc, _ := in.render()
	_, err := w.Write(doc)
	return err
}

// Types in the order they are written, as Catalogue.Events lists them.
var inferTypes = slices.Concat(namedTypes, unnamedTypes)

const inferHeader = `# Draft event catalogue, inferred by "enricher catalogue infer" from %s.
# It is a draft: review every line before adopting it (README, "Event
# catalogue"), and add what the sample did not hold.
#
# The classes are guesses, and cautious ones:
#   - nothing is public: only a human promotes a field to public, once sure
#     that it may leave the region (de-identified);
#   - sensitive: a key naming a location, age, birthday, health, income and
#     the like (or under one), or values that looked like a location or a
#     card number;
#   - personal: a key naming personal information, or values in which the
#     scrubber found some (the comment says which kind); with a pseudonym
#     when they are an identifier (email, phone, device ids) and nothing
#     more, else dropped;
#   - internal: everything else.
# A type is the JSON type seen most often ("also seen" lists the others);
# integer when every number seen was whole. "in N of M": N of the M events
# seen had the path. No value seen is written in this file.
`

// render writes the draft and counts what it declares.
func (in *Inferrer) render() ([]byte, InferSummary) {
	var b bytes.Buffer
	sum := InferSummary{Events: in.total}
	fmt.Fprintf(&b, inferHeader, plural(in.total, "event", "events"))
	if in.moreEvents.seen > 0 {
		fmt.Fprintf(&b, "#\n# %s more distinct events (%s) are not declared: at most %d events are inferred.\n",
			in.moreEvents.count(), plural(in.moreEvents.seen, "occurrence", "occurrences"), in.maxEvents)
	}
	if in.piNames.seen > 0 {
		fmt.Fprintf(&b, "#\n# %s omitted (%s).\n", counted(in.piNames.count(), "track event name that is personal information", "track event names that are personal information"),
			plural(in.piNames.seen, "event", "events"))
	}
	if in.badNames.seen > 0 {
		fmt.Fprintf(&b, "#\n# %s (\"*\", not UTF-8, or too long) omitted (%s).\n", counted(in.badNames.count(), "track event name that cannot be declared", "track event names that cannot be declared"),
			plural(in.badNames.seen, "event", "events"))
	}
	if in.piPageNames > 0 {
		fmt.Fprintf(&b, "#\n# %s counted under \"*\".\n", plural(in.piPageNames,
			"page or screen event whose name is personal information is", "page or screen events whose names are personal information are"))
	}
	b.WriteString("version: 1\n")

	if fields := in.context.fields(); len(fields) > 0 {
		fmt.Fprintf(&b, "\ncontext:  # seen in %s\n", plural(in.context.count, "event", "events"))
		in.context.writeNotes(&b, "  ", in.maxPaths)
		writeFields(&b, "  ", fields)
		sum.Paths += len(fields)
	}

	for _, typ := range inferTypes {
		var names []string
		for k := range in.events {
			if k.typ == typ {
				names = append(names, k.name)
			}
		}
		if len(names) == 0 {
			continue
		}
		slices.Sort(names)
		indent := ""
		b.WriteString("\n")
		if slices.Contains(namedTypes, typ) {
			fmt.Fprintf(&b, "%s:\n", typ)
			indent = "  "
		}
		for _, name := range names {
			e := in.events[eventKey{typ, name}]
			key := typ
			if indent != "" {
				key = yamlKey(name)
			}
			fields := e.fields()
			sum.Declared++
			sum.Paths += len(fields)
			if len(fields) == 0 {
				fmt.Fprintf(&b, "%s%s: {}  # seen %s\n", indent, key, times(e.count))
				e.writeNotes(&b, indent+"  ", in.maxPaths)
				continue
			}
			fmt.Fprintf(&b, "%s%s:  # seen %s\n", indent, key, times(e.count))
			e.writeNotes(&b, indent+"  ", in.maxPaths)
			section := "properties"
			if typ == "identify" || typ == "group" {
				section = "traits"
			}
			fmt.Fprintf(&b, "%s  %s:\n", indent, section)
			writeFields(&b, indent+"    ", fields)
		}
	}
	return b.Bytes(), sum
}

// writeNotes writes, as comments, what of e was not declared.
func (e *inferred) writeNotes(b *bytes.Buffer, indent string, maxPaths int) {
	if e.piKeys.seen > 0 {
		fmt.Fprintf(b, "%s# %s omitted\n", indent, counted(e.piKeys.count(), "key that is personal information", "keys that are personal information"))
	}
	if e.badKeys.seen > 0 {
		fmt.Fprintf(b, "%s# %s omitted (empty, holding \".\", \"[\" or \"]\", or too long)\n", indent, counted(e.badKeys.count(), "key that cannot be written as a path", "keys that cannot be written as a path"))
	}
	if e.morePaths.seen > 0 {
		fmt.Fprintf(b, "%s# %s not declared: at most %d paths are inferred per event\n", indent, counted(e.morePaths.count(), "more path", "more paths"), maxPaths)
	}
}

// field is one line of the draft.
type field struct {
	path      string
	typ       Type
	class     Class
	pseudonym string
	comment   string
	// notes are comment lines written above it.
	notes []string
}

func writeFields(b *bytes.Buffer, indent string, fields []field) {
	for _, f := range fields {
		for _, n := range f.notes {
			fmt.Fprintf(b, "%s# %s\n", indent, n)
		}
		fmt.Fprintf(b, "%s%s: {type: %s, class: %s", indent, yamlKey(f.path), f.typ, f.class)
		if f.pseudonym != "" {
			fmt.Fprintf(b, ", pseudonym: %s", f.pseudonym)
		}
		fmt.Fprintf(b, "}  # %s\n", f.comment)
	}
}

// fields are the declarations of e's paths, sorted.
func (e *inferred) fields() []field {
	var out []field
	var notes [][2]string // a container's path, and what to say of it
	var collect func(n *inode)
	collect = func(n *inode) {
		nonNull, scalars := 0, 0
		for t := range tNull {
			nonNull += n.n[t]
			if t < tObject {
				scalars += n.n[t]
			}
		}
		seen := fmt.Sprintf("in %d of %d", n.seenIn, e.count)
		switch {
		case n.only != nil && n.path != "":
			// A context object: its kept members only, never itself.
			for _, k := range sortedKeys(n.members) {
				collect(n.members[k])
			}
			return
		case nonNull == 0:
			out = append(out, n.asString(e, seen+"; only null seen: declared string"))
			return
		case scalars == 0 && n.n[tObject] > 0 && n.n[tArray] > 0:
			out = append(out, n.asString(e, seen+"; seen as object and as array: declared string"))
			return
		}
		// The most frequent JSON type, integers and other numbers as one.
		counts := n.n
		counts[tNumber] += counts[tInteger]
		counts[tInteger] = 0
		win := tString
		for _, t := range []int{tNumber, tBoolean, tObject, tArray} {
			if counts[t] > counts[win] {
				win = t
			}
		}
		var also []string
		for _, t := range []int{tString, tNumber, tBoolean, tObject, tArray} {
			if t != win && counts[t] > 0 {
				also = append(also, jsonTypeNames[t])
			}
		}
		alsoSeen := ""
		if len(also) > 0 {
			alsoSeen = "; also seen: " + strings.Join(also, ", ")
		}
		switch {
		case win == tObject && n.leaf:
			out = append(out, n.asString(e, seen+"; seen as object: declared string"+alsoSeen))
		case win == tObject && len(n.members) == 0:
			out = append(out, n.asString(e, seen+"; only objects without a declarable member seen: declared string"+alsoSeen))
		case win == tObject:
			if alsoSeen != "" {
				notes = append(notes, [2]string{n.path, fmt.Sprintf("%s is an object %s%s", n.path, seen, alsoSeen)})
			}
			for _, k := range sortedKeys(n.members) {
				collect(n.members[k])
			}
		case win == tArray && strings.HasSuffix(n.path, "[]"):
			out = append(out, n.asString(e, seen+"; arrays in arrays seen: declared string"+alsoSeen))
		case win == tArray && n.elem == nil && !n.leaf:
			out = append(out, n.asString(e, seen+"; only empty arrays seen: declared string"+alsoSeen))
		case win == tArray && n.leaf:
			out = append(out, n.asString(e, seen+"; seen as array: declared string"+alsoSeen))
		case win == tArray:
			if alsoSeen != "" {
				notes = append(notes, [2]string{n.path, fmt.Sprintf("%s is an array %s%s", n.path, seen, alsoSeen)})
			}
			collect(n.elem)
		default:
			typ := map[int]Type{tString: String, tNumber: Number, tBoolean: Boolean}[win]
			if win == tNumber && n.n[tNumber] == 0 {
				typ = Integer
			}
			class, pseudonym, why := n.guess(typ)
			out = append(out, field{path: n.path, typ: typ, class: class, pseudonym: pseudonym, comment: seen + alsoSeen + why})
		}
	}
	for _, k := range sortedKeys(e.root.members) {
		collect(e.root.members[k])
	}
	slices.SortFunc(out, func(a, b field) int { return strings.Compare(a.path, b.path) })
	// A container's note goes above the first of its paths.
	for _, note := range notes {
		for i := range out {
			if strings.HasPrefix(out[i].path, note[0]+".") || strings.HasPrefix(out[i].path, note[0]+"[]") {
				out[i].notes = append(out[i].notes, note[1])
				break
			}
		}
	}
	return out
}

// asString declares n, whose values have no type a catalogue declares, as
// a string, of the class of everything seen at or under it.
func (n *inode) asString(e *inferred, comment string) field {
	class, why := Internal, map[string]bool{}
	var visit func(m *inode)
	visit = func(m *inode) {
		c, _, w := m.guess(String)
		class = max(class, c)
		if w != "" {
			why[strings.TrimPrefix(w, "; ")] = true
		}
		if m.piKeys > 0 {
			class = max(class, Personal)
			why["keys that are personal information seen"] = true
		}
		for _, k := range sortedKeys(m.members) {
			visit(m.members[k])
		}
		if m.elem != nil {
			visit(m.elem)
		}
	}
	visit(n)
	if len(why) > 0 {
		comment += "; " + strings.Join(slices.Sorted(maps.Keys(why)), "; ")
	}
	return field{path: n.path, typ: String, class: class, comment: comment}
}

// pseudonymKinds are identifiers a personal value is pseudonymized under
// rather than dropped: a keyed pseudonym of one still joins one person's
// events, and says nothing more.
var pseudonymKinds = []pii.Kind{pii.Email, pii.Phone, pii.DeviceID, pii.IMEI, pii.MAC}

// guess is the class of a value of type typ at n, its pseudonym kind, and
// why ("; key names email; values looked like email (3)"), or "" for
// internal.
func (n *inode) guess(typ Type) (Class, string, string) {
	var kinds []string
	for _, k := range sortedKeys(n.kinds) {
		kinds = append(kinds, fmt.Sprintf("%s (%d)", k, n.kinds[k]))
	}
	values := ""
	if len(kinds) > 0 {
		values = "; values looked like " + strings.Join(kinds, ", ")
	}
	if n.partial > 0 {
		values += fmt.Sprintf(", %d of them within longer text", n.partial)
	}
	if n.sensitive != "" || n.kinds[pii.Location] > 0 || n.kinds[pii.Card] > 0 {
		why := values
		if n.sensitive != "" {
			why = "; " + n.sensitive + why
		}
		return Sensitive, "", why
	}
	if n.keyKind == "" && len(n.kinds) == 0 {
		return Internal, "", ""
	}
	why := values
	if n.keyKind != "" {
		why = "; key names " + string(n.keyKind) + why
	}
	// A pseudonym when one identifier kind explains everything seen, each
	// value was that identifier and nothing more (a pseudonym of free text
	// joins nothing), and of a type an identifier may be.
	seen := map[pii.Kind]bool{}
	if n.keyKind != "" {
		seen[n.keyKind] = true
	}
	for k := range n.kinds {
		seen[k] = true
	}
	pseudonym := ""
	if len(seen) == 1 && n.partial == 0 && (typ == String || typ == Integer) {
		for k := range seen {
			if slices.Contains(pseudonymKinds, k) {
				pseudonym = string(k)
			}
		}
	}
	return Personal, pseudonym, why
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// yamlKey is s as a YAML mapping key: plain when that reads back as s,
// else double-quoted.
func yamlKey(s string) string {
	if plainKey(s) {
		return s
	}
	return strconv.Quote(s) // its escapes are YAML's, for valid UTF-8
}

func plainKey(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z' || s[0] == '_') || s[len(s)-1] == ' ' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-./[] ", c) >= 0) {
			return false
		}
	}
	switch strings.ToLower(s) {
	case "true", "false", "null", "yes", "no", "on", "off", "y", "n":
		return false
	}
	return true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func counted(n, one, many string) string {
	if n == "1" {
		return "1 " + one
	}
	return n + " " + many
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return strconv.Itoa(n) + " times"
}
