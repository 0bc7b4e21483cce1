package policy

// The flat tree the de-identifier read its input from before the single
// pass (text.go): the reference implementation's (reference_test.go).

import (
	"bytes"
	"encoding/json"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// jsonTree is one JSON value decoded into a flat, read-only form: every
// node in one slice, an object's members sorted by name with only the last
// of a repeated name kept (what decoding into a map and encoding it again
// gives), strings unescaped, numbers as their literal. Decoding contexts
// and properties into maps of interfaces was most of the enricher's work;
// a tree costs a few allocations however big the value, none of them
// scanned by the garbage collector.
type jsonTree struct {
	nodes []jsonNode // nodes[0] is the root
	kids  []int32    // the members or elements of containers, by position
	// text holds the names and values of nodes: the input, then the
	// strings that had escapes, unescaped.
	text string
	// dupNames says an object repeated a name (and only the last counts).
	dupNames bool
	// mem is where nodes and kids go back on release; nil for a tree that
	// is not reused.
	mem *treeMemory
}

// jsonNode is one value of a jsonTree.
type jsonNode struct {
	// key is the member name of an object's member; val is a string's
	// value, a number's literal, or, for a container decoded by
	// decodeTree, its JSON text. Both are offsets and lengths in text.
	keyOff, keyLen, valOff, valLen uint32
	// first and n locate a container's members or elements in kids.
	first, n int32
	// kind is '{', '[', '"', '0' (a number), 't', 'f' or 'n'.
	kind byte
}

func (t *jsonTree) kind(i int32) byte { return t.nodes[i].kind }

// key is node i's member name.
func (t *jsonTree) key(i int32) string {
	n := &t.nodes[i]
	return t.text[n.keyOff : n.keyOff+n.keyLen]
}

// val is node i's string value or number literal.
func (t *jsonTree) val(i int32) string {
	n := &t.nodes[i]
	return t.text[n.valOff : n.valOff+n.valLen]
}

// isScalar says whether node i is a string, number or boolean.
func (t *jsonTree) isScalar(i int32) bool {
	switch t.nodes[i].kind {
	case kindString, kindNumber, kindTrue, kindFalse:
		return true
	}
	return false
}

// isBool says whether node i is true or false.
func (t *jsonTree) isBool(i int32) bool {
	k := t.nodes[i].kind
	return k == kindTrue || k == kindFalse
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
	lo, hi := 0, len(kids)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if compareNames(t.key(kids[m]), name) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(kids) && t.key(kids[lo]) == name {
		return kids[lo]
	}
	return -1
}

// seek looks for name among the members kids of an object, sorted by
// name, from position j on: it returns the position of the first member
// not named before name, and that member if it is named name, else -1.
// Looking for names in order this way walks the members once.
func (t *jsonTree) seek(kids []int32, j int, name string) (int, int32) {
	for j < len(kids) && compareNames(t.key(kids[j]), name) < 0 {
		j++
	}
	if j < len(kids) && t.key(kids[j]) == name {
		return j, kids[j]
	}
	return j, -1
}

// str returns node i's value if it is a string, else "".
func (t *jsonTree) str(i int32) string {
	if i < 0 || t.nodes[i].kind != kindString {
		return ""
	}
	return t.val(i)
}

// maxTreeDepth bounds the nesting the fast decoder takes; deeper values
// are left to encoding/json, which has limits of its own.
const maxTreeDepth = 256

// decodeTree decodes raw, one JSON value with nothing after it but white
// space, exactly as encoding/json decodes it into an interface with
// UseNumber. ok is false when raw is not that, or holds something the fast
// decoder leaves to encoding/json (invalid UTF-8, escaped UTF-16
// surrogates, deep nesting, more than 4 GiB): the caller then decodes with
// encoding/json, which gives the error or the value (treeOf).
//
// The tree's strings share raw's memory (copying every record was a fifth
// of the enricher's allocations): raw must not change while the tree or a
// string from it is in use, and a string kept for long should be cloned,
// or it keeps all of raw alive.
func decodeTree(raw []byte) (t jsonTree, ok bool) {
	if len(raw) > math.MaxUint32/2 || !utf8.Valid(raw) {
		return jsonTree{}, false
	}
	// Every value but the root follows a colon, a comma or an opening
	// bracket: the nodes and kids slices are never grown.
	n := 1 + bytes.Count(raw, []byte{':'}) + bytes.Count(raw, []byte{','}) + bytes.Count(raw, []byte{'['})
	d := decoders.Get().(*treeDecoder)
	defer decoders.Put(d)
	d.s, d.i, d.extra = unsafe.String(unsafe.SliceData(raw), len(raw)), 0, d.extra[:0]
	d.t = newTree(n)
	ok = d.value(0, 0, 0)
	d.space()
	t, d.t, d.stack = d.t, jsonTree{}, d.stack[:0]
	if !ok || d.i != len(raw) {
		d.s = ""
		t.release()
		return jsonTree{}, false
	}
	t.text = d.s
	if len(d.extra) > 0 {
		t.text += string(d.extra)
	}
	d.s = ""
	return t, true
}

// treeMemory is the node and kids slices of a tree, kept in treeMemories
// once the tree is released (jsonTree.release) to serve the next: the nodes
// of a record were the largest of the enricher's allocations. Both hold no
// pointers, so a slice is ready for use once truncated.
type treeMemory struct {
	nodes []jsonNode
	kids  []int32
}

var treeMemories = sync.Pool{New: func() any { return new(treeMemory) }}

// newTree is an empty tree with room for n nodes.
func newTree(n int) jsonTree {
	m := treeMemories.Get().(*treeMemory)
	if cap(m.nodes) < n {
		m.nodes = make([]jsonNode, 0, n)
	}
	if cap(m.kids) < n {
		m.kids = make([]int32, 0, n)
	}
	return jsonTree{nodes: m.nodes[:0], kids: m.kids[:0], mem: m}
}

// release gives t's nodes and kids to be reused. t must not be used
// afterwards; its text may, it is not reused.
func (t *jsonTree) release() {
	if m := t.mem; m != nil {
		m.nodes, m.kids = t.nodes[:0], t.kids[:0]
		treeMemories.Put(m)
	}
	t.nodes, t.kids, t.mem = nil, nil, nil
}

// decoders hold the scratch space of decodeTree.
var decoders = sync.Pool{New: func() any { return new(treeDecoder) }}

type treeDecoder struct {
	s     string // the input
	i     int
	t     jsonTree
	stack []int32 // the members of the containers being decoded
	extra []byte  // unescaped strings, after the input in the tree's text
}

// after reads what follows a member or an element: a comma (more follow)
// or closer, which ends the object or array. ok false: neither.
func (d *treeDecoder) after(closer byte) (more, ok bool) {
	d.space()
	if d.i >= len(d.s) {
		return false, false
	}
	c := d.s[d.i]
	d.i++
	return c == ',', c == ',' || c == closer
}

func (d *treeDecoder) space() {
	s, i := d.s, d.i
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	d.i = i
}

// value decodes the value at d.i (after white space) into a new node
// named by the text at keyOff.
func (d *treeDecoder) value(keyOff, keyLen uint32, depth int) bool {
	d.space()
	if d.i >= len(d.s) {
		return false
	}
	idx := int32(len(d.t.nodes))
	d.t.nodes = append(d.t.nodes, jsonNode{keyOff: keyOff, keyLen: keyLen})
	start := d.i
	var kind byte
	switch c := d.s[d.i]; {
	case c == '{':
		if depth >= maxTreeDepth || !d.object(idx, depth) {
			return false
		}
		kind = kindObject
	case c == '[':
		if depth >= maxTreeDepth || !d.array(idx, depth) {
			return false
		}
		kind = kindArray
	case c == '"':
		off, n, ok := d.string()
		if !ok {
			return false
		}
		d.t.nodes[idx].kind, d.t.nodes[idx].valOff, d.t.nodes[idx].valLen = kindString, off, n
		return true
	case c == '-' || c >= '0' && c <= '9':
		if !d.number() {
			return false
		}
		kind = kindNumber
	case strings.HasPrefix(d.s[d.i:], "true"):
		d.i += 4
		kind = kindTrue
	case strings.HasPrefix(d.s[d.i:], "false"):
		d.i += 5
		kind = kindFalse
	case strings.HasPrefix(d.s[d.i:], "null"):
		d.i += 4
		kind = kindNull
	default:
		return false
	}
	n := &d.t.nodes[idx]
	n.kind, n.valOff, n.valLen = kind, uint32(start), uint32(d.i-start)
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
			off, n, ok := d.string()
			if !ok {
				return false
			}
			d.space()
			if d.i >= len(d.s) || d.s[d.i] != ':' {
				return false
			}
			d.i++
			d.stack = append(d.stack, int32(len(d.t.nodes)))
			if !d.value(off, n, depth+1) {
				return false
			}
			more, ok := d.after('}')
			if !ok {
				return false
			}
			if !more {
				break
			}
		}
	}
	members := d.stack[mark:]
	// Sorted by name (stable: an insertion sort, which only compares
	// neighbours when they are in order already, as most are); of a
	// repeated name the last value counts, as when decoding into a map.
	// Equal names end up next to each other, and an insertion compares
	// every new neighbour: a repeated name shows as an equal comparison.
	dup := false
	for i := 1; i < len(members); i++ {
		for j := i; j > 0; j-- {
			c := compareNames(d.key(members[j-1]), d.key(members[j]))
			if c <= 0 {
				dup = dup || c == 0
				break
			}
			members[j-1], members[j] = members[j], members[j-1]
		}
	}
	kept := members
	if dup {
		d.t.dupNames = true
		kept = members[:0]
		for i, m := range members {
			if i+1 < len(members) && d.key(members[i+1]) == d.key(m) {
				continue
			}
			kept = append(kept, m)
		}
	}
	d.close(idx, mark, kept)
	return true
}

