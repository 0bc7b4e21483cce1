package catalogue

// Inference of a draft catalogue from a sample of events (`enricher
// catalogue infer`), so that adopting a catalogue starts from what the
// sources send rather than from a blank page.
//
// Data contract: an Inferrer reads events (Add, AddRecord, ReadNDJSON) and
// writes a draft in the catalogue's format (WriteYAML) that Parse accepts.
// The draft holds the event names, the keys and the paths seen, types,
// guessed classes and counts; never a value seen: the events are assumed
// to hold personal information, and so are keys that look like it (an
// e-mail address used as a key), which are counted, not written. Memory is
// bounded by InferOptions.MaxEvents and MaxPaths, whatever the input.
//
// This file walks events into the Inferrer; inferinput.go reads records
// and lines of them, inferdraft.go guesses classes and writes the draft.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/pii"
)

// The default bounds of an Inferrer.
const (
	// DefaultMaxEvents is how many distinct events are inferred at most.
	DefaultMaxEvents = 1000
	// DefaultMaxPaths is how many distinct paths of one event are
	// inferred at most (objects' and arrays' own paths included).
	DefaultMaxPaths = 2000
)

// InferOptions configures an Inferrer.
type InferOptions struct {
	// ContextPaths are the parts of the Segment context that may be
	// declared: each key with the keys kept inside it when it is an object,
	// nil when it holds a value. Nothing else of a context is looked at.
	// It is the enricher's context allow-list, which the caller passes:
	// a catalogue declaring anything else is refused at start-up.
	ContextPaths map[string][]string
	// MaxEvents bounds the distinct events and MaxPaths the distinct
	// paths per event; those beyond are counted, not inferred. Zero
	// means DefaultMaxEvents and DefaultMaxPaths.
	MaxEvents, MaxPaths int
	// Scrubber finds personal information in values and keys; nil means
	// pii.NewScrubber().
	Scrubber *pii.Scrubber
}

// Inferrer proposes a draft catalogue from the events it is fed. It is not
// safe for concurrent use.
type Inferrer struct {
	sc                  *pii.Scrubber
	maxEvents, maxPaths int
	seed                maphash.Seed

	// total is the events added; occ numbers the current one, so a path
	// is counted once per event however many array elements hold it.
	total, occ int
	events     map[eventKey]*inferred
	context    *inferred

	// Events not inferred: beyond MaxEvents, track events whose name is
	// personal information or cannot be declared; page and screen
	// events whose name is personal information (counted under "*").
	moreEvents, piNames, badNames distinct
	piPageNames                   int
}

type eventKey struct{ typ, name string }

// inferred is what was seen of one event (or of every event's context).
type inferred struct {
	typ, name string
	count     int
	root      *inode
	paths     int
	// Keys that are personal information, keys that cannot be written
	// as a path, paths beyond MaxPaths: counted, never written.
	piKeys, badKeys, morePaths distinct
}

// JSON types, in the order a tie between the most frequent is broken.
const (
	tString = iota
	tInteger
	tNumber // with a fraction or an exponent
	tBoolean
	tObject
	tArray
	tNull
	nTypes
)

var jsonTypeNames = [nTypes]string{"string", "integer", "number", "boolean", "object", "array", "null"}

// inode is what was seen at one path.
type inode struct {
	path string // as declared: "a.b", "c[]", "c[].d"; "" for the root
	// keyKind is what pii.KeyKind says the path's last key names.
	keyKind pii.Kind
	// sensitive says why the path holds sensitive data by its keys
	// ("key names age", "under health"), "" when it does not.
	sensitive string
	// seenIn is the events that had the path; last the latest of them.
	seenIn, last int
	n            [nTypes]int
	// kinds counts the values in which the scrubber found each kind,
	// within partial of them more than the PI itself (free text); piKeys
	// the members not recorded because their keys are PI.
	kinds           map[pii.Kind]int
	partial, piKeys int
	members         map[string]*inode
	elem            *inode
	// For the context: leaf takes the values here whatever they are;
	// only, when not nil, lists the members that may be looked at.
	leaf bool
	only map[string][]string
}

// NewInferrer returns an empty Inferrer.
func NewInferrer(opts InferOptions) *Inferrer {
	in := &Inferrer{sc: opts.Scrubber, maxEvents: opts.MaxEvents, maxPaths: opts.MaxPaths,
		seed: maphash.MakeSeed(), events: map[eventKey]*inferred{}}
	if in.sc == nil {
		in.sc = pii.NewScrubber()
	}
	if in.maxEvents <= 0 {
		in.maxEvents = DefaultMaxEvents
	}
	if in.maxPaths <= 0 {
		in.maxPaths = DefaultMaxPaths
	}
	only := map[string][]string{}
	for k, v := range opts.ContextPaths {
		only[k] = slices.Clone(v)
	}
	in.context = &inferred{root: &inode{only: only}}
	return in
}

