// Package catalogue reads the event catalogue (a tracking plan): which
// events each source may send and, for every property, trait and context
// field, its JSON type and its class. The class says what may become of a
// value: public fields may leave the home region once de-identified,
// internal ones stay in it, personal ones are pseudonymized or dropped,
// sensitive ones are dropped everywhere. What may leave is declared, not
// guessed: the export profile passes declared public fields only.
//
// Data contract: Load and Parse return a Catalogue or an error that names
// the file, the line and the path of every mistake (a class or type that
// does not exist, a path declared twice, a path declared both a value and
// an object). A Catalogue is read-only and safe for concurrent use. This
// package does no I/O besides Load's read of the file, and emits no
// metrics.
package catalogue

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Class is what may become of a declared value.
type Class uint8

// The classes, from the most to the least shareable.
const (
	// Public may leave the home region once de-identified.
	Public Class = iota + 1
	// Internal stays in the home region.
	Internal
	// Personal identifies someone: pseudonymized in region when the field
	// names an identifier kind, else dropped; never exported.
	Personal
	// Sensitive is PIPL's sensitive personal information (precise location,
	// biometrics, health, finance, minors' data): dropped everywhere.
	Sensitive
)

var classNames = map[string]Class{"public": Public, "internal": Internal, "personal": Personal, "sensitive": Sensitive}

// String is the class as the catalogue spells it.
func (c Class) String() string { return nameOf(classNames, c) }

// nameOf is v's name in names, or "unknown".
func nameOf[T comparable](names map[string]T, v T) string {
	for name, x := range names {
		if x == v {
			return name
		}
	}
	return "unknown"
}

// Type is the JSON type a declared value must have.
type Type uint8

// The types a field may declare.
const (
	String Type = iota + 1
	Number
	Integer // a number without a fraction or exponent
	Boolean
)

var typeNames = map[string]Type{"string": String, "number": Number, "integer": Integer, "boolean": Boolean}

// String is the type as the catalogue spells it.
func (t Type) String() string { return nameOf(typeNames, t) }

// Allows says whether the string s is within the field's max_length and
// values.
func (f *Field) Allows(s string) bool {
	return (f.MaxLength == 0 || utf8.RuneCountInString(s) <= f.MaxLength) &&
		(len(f.Values) == 0 || slices.Contains(f.Values, s))
}

// Field is one declared value.
type Field struct {
	// Path is where it is, as declared: keys joined by dots, "[]" after
	// the key of an array whose elements it is in ("products[].sku").
	Path  string
	Type  Type
	Class Class
	// Pseudonym is the identifier kind a personal value is pseudonymized
	// under in region ("email", "phone", ...); empty drops it.
	Pseudonym string
	// MaxLength bounds a string's length in characters; zero: no bound.
	// Values, when not empty, are the only strings it may be. Either
	// narrows a public string to what may leave: a value outside them
	// does not leave the region.
	MaxLength int
	Values    []string
	// Line is where the field is declared.
	Line int
}

// Node is a point of a declared tree: a value (Field), or an object's
// members, or an array's element, or both of the last two never.
type Node struct {
	Field   *Field
	Members map[string]*Node
	Elem    *Node
	// names and kids are Members sorted by name, for Seek.
	names []string
	kids  []*Node
}

// Seek looks for the member name among the sorted member names from
// position j on: it returns the position of the first not sorted before
// name, and its declaration if it is name's, else nil. Looking up the
// sorted members of an object one after the other this way reads each
// declared name once, hashing none.
func (n *Node) Seek(j int, name string) (int, *Node) {
	if n == nil {
		return j, nil
	}
	for j < len(n.names) && n.names[j] < name {
		j++
	}
	if j < len(n.names) && n.names[j] == name {
		return j, n.kids[j]
	}
	return j, nil
}

// index sorts the members of n and of every node beneath it for Seek.
func (n *Node) index() {
	if n == nil {
		return
	}
	n.names, n.kids = n.names[:0], n.kids[:0]
	for name := range n.Members {
		n.names = append(n.names, name)
	}
	slices.Sort(n.names)
	for _, name := range n.names {
		n.kids = append(n.kids, n.Members[name])
		n.Members[name].index()
	}
	n.Elem.index()
}