// key is node i's name while decoding, when the tree's text is not
// complete yet.
func (d *treeDecoder) key(i int32) string {
	n := &d.t.nodes[i]
	if int(n.keyOff) < len(d.s) {
		return d.s[n.keyOff : n.keyOff+n.keyLen]
	}
	off := int(n.keyOff) - len(d.s)
	return string(d.extra[off : off+int(n.keyLen)]) // rare: a name with escapes
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
			if !d.value(0, 0, depth+1) {
				return false
			}
			more, ok := d.after(']')
			if !ok {
				return false
			}
			if !more {
				break
			}
		}
	}
	d.close(idx, mark, d.stack[mark:])
	return true
}

// close records a container's members and pops them off the stack.
func (d *treeDecoder) close(idx int32, mark int, members []int32) {
	n := &d.t.nodes[idx]
	n.first, n.n = int32(len(d.t.kids)), int32(len(members))
	d.t.kids = append(d.t.kids, members...)
	d.stack = d.stack[:mark]
}

// string decodes the string at d.i and returns where its value is in the
// tree's text: in the input when it has no escapes, else in extra.
func (d *treeDecoder) string() (off, n uint32, ok bool) {
	s, i := d.s, d.i+1
	start := i
	// Eight bytes at a time while none is a quote, a backslash or a
	// control character; the lowest byte a mask marks is one of those (a
	// mark above it may be a borrow's).
	for i+8 <= len(s) {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if m := hasZeroByte(w^(lsb*'"')) | hasZeroByte(w^(lsb*'\\')) | (w-lsb*0x20)&^w&msb; m != 0 {
			i += bits.TrailingZeros64(m) / 8
			break
		}
		i += 8
	}
	for i < len(s) && inString[s[i]] {
		i++
	}
	d.i = i
	switch {
	case i == len(s):
		return 0, 0, false
	case s[i] == '"':
		d.i++
		return uint32(start), uint32(i - start), true
	case s[i] == '\\':
		return d.escaped(start)
	}
	return 0, 0, false // a control character
}

