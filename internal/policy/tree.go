package policy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// jsonTree is one JSON value decoded into a flat, read-only form: every
// node in one slice, an object's members sorted by name with only the last
// of a repeated name kept (what decoding into a map and encoding it again
// gives), strings unescaped, numbers as their literal. Decoding contexts
// and properties into maps of interfaces was most of the enricher's work;
// a tree costs a few allocations however big the value.
type jsonTree struct {
	nodes []jsonNode // nodes[0] is the root
	kids  []int32    // the members or elements of containers, by position
}

// jsonNode is one value of a jsonTree.
type jsonNode struct {
	key  string // the member name, for a member of an object
	text string // a string's value; a number's literal
	// kind is '{', '[', '"', '0' (a number), 't', 'f' or 'n'.
	kind byte
	// first and n locate a container's members or elements in kids.
	first, n int32
}

// Node kinds.
const (
	kindObject = '{'
	kindArray  = '['
	kindString = '"'
	kindNumber = '0'
	kindTrue   = 't'
	kindFalse  = 'f'
	kindNull   = 'n'
)

// isScalar says whether a node is a string, number or boolean.
func (n *jsonNode) isScalar() bool {
	switch n.kind {
	case kindString, kindNumber, kindTrue, kindFalse:
		return true
	}
	return false
}

// children are the members or elements of node i.
func (t *jsonTree) children(i int32) []int32 {
	n := &t.nodes[i]
	return t.kids[n.first : n.first+n.n]
}

// member returns the node of object i's member name, or -1 (also when i
// is -1 or not an object).
func (t *jsonTree) member(i int32, name string) int32 {
	if i < 0 || t.nodes[i].kind != kindObject {
		return -1
	}
	kids := t.children(i)
	j, found := slices.BinarySearchFunc(kids, name, func(k int32, name string) int {
		return strings.Compare(t.nodes[k].key, name)
	})
	if !found {
		return -1
	}
	return kids[j]
}

// str returns node i's value if it is a string, else "".
func (t *jsonTree) str(i int32) string {
	if i < 0 || t.nodes[i].kind != kindString {
		return ""
	}
	return t.nodes[i].text
}

// maxTreeDepth bounds the nesting the fast decoder takes; deeper values
// are left to encoding/json, which has limits of its own.
const maxTreeDepth = 256

// decodeTree decodes raw, one JSON value with nothing after it but white
// space, exactly as encoding/json decodes it into an interface with
// UseNumber. ok is false when raw is not that, or holds something the fast
// decoder leaves to encoding/json (invalid UTF-8, escaped UTF-16
// surrogates, deep nesting): the caller then decodes with encoding/json,
// which gives the error or the value (treeOf).
func decodeTree(raw []byte) (t jsonTree, ok bool) {
	if !utf8.Valid(raw) {
		return jsonTree{}, false
	}
	// Every value but the root follows a colon, a comma or an opening
	// bracket: the nodes and kids slices are never grown.
	n := 1 + bytes.Count(raw, []byte{':'}) + bytes.Count(raw, []byte{','}) + bytes.Count(raw, []byte{'['})
	d := decoders.Get().(*treeDecoder)
	defer decoders.Put(d)
	d.s, d.i = string(raw), 0
	d.t = jsonTree{nodes: make([]jsonNode, 0, n), kids: make([]int32, 0, n)}
	ok = d.value("", 0)
	d.space()
	t, d.t, d.s, d.stack = d.t, jsonTree{}, "", d.stack[:0]
	if !ok || d.i != len(raw) {
		return jsonTree{}, false
	}
	return t, true
}

// decoders hold the scratch space of decodeTree.
var decoders = sync.Pool{New: func() any { return new(treeDecoder) }}

type treeDecoder struct {
	s     string // the whole input; unescaped strings are slices of it
	i     int
	t     jsonTree
	stack []int32 // the members of the containers being decoded
	buf   []byte  // unescaping
}

func (d *treeDecoder) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value decodes the value at d.i (after white space) into a new node.
func (d *treeDecoder) value(key string, depth int) bool {
	d.space()
	if d.i >= len(d.s) {
		return false
	}
	idx := int32(len(d.t.nodes))
	d.t.nodes = append(d.t.nodes, jsonNode{key: key})
	switch c := d.s[d.i]; {
	case c == '{':
		return depth < maxTreeDepth && d.object(idx, depth)
	case c == '[':
		return depth < maxTreeDepth && d.array(idx, depth)
	case c == '"':
		s, ok := d.string()
		d.t.nodes[idx].kind, d.t.nodes[idx].text = kindString, s
		return ok
	case c == '-' || c >= '0' && c <= '9':
		start := d.i
		if !d.number() {
			return false
		}
		d.t.nodes[idx].kind, d.t.nodes[idx].text = kindNumber, d.s[start:d.i]
		return true
	case strings.HasPrefix(d.s[d.i:], "true"):
		d.i += 4
		d.t.nodes[idx].kind = kindTrue
	case strings.HasPrefix(d.s[d.i:], "false"):
		d.i += 5
		d.t.nodes[idx].kind = kindFalse
	case strings.HasPrefix(d.s[d.i:], "null"):
		d.i += 4
		d.t.nodes[idx].kind = kindNull
	default:
		return false
	}
	return true
}