// Member is the declaration of an object's member key, or nil.
func (n *Node) Member(key string) *Node {
	if n == nil {
		return nil
	}
	return n.Members[key]
}

// Line is where the first field under n is declared.
func (n *Node) Line() int { return lineOf(n) }

// Element is the declaration of an array's elements, or nil.
func (n *Node) Element() *Node {
	if n == nil {
		return nil
	}
	return n.Elem
}

// Event is one declared event.
type Event struct {
	// Type is the Segment type; Name the track event's or the page's or
	// screen's name, "*" for every page or screen not named, "" for
	// identify, group and alias.
	Type, Name string
	// Sources may send it; empty means every source.
	Sources []string
	// Properties and Traits are the declared trees (objects); nil when
	// nothing is declared.
	Properties, Traits *Node
	Line               int
}

// Named says whether the event's name is declared, and so may leave the
// region as sent: a wildcard page or screen's is not.
func (e *Event) Named() bool { return e != nil && e.Name != "*" }

// AllowsSource says whether source may send the event.
func (e *Event) AllowsSource(source string) bool {
	return len(e.Sources) == 0 || slices.Contains(e.Sources, source)
}

// Catalogue is a parsed event catalogue.
type Catalogue struct {
	// File is where it was read from.
	File string
	// Context is the declared tree of the Segment context.
	Context *Node
	// events by type, then name ("" for unnamed types).
	events map[string]map[string]*Event
}

// Types with names (track by event, page and screen by page name) and
// without.
var (
	namedTypes   = []string{"track", "page", "screen"}
	unnamedTypes = []string{"identify", "group", "alias"}
)

// Lookup returns the declaration of an event of type typ named name
// (track: the event; page, screen: the name, else the "*" entry), or nil.
func (c *Catalogue) Lookup(typ, name string) *Event {
	if c == nil {
		return nil
	}
	byName := c.events[typ]
	if e := byName[name]; e != nil {
		return e
	}
	if typ == "page" || typ == "screen" {
		return byName["*"]
	}
	return nil
}

// Events lists the declared events, by type and then name.
func (c *Catalogue) Events() []*Event {
	var out []*Event
	for _, typ := range slices.Concat(namedTypes, unnamedTypes) {
		names := make([]string, 0, len(c.events[typ]))
		for name := range c.events[typ] {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			out = append(out, c.events[typ][name])
		}
	}
	return out
}

// Load reads and parses the catalogue file at path.
func Load(path string) (*Catalogue, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalogue: %w", err)
	}
	return Parse(path, raw)
}

// Error is a mistake in a catalogue, where it is.
type Error struct {
	File string
	Line int
	// Path is the catalogue key path of the mistake, e.g.
	// "track.Order Completed.properties.price".
	Path string
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Path, e.Msg)
}

// Parse parses a catalogue; file names it in errors. Every mistake is
// reported, each as an *Error, joined.
func Parse(file string, raw []byte) (*Catalogue, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	p := parser{file: file, c: &Catalogue{File: file, events: map[string]map[string]*Event{}}}
	if len(doc.Content) == 0 {
		return nil, &Error{File: file, Line: 1, Path: "version", Msg: "the catalogue is empty"}
	}
	p.document(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return p.c, nil
}

type parser struct {
	file string
	c    *Catalogue
	errs []error
}

func (p *parser) fail(n *yaml.Node, path, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// members iterates over a mapping's keys and values, refusing a key given
// twice (YAML forbids it; a decoder into nodes does not check).
func (p *parser) members(n *yaml.Node, path string, each func(key string, k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "must be a mapping")
		return
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias // an anchor declares once what several events share
		}
		if first, dup := seen[k.Value]; dup {
			p.fail(k, join(path, k.Value), "declared twice (first at line %d)%s", first.Line, classDiff(first, k, n))
			continue
		}
		seen[k.Value] = k
		each(k.Value, k, v)
	}
}

