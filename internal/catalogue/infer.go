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

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
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

// pseudonymKinds are identifiers a personal value is pseudonymized under
// rather than dropped: a keyed pseudonym of one still joins one person's
// events, and says nothing more.
var pseudonymKinds = []pii.Kind{pii.Email, pii.Phone, pii.DeviceID, pii.IMEI, pii.MAC}

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

// AddRecord feeds one JSON record: a raw-topic envelope (event.Envelope),
// a bare Segment event, or a Segment batch body ({"batch": [...]}). It
// returns how many events it added; the error says why the record, or
// some of a batch's events, were not, naming fields and never values.
func (in *Inferrer) AddRecord(raw []byte) (int, error) {
	var probe struct {
		SchemaVersion *int            `json:"schemaVersion"`
		Event         json.RawMessage `json:"event"`
		Batch         json.RawMessage `json:"batch"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return 0, recordError("", err)
	}
	switch {
	case len(probe.Batch) > 0 && !bytes.Equal(probe.Batch, []byte("null")):
		var events []json.RawMessage
		if err := json.Unmarshal(probe.Batch, &events); err != nil {
			return 0, errors.New("batch is not an array")
		}
		added, bad, first := 0, 0, error(nil)
		for i, raw := range events {
			if err := in.addEvent(raw, ""); err != nil {
				if bad++; first == nil {
					first = fmt.Errorf("batch[%d]: %w", i, err)
				}
				continue
			}
			added++
		}
		if bad > 0 {
			return added, fmt.Errorf("%d of the batch's %d events skipped, the first as %w", bad, len(events), first)
		}
		return added, nil
	case probe.SchemaVersion != nil && bytes.HasPrefix(bytes.TrimSpace(probe.Event), []byte("{")):
		if *probe.SchemaVersion != event.SchemaVersion {
			return 0, fmt.Errorf("envelope schemaVersion is not %d", event.SchemaVersion)
		}
		if err := in.addEvent(probe.Event, "event."); err != nil {
			return 0, err
		}
		return 1, nil
	}
	if err := in.addEvent(raw, ""); err != nil {
		return 0, err
	}
	return 1, nil
}

// addEvent decodes and adds one Segment event. The decoding is lenient (an
// event without ids or with an odd timestamp is still a sample of what a
// source sends); prefix is put before the fields errors name.
func (in *Inferrer) addEvent(raw json.RawMessage, prefix string) error {
	var ev event.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return recordError(prefix, err)
	}
	if err := in.Add(&ev); err != nil {
		return fmt.Errorf("%s%w", prefix, err)
	}
	return nil
}

// recordError says why a record did not decode, without its content
// (encoding/json's syntax errors quote it).
func recordError(prefix string, err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" && prefix == "" {
			return errors.New("not a JSON object")
		}
		if typeErr.Field == "" {
			return fmt.Errorf("%s is not a JSON object", strings.TrimSuffix(prefix, "."))
		}
		return fmt.Errorf("%s%s is not a %s", prefix, typeErr.Field, typeErr.Type)
	}
	return errors.New("not JSON")
}

// MaxLineBytes bounds a line ReadNDJSON reads; a longer line is skipped.
const MaxLineBytes = 16 << 20

// ReadNDJSON feeds every line of r (newline-delimited JSON, each line a
// record as AddRecord takes) and calls bad, if not nil, with the number
// (from 1) of each line not read whole and why, in words that never hold
// the line's content. Blank lines are skipped. It returns the events
// added and the error of reading r, if any.
func (in *Inferrer) ReadNDJSON(r io.Reader, bad func(line int, err error)) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	added := 0
	for line := 1; ; line++ {
		var tooLong bool
		var err error
		var size int
		buf, size, tooLong, err = readLine(br, buf[:0])
		if err != nil && err != io.EOF {
			return added, err
		}
		if size == 0 && err == io.EOF {
			return added, nil
		}
		var lineErr error
		switch t := bytes.TrimSpace(buf); {
		case tooLong:
			lineErr = fmt.Errorf("longer than %d bytes", MaxLineBytes)
		case len(t) > 0:
			var n int
			n, lineErr = in.AddRecord(t)
			added += n
		}
		if lineErr != nil && bad != nil {
			bad(line, lineErr)
		}
		if err == io.EOF {
			return added, nil
		}
	}
}

// readLine appends the next line of br to buf, without its newline, and
// returns it with the bytes read; a line longer than MaxLineBytes is read
// to its end but not kept.
func readLine(br *bufio.Reader, buf []byte) ([]byte, int, bool, error) {
	size, tooLong := 0, false
	for {
		chunk, err := br.ReadSlice('\n')
		size += len(chunk)
		if !tooLong {
			if len(buf)+len(chunk) > MaxLineBytes+1 {
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimSuffix(buf, []byte("\n")), size, tooLong, err
	}
}

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