// Add feeds one event: its type, its name (track: the event; page and
// screen: the name, "*" when it has none), its properties (track, page,
// screen) or traits (identify, group), and its context. Alias events carry
// nothing to declare but their existence. The error, when the event has
// no known type or a part that is not an object, names the field and
// never holds a value.
func (in *Inferrer) Add(ev *event.Event) error {
	var body json.RawMessage
	field, name := "", ""
	switch ev.Type {
	case "track":
		if strings.TrimSpace(ev.Event) == "" {
			return errors.New("event is required for track")
		}
		field, name, body = "properties", ev.Event, ev.Properties
	case "page", "screen":
		field, name, body = "properties", ev.Name, ev.Properties
		if name == "" {
			name = "*"
		}
	case "identify", "group":
		field, body = "traits", ev.Traits
	case "alias":
	default:
		return fmt.Errorf("type is not one of %s", strings.Join(event.Types, ", "))
	}
	if !objectOrAbsent(body) {
		return fmt.Errorf("%s is not an object", field)
	}
	if !objectOrAbsent(ev.Context) {
		return errors.New("context is not an object")
	}
	in.total++
	in.occ++
	in.context.count++
	in.walkRaw(in.context, ev.Context)

	if named := ev.Type == "track"; name != "" && (name != "*" || named) {
		if in.mayBePersonal(name) {
			if named {
				in.piNames.add(in.seed, name)
				return nil
			}
			in.piPageNames++
			name = "*"
		} else if name == "*" && named || !utf8.ValidString(name) || len(yamlKey(name)) > maxKeyBytes {
			if named {
				in.badNames.add(in.seed, name)
				return nil
			}
			name = "*"
		}
	}
	key := eventKey{ev.Type, name}
	e := in.events[key]
	if e == nil {
		if len(in.events) >= in.maxEvents {
			in.moreEvents.add(in.seed, ev.Type+"\x00"+name)
			return nil
		}
		e = &inferred{typ: ev.Type, name: name, root: &inode{}}
		in.events[key] = e
	}
	e.count++
	in.walkRaw(e, body)
	return nil
}

// objectOrAbsent says whether raw is a JSON object, null or nothing.
func objectOrAbsent(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null")) || t[0] == '{' && json.Valid(t)
}

// walkRaw records the object raw (valid, or null or absent) in e.
func (in *Inferrer) walkRaw(e *inferred, raw json.RawMessage) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	// raw is valid JSON: an error cannot happen, and would only leave the
	// event partly recorded.
	_ = in.walk(dec, e, e.root)
}

// walk records the next value of dec at n (nil: skips it).
func (in *Inferrer) walk(dec *json.Decoder, e *inferred, n *inode) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if n != nil && n.last != in.occ {
		n.last = in.occ
		n.seenIn++
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			n.add(tObject)
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				if err := in.walk(dec, e, in.member(e, n, key)); err != nil {
					return err
				}
			}
		} else {
			n.add(tArray)
			elem := in.elem(e, n)
			for dec.More() {
				if err := in.walk(dec, e, elem); err != nil {
					return err
				}
			}
		}
		_, err = dec.Token() // the closing } or ]
		return err
	case string:
		n.add(tString)
		in.find(n, t)
	case json.Number:
		if strings.ContainsAny(string(t), ".eE") {
			n.add(tNumber)
		} else {
			n.add(tInteger)
		}
		in.find(n, string(t)) // a phone or an identity number sent as a number
	case bool:
		n.add(tBoolean)
	case nil:
		n.add(tNull)
	}
	return nil
}

func (n *inode) add(t int) {
	if n != nil {
		n.n[t]++
	}
}