// classDiff says how two declarations of the same key differ in class,
// when both are fields with classes.
func classDiff(first, second, mapping *yaml.Node) string {
	class := func(key *yaml.Node) string {
		for i := 0; i+1 < len(mapping.Content); i += 2 {
			if mapping.Content[i] == key {
				v := mapping.Content[i+1]
				for j := 0; v.Kind == yaml.MappingNode && j+1 < len(v.Content); j += 2 {
					if v.Content[j].Value == "class" {
						return v.Content[j+1].Value
					}
				}
			}
		}
		return ""
	}
	if a, b := class(first), class(second); a != b && a != "" && b != "" {
		return fmt.Sprintf(" with different classes, %s and %s", a, b)
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (p *parser) document(n *yaml.Node) {
	version := false
	p.members(n, "", func(key string, k, v *yaml.Node) {
		switch {
		case key == "version":
			version = true
			if v.Value != "1" {
				p.fail(v, key, "must be 1, got %q", v.Value)
			}
		case key == "context":
			p.c.Context = p.tree(v, key)
		case slices.Contains(namedTypes, key):
			byName := map[string]*Event{}
			p.c.events[key] = byName
			p.members(v, key, func(name string, k, v *yaml.Node) {
				if name == "" {
					p.fail(k, key, "an event name must not be empty")
					return
				}
				if name == "*" && key == "track" {
					p.fail(k, join(key, name), `"*" declares every page or screen; a track event is declared by its name`)
					return
				}
				byName[name] = p.event(v, join(key, name), key, name)
			})
		case slices.Contains(unnamedTypes, key):
			p.c.events[key] = map[string]*Event{"": p.event(v, key, key, "")}
		default:
			p.fail(k, key, "unknown key: want version, context, %s or %s", strings.Join(namedTypes, ", "), strings.Join(unnamedTypes, ", "))
		}
	})
	if !version {
		p.fail(n, "version", "is required (version: 1)")
	}
}

func (p *parser) event(n *yaml.Node, path, typ, name string) *Event {
	e := &Event{Type: typ, Name: name, Line: n.Line}
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "") {
		return e // declared, with nothing in it
	}
	p.members(n, path, func(key string, k, v *yaml.Node) {
		switch key {
		case "description":
		case "sources":
			if v.Kind != yaml.SequenceNode {
				p.fail(v, join(path, key), "must be a list of source ids")
				return
			}
			for _, s := range v.Content {
				e.Sources = append(e.Sources, s.Value)
			}
		case "properties":
			if typ == "identify" || typ == "group" || typ == "alias" {
				p.fail(k, join(path, key), "%s events carry traits, not properties", typ)
				return
			}
			e.Properties = p.tree(v, join(path, key))
		case "traits":
			if typ != "identify" && typ != "group" {
				p.fail(k, join(path, key), "only identify and group events carry traits")
				return
			}
			e.Traits = p.tree(v, join(path, key))
		default:
			p.fail(k, join(path, key), "unknown key: want description, sources, properties or traits")
		}
	})
	return e
}

// tree parses a mapping of field paths to declarations into a tree.
func (p *parser) tree(n *yaml.Node, path string) *Node {
	root := &Node{Members: map[string]*Node{}}
	p.members(n, path, func(fieldPath string, k, v *yaml.Node) {
		f := p.field(v, join(path, fieldPath), fieldPath)
		if f == nil {
			return
		}
		if err := root.insert(f); err != "" {
			p.fail(k, join(path, fieldPath), "%s", err)
		}
	})
	root.index()
	return root
}

func (p *parser) field(n *yaml.Node, path, fieldPath string) *Field {
	f := &Field{Path: fieldPath, Line: n.Line}
	if _, err := splitPath(fieldPath); err != "" {
		p.fail(n, path, "%s", err)
		return nil
	}
	ok := true
	p.members(n, path, func(key string, k, v *yaml.Node) {
		switch key {
		case "type":
			if f.Type = typeNames[v.Value]; f.Type == 0 {
				p.fail(v, join(path, key), "%q is not string, number, integer or boolean", v.Value)
				ok = false
			}
		case "class":
			if f.Class = classNames[v.Value]; f.Class == 0 {
				p.fail(v, join(path, key), "%q is not public, internal, personal or sensitive", v.Value)
				ok = false
			}
		case "pseudonym":
			f.Pseudonym = v.Value
		case "max_length":
			if n, err := strconv.Atoi(v.Value); err != nil || n <= 0 {
				p.fail(v, join(path, key), "%q is not a positive number of characters", v.Value)
				ok = false
			} else {
				f.MaxLength = n
			}
		case "values":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				p.fail(v, join(path, key), "must be a list of the strings the field may be")
				ok = false
				break
			}
			for _, e := range v.Content {
				f.Values = append(f.Values, e.Value)
			}
		case "description":
		default:
			p.fail(k, join(path, key), "unknown key: want type, class, pseudonym, max_length, values or description")
			ok = false
		}
	})
	switch {
	case !ok:
		return nil
	case f.Type == 0 || f.Class == 0:
		p.fail(n, path, "type and class are required")
		return nil
	case f.Pseudonym != "" && f.Class != Personal:
		p.fail(n, path, "pseudonym applies to personal fields only, not %s", f.Class)
		return nil
	case f.Pseudonym != "" && !validKind(f.Pseudonym):
		p.fail(n, path, "pseudonym %q must be 1-32 of a-z, 0-9 and _", f.Pseudonym)
		return nil
	case (f.MaxLength > 0 || len(f.Values) > 0) && f.Type != String:
		p.fail(n, path, "max_length and values apply to strings only, not %s", f.Type)
		return nil
	}
	return f
}