// inString marks the bytes a JSON string holds as they are.
var inString = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasZeroByte is not zero when one of w's bytes is.
func hasZeroByte(w uint64) uint64 { return (w - lsb) &^ w & msb }

// escaped finishes a string with escapes that starts at start.
func (d *treeDecoder) escaped(start int) (off, n uint32, ok bool) {
	from := len(d.extra)
	b := append(d.extra, d.s[start:d.i]...)
	defer func() { d.extra = b }()
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return uint32(len(d.s) + from), uint32(len(b) - from), true
		case c < 0x20:
			return 0, 0, false
		case c != '\\':
			b = append(b, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.s) {
			return 0, 0, false
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
				return 0, 0, false
			}
			d.i += 4
			b = utf8.AppendRune(b, r)
		default:
			return 0, 0, false
		}
	}
	return 0, 0, false
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
// Its containers have no JSON text.
func treeOf(v any) jsonTree {
	var b treeBuilder
	b.add(0, 0, v)
	b.t.text = string(b.text)
	return b.t
}

type treeBuilder struct {
	t    jsonTree
	text []byte
}

// str adds s to the text and returns where it is.
func (b *treeBuilder) str(s string) (off, n uint32) {
	off = uint32(len(b.text))
	b.text = append(b.text, s...)
	return off, uint32(len(s))
}

func (b *treeBuilder) add(keyOff, keyLen uint32, v any) int32 {
	idx := int32(len(b.t.nodes))
	b.t.nodes = append(b.t.nodes, jsonNode{keyOff: keyOff, keyLen: keyLen})
	var kind byte
	var valOff, valLen uint32
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
		kind = kindString
		valOff, valLen = b.str(x)
	case json.Number:
		kind = kindNumber
		valOff, valLen = b.str(string(x))
	case map[string]any:
		kind = kindObject
		names := make([]string, 0, len(x))
		for k := range x {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			off, n := b.str(k)
			members = append(members, b.add(off, n, x[k]))
		}
	case []any:
		kind = kindArray
		for _, e := range x {
			members = append(members, b.add(0, 0, e))
		}
	default:
		panic("policy: unexpected decoded JSON type") // encoding/json makes no other
	}
	n := &b.t.nodes[idx]
	n.kind, n.valOff, n.valLen, n.first, n.n = kind, valOff, valLen, int32(len(b.t.kids)), int32(len(members))
	b.t.kids = append(b.t.kids, members...)
	return idx
}