// mayBePersonal says whether a name or key may hold personal information:
// what the scrubber finds, and also an @, a percent escape or a run of
// five digits, which a scrubber's patterns may miss (a non-ASCII e-mail
// address, alice%40example.com, a phone number in an unknown format). A
// draft that declared such a name would let it leave the region once
// adopted.
func (in *Inferrer) mayBePersonal(s string) bool {
	if _, pi := in.sc.Find(s); pi || strings.ContainsAny(s, "@%") {
		return true
	}
	run := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			if run++; run >= 5 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// find counts the kind of personal information the scrubber finds in s.
func (in *Inferrer) find(n *inode, s string) {
	if n == nil {
		return
	}
	if kind, ok := in.sc.Find(s); ok {
		if n.kinds == nil {
			n.kinds = map[pii.Kind]int{}
		}
		n.kinds[kind]++
		if strings.TrimSpace(in.sc.Scrub(s)) != "["+string(kind)+"]" {
			n.partial++
		}
	}
}

// maxKeyBytes bounds a path or an event name as written (YAML refuses an
// implicit key longer than 1024 characters).
const maxKeyBytes = 512

// member is n's member key, created on first sight, or nil when it is not
// to be recorded: n is not, the key is personal information or cannot be
// written as a path, the context does not keep it, or e has MaxPaths.
func (in *Inferrer) member(e *inferred, n *inode, key string) *inode {
	if n == nil || n.leaf {
		return nil
	}
	if m := n.members[key]; m != nil {
		return m
	}
	var only map[string][]string
	leaf := false
	if n.only != nil {
		subs, ok := n.only[key]
		if !ok {
			return nil
		}
		if leaf = len(subs) == 0; !leaf {
			only = map[string][]string{}
			for _, s := range subs {
				only[s] = nil
			}
		}
	}
	if in.mayBePersonal(key) {
		e.piKeys.add(in.seed, key)
		n.piKeys++
		return nil
	}
	path := key
	if n.path != "" {
		path = n.path + "." + key
	}
	if key == "" || strings.ContainsAny(key, ".[]") || len(yamlKey(path)) > maxKeyBytes {
		e.badKeys.add(in.seed, key)
		return nil
	}
	if e.paths >= in.maxPaths {
		e.morePaths.add(in.seed, path)
		return nil
	}
	e.paths++
	m := &inode{path: path, leaf: leaf, only: only}
	m.keyKind, _ = pii.KeyKind(key)
	switch word := sensitiveWord(key); {
	case word != "":
		m.sensitive = "key names " + word
	case m.keyKind == pii.Location || m.keyKind == pii.Card:
		m.sensitive = "key names " + string(m.keyKind)
	case strings.HasPrefix(n.sensitive, "under "):
		m.sensitive = n.sensitive
	case n.sensitive != "":
		m.sensitive = "under " + n.path
	}
	if n.members == nil {
		n.members = map[string]*inode{}
	}
	n.members[key] = m
	return m
}

// elem is n's array element, created on first sight, or nil as member's.
func (in *Inferrer) elem(e *inferred, n *inode) *inode {
	// An array in an array has no catalogue path: the outer one is
	// declared a string.
	if n == nil || n.leaf || n.only != nil || strings.HasSuffix(n.path, "[]") {
		return nil
	}
	if n.elem != nil {
		return n.elem
	}
	path := n.path + "[]"
	if len(yamlKey(path)) > maxKeyBytes {
		e.badKeys.add(in.seed, path)
		return nil
	}
	if e.paths >= in.maxPaths {
		e.morePaths.add(in.seed, path)
		return nil
	}
	e.paths++
	n.elem = &inode{path: path, keyKind: n.keyKind, sensitive: n.sensitive}
	return n.elem
}

// sensitiveWords are words that, in a key, name sensitive personal
// information (PIPL art. 28: health, finance, beliefs, minors' data).
var sensitiveWords = []string{"age", "birthday", "birthdate", "health", "diagnosis", "salary", "income", "religion", "ethnicity"}

// sensitiveWord is the first of sensitiveWords that is a whole word of key
// (words split at anything but letters and digits, and camelCase humps),
// without case, or "".
func sensitiveWord(key string) string {
	for _, w := range words(key) {
		if w = strings.ToLower(w); slices.Contains(sensitiveWords, w) {
			return w
		}
	}
	return ""
}

func words(s string) []string {
	var out []string
	start := -1
	var prev rune
	for i, r := range s {
		alnum := unicode.IsLetter(r) || unicode.IsDigit(r)
		switch {
		case !alnum:
			if start >= 0 {
				out = append(out, s[start:i])
			}
			start = -1
		case start < 0:
			start = i
		case unicode.IsUpper(r) && unicode.IsLower(prev), unicode.IsDigit(r) != unicode.IsDigit(prev):
			out = append(out, s[start:i])
			start = i
		}
		prev = r
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// distinct counts distinct strings by their hash, remembering at most
// maxDistinct of them, and every occurrence.
type distinct struct {
	set  map[uint64]struct{}
	seen int
}

const maxDistinct = 1 << 10

func (d *distinct) add(seed maphash.Seed, s string) {
	d.seen++
	if d.set == nil {
		d.set = map[uint64]struct{}{}
	}
	if len(d.set) < maxDistinct {
		d.set[maphash.String(seed, s)] = struct{}{}
	}
}

// count is the distinct strings, "at least" when some were not remembered.
func (d *distinct) count() string {
	if len(d.set) >= maxDistinct {
		return "at least " + strconv.Itoa(len(d.set))
	}
	return strconv.Itoa(len(d.set))
}