func validKind(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// step is one step of a field path: a member key, then whether it is an
// array whose elements the path goes into.
type step struct {
	key   string
	array bool
}

// splitPath splits "a.b[].c" into its steps, or says what is wrong.
func splitPath(path string) ([]step, string) {
	if path == "" {
		return nil, "an empty path"
	}
	var steps []step
	for _, part := range strings.Split(path, ".") {
		key, array := strings.CutSuffix(part, "[]")
		if key == "" || strings.ContainsAny(key, "[]") {
			return nil, fmt.Sprintf("%q is not a path of keys joined by dots, with [] after an array's key", path)
		}
		steps = append(steps, step{key, array})
	}
	return steps, ""
}

// insert adds f to the tree, or says why it cannot be: a path declared
// twice, or a value where an object or array is declared.
func (n *Node) insert(f *Field) string {
	steps, _ := splitPath(f.Path)
	at := n
	for i, s := range steps {
		next := at.Members[s.key]
		if next == nil {
			next = &Node{}
			at.Members[s.key] = next
		}
		if s.array {
			if next.Field != nil || next.Members != nil {
				return fmt.Sprintf("%s is declared at line %d as %s, not an array", strings.Join(keysOf(append(steps[:i:i], step{key: s.key})), "."), lineOf(next), kindOf(next))
			}
			if next.Elem == nil {
				next.Elem = &Node{}
			}
			next = next.Elem
		}
		last := i == len(steps)-1
		switch {
		case last && next.Field != nil:
			diff := ""
			if next.Field.Class != f.Class {
				diff = fmt.Sprintf(" with a different class (%s there, %s here)", next.Field.Class, f.Class)
			}
			return fmt.Sprintf("declared twice, first at line %d%s", next.Field.Line, diff)
		case last && (next.Members != nil || next.Elem != nil):
			return fmt.Sprintf("is declared at line %d as %s, not a value", lineOf(next), kindOf(next))
		case last:
			next.Field = f
		case next.Field != nil || next.Elem != nil:
			return fmt.Sprintf("%s is declared at line %d as %s, not an object", strings.Join(keysOf(steps[:i+1]), "."), lineOf(next), kindOf(next))
		case next.Members == nil:
			next.Members = map[string]*Node{}
		}
		at = next
	}
	return ""
}

func keysOf(steps []step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.key
		if s.array {
			out[i] += "[]"
		}
	}
	return out
}

// lineOf is the line of the first field declared under n.
func lineOf(n *Node) int {
	switch {
	case n.Field != nil:
		return n.Field.Line
	case n.Elem != nil:
		return lineOf(n.Elem)
	}
	line := 0
	for _, m := range n.Members {
		if l := lineOf(m); line == 0 || l < line {
			line = l
		}
	}
	return line
}

func kindOf(n *Node) string {
	switch {
	case n.Field != nil:
		return "a " + n.Field.Type.String()
	case n.Elem != nil:
		return "an array"
	}
	return "an object"
}

// ContextDeclarations is the declared tree of the context, nil (nothing
// declared) for a nil catalogue.
func (c *Catalogue) ContextDeclarations() *Node {
	if c == nil {
		return nil
	}
	return c.Context
}