func (d *treeDecoder) object(idx int32, depth int) bool {
	d.i++ // {
	mark := len(d.stack)
	d.space()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
	} else {
		for {
			d.space()
			if d.i >= len(d.s) || d.s[d.i] != '"' {
				return false
			}
			name, ok := d.string()
			if !ok {
				return false
			}
			d.space()
			if d.i >= len(d.s) || d.s[d.i] != ':' {
				return false
			}
			d.i++
			d.stack = append(d.stack, int32(len(d.t.nodes)))
			if !d.value(name, depth+1) {
				return false
			}
			d.space()
			if d.i >= len(d.s) {
				return false
			}
			c := d.s[d.i]
			d.i++
			if c == '}' {
				break
			}
			if c != ',' {
				return false
			}
		}
	}
	members := d.stack[mark:]
	// Sorted by name; of a repeated name the last value counts, as when
	// decoding into a map.
	slices.SortStableFunc(members, func(a, b int32) int { return strings.Compare(d.t.nodes[a].key, d.t.nodes[b].key) })
	kept := members[:0]
	for i, m := range members {
		if i+1 < len(members) && d.t.nodes[members[i+1]].key == d.t.nodes[m].key {
			continue
		}
		kept = append(kept, m)
	}
	d.close(idx, kindObject, mark, kept)
	return true
}

func (d *treeDecoder) array(idx int32, depth int) bool {
	d.i++ // [
	mark := len(d.stack)
	d.space()
	if d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
	} else {
		for {
			d.stack = append(d.stack, int32(len(d.t.nodes)))
			if !d.value("", depth+1) {
				return false
			}
			d.space()
			if d.i >= len(d.s) {
				return false
			}
			c := d.s[d.i]
			d.i++
			if c == ']' {
				break
			}
			if c != ',' {
				return false
			}
		}
	}
	d.close(idx, kindArray, mark, d.stack[mark:])
	return true
}

// close records a container's members and pops them off the stack.
func (d *treeDecoder) close(idx int32, kind byte, mark int, members []int32) {
	n := &d.t.nodes[idx]
	n.kind, n.first, n.n = kind, int32(len(d.t.kids)), int32(len(members))
	d.t.kids = append(d.t.kids, members...)
	d.stack = d.stack[:mark]
}

// string decodes the string at d.i. Strings without escapes are slices of
// the input.
func (d *treeDecoder) string() (string, bool) {
	d.i++ // "
	start := d.i
	for d.i < len(d.s) {
		switch c := d.s[d.i]; {
		case c == '"':
			d.i++
			return d.s[start : d.i-1], true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		default:
			d.i++
		}
	}
	return "", false
}

// escaped finishes a string with escapes that starts at start.
func (d *treeDecoder) escaped(start int) (string, bool) {
	b := append(d.buf[:0], d.s[start:d.i]...)
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			d.buf = b
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.s) {
			return "", false
		}
		d.i += 2
		switch d.s[d.i-1] {
		case '"', '\\', '/':
			b = append(b, d.s[d.i-1])
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(d.s[d.i:])
			// Surrogates pair up, or become U+FFFD, by encoding/json's
			// rules: left to it.
			if !ok || r >= 0xd800 && r < 0xe000 {
				return "", false
			}
			d.i += 4
			b = utf8.AppendRune(b, r)
		default:
			return "", false
		}
	}
	return "", false
}

func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number skips a number as JSON writes them.
func (d *treeDecoder) number() bool {
	s, i := d.s, d.i
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	d.i = i
	return true
}

// treeOf is the tree of a value encoding/json decoded with UseNumber.
func treeOf(v any) jsonTree {
	var t jsonTree
	t.add("", v)
	return t
}

func (t *jsonTree) add(key string, v any) int32 {
	idx := int32(len(t.nodes))
	t.nodes = append(t.nodes, jsonNode{key: key})
	var kind byte
	var members []int32
	switch x := v.(type) {
	case nil:
		kind = kindNull
	case bool:
		kind = kindFalse
		if x {
			kind = kindTrue
		}
	case string:
		kind, t.nodes[idx].text = kindString, x
	case json.Number:
		kind, t.nodes[idx].text = kindNumber, string(x)
	case map[string]any:
		kind = kindObject
		names := make([]string, 0, len(x))
		for k := range x {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			members = append(members, t.add(k, x[k]))
		}
	case []any:
		kind = kindArray
		for _, e := range x {
			members = append(members, t.add("", e))
		}
	default:
		panic("policy: unexpected decoded JSON type") // encoding/json makes no other
	}
	n := &t.nodes[idx]
	n.kind, n.first, n.n = kind, int32(len(t.kids)), int32(len(members))
	t.kids = append(t.kids, members...)
	return idx
}

// decodeWithEncodingJSON decodes the first JSON value of raw as
// encoding/json does with UseNumber, into v.
func decodeWithEncodingJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers pass through unchanged
	return dec.Decode(v)
}
