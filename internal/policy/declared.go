package policy

import (
	"errors"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/consentflow/consentflow/internal/catalogue"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/pii"
)

// UndeclaredName is what an export carries for the name of an event the
// catalogue does not declare (or does not declare for its source): a name
// is free text a client chose, and may hold anything.
const UndeclaredName = "(undeclared)"

// Reason says how an event departs from the catalogue.
type Reason string

// The reasons, a bounded set (a metric label).
const (
	// ReasonUndeclaredEvent: the catalogue does not declare the event.
	ReasonUndeclaredEvent Reason = "undeclared_event"
	// ReasonSourceNotAllowed: it declares the event for other sources.
	ReasonSourceNotAllowed Reason = "source_not_allowed"
	// ReasonUndeclaredField: a property or trait it does not declare.
	ReasonUndeclaredField Reason = "undeclared_field"
	// ReasonWrongType: a value of another type than declared; dropped.
	ReasonWrongType Reason = "wrong_type"
	// ReasonPersonalKey: an undeclared key that is, or names, personal
	// information (an e-mail address as a key, "client_ip"); dropped.
	ReasonPersonalKey Reason = "personal_key"
	// ReasonInvalidValue: a string longer than its declared max_length, or
	// not among its declared values: it does not leave the region.
	ReasonInvalidValue Reason = "invalid_value"
	// ReasonPersonalValue: an undeclared value that is personal
	// information whole, where no scrubber sees it (a [latitude,
	// longitude] pair of numbers); dropped.
	ReasonPersonalValue Reason = "personal_value"
)

// Reasons lists every Reason.
var Reasons = []Reason{ReasonUndeclaredEvent, ReasonSourceNotAllowed, ReasonUndeclaredField, ReasonWrongType, ReasonInvalidValue,
	ReasonPersonalKey, ReasonPersonalValue}

// Violation is one departure from the catalogue: where (a path such as
// "properties.products[].sku", with personal information in keys
// scrubbed), never the value.
type Violation struct {
	Path   string `json:"path"`
	Reason Reason `json:"reason"`
}

// maxViolationPath bounds a path kept for the privacy office.
const maxViolationPath = 200

// declaredEvent is what the catalogue says of an event: its declaration
// (nil when undeclared for its source) and why it is not declared.
func (p *Profile) declaredEvent(in *Parsed) (*catalogue.Event, Reason) {
	ev := &in.Env.Event
	name := ev.Event
	if name == "" {
		name = ev.Name
	}
	decl := p.declared.Catalogue.Lookup(ev.Type, name)
	switch {
	case decl == nil:
		return nil, ReasonUndeclaredEvent
	case !decl.AllowsSource(in.Env.SourceID):
		return nil, ReasonSourceNotAllowed
	}
	return decl, ""
}

// EventLabel is the name an event is counted under: its declared name,
// its type when it has none, UndeclaredName when it is not declared (for
// its source). Bounded by the catalogue, unlike the names clients send.
func (p *Profile) EventLabel(in *Parsed) string {
	decl, _ := p.declaredEvent(in)
	switch {
	case decl == nil:
		return UndeclaredName
	case decl.Name == "" || decl.Name == "*":
		return decl.Type
	}
	return decl.Name
}

// CheckContextDeclarations refuses a catalogue that declares a context
// field the enricher never keeps (one off the context allow-list, or an
// object there): declaring it would promise what no profile does.
func CheckContextDeclarations(c *catalogue.Catalogue) error {
	root := c.ContextDeclarations()
	if root == nil {
		return nil
	}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(root.Members)) {
		n := root.Members[key]
		i := slices.IndexFunc(contextAllowList, func(a allowed) bool { return a.key == key })
		switch {
		case i < 0 || key == "consent":
			errs = append(errs, contextError(c, n, "context."+key, "is not kept by any profile: the context allow-list is "+
				strings.Join(slices.Sorted(maps.Keys(ContextPaths())), ", ")))
		case contextAllowList[i].keys == nil && n.Field == nil:
			errs = append(errs, contextError(c, n, "context."+key, "is a value, not an object"))
		case contextAllowList[i].keys != nil:
			if n.Field != nil || n.Elem != nil {
				errs = append(errs, contextError(c, n, "context."+key, "is an object of values"))
				continue
			}
			for _, sub := range slices.Sorted(maps.Keys(n.Members)) {
				m := n.Members[sub]
				if !slices.Contains(contextAllowList[i].keys, sub) || m.Field == nil {
					errs = append(errs, contextError(c, m, "context."+key+"."+sub, "is not kept by any profile: the allow-list keeps "+strings.Join(contextAllowList[i].keys, ", ")+" (values only)"))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func contextError(c *catalogue.Catalogue, n *catalogue.Node, path, msg string) error {
	return &catalogue.Error{File: c.File, Line: n.Line(), Path: path, Msg: msg}
}

// walker writes properties or traits, JSON text, as a profile keeps them:
// by their declaration, class by class, scrubbing what stays in region and
// passing abroad declared public values only.
type walker struct {
	p      *Profile
	t      []byte
	key    *Pseudonymizer
	export bool
	// path is the keys from the root; arrays counts the arrays on it
	// (drop_fields apply outside arrays only).
	path   []step
	arrays int
	r      *passReport
}

// step is a key of a path, and whether the path goes on into the
// elements of the array there.
type step struct {
	key   string
	array bool
}

// passReport is what a de-identification pass finds besides its output.
type passReport struct {
	// violations collects departures from the catalogue; nil: not
	// collected.
	violations *[]Violation
	// leak is, abroad, the first kind of personal data the scrubbers find
	// in a value kept as sent, and leakAt the field it is in: the gate
	// refuses such an event.
	leak   pii.Kind
	leakAt string
}

// check records, abroad, personal data the scrubbers find in s, a value
// kept as sent at field, read as a person would read it (pii.Fold):
// "１３８１２３４５６７８" is a phone number too.
func (r *passReport) check(sc *pii.Scrubber, field, s string) {
	if r.leak != "" {
		return
	}
	if kind, found := sc.Find(pii.Fold(s)); found {
		r.leak, r.leakAt = kind, field
	}
}

// checkScalar is check for a string or number kept as sent; a number is
// read as its plain decimal digits, as whoever reads it gets them:
// 1.3812345678e10 is a phone number. A number too large or too precise
// to be any measure (an exponent past ±maxExponent) is refused outright.
func (r *passReport) checkScalar(sc *pii.Scrubber, field string, kind byte, lit string) {
	switch kind {
	case kindString:
		r.check(sc, field, lit)
	case kindNumber:
		plain, ok := plainDecimal(lit)
		if !ok && r.leak == "" {
			r.leak, r.leakAt = "number", field
			return
		}
		r.check(sc, field, plain)
	}
}

// maxExponent bounds the exponents of numbers that leave the region.
const maxExponent = 30

// plainDecimal writes a JSON number literal without an exponent, exactly;
// ok is false past maxExponent.
func plainDecimal(lit string) (string, bool) {
	e := strings.IndexAny(lit, "eE")
	if e < 0 {
		return lit, true
	}
	if exp, err := strconv.Atoi(strings.TrimPrefix(lit[e+1:], "+")); err != nil || exp > maxExponent || exp < -maxExponent {
		return "", false
	}
	f, _, err := big.ParseFloat(lit, 10, 256, big.ToNearestEven)
	if err != nil {
		return "", false
	}
	return f.Text('f', -1), true
}

// object appends the kept members of the object at i; n declares them
// (nil: none declared), and undeclared says the object itself is (its
// members' departures are reported with it).
func (w *walker) object(b []byte, i span, n *catalogue.Node, undeclared bool) []byte {
	b = append(b, '{')
	var buf [16]member // most objects have fewer members
	kids := sortedMembers(buf[:0], w.t, i)
	written, at := 0, 0
	for _, k := range kids { // sorted by name, as n's members
		key := k.key
		var decl *catalogue.Node
		at, decl = n.Seek(at, key)
		if w.arrays == 0 && w.p.dropsPath(w.path, key) || decl == nil && w.export && w.r.violations == nil {
			continue // nothing to keep, nothing to report
		}
		w.path = append(w.path, step{key: key})
		if decl == nil && w.personalKey(key) {
			w.violate(ReasonPersonalKey)
		} else {
			if decl == nil && !undeclared {
				w.violate(ReasonUndeclaredField)
			}
			mark := len(b)
			b = appendKey(b, written, key)
			var ok bool
			if b, ok = w.value(b, k.v, decl, undeclared || decl == nil); ok {
				written++
			} else {
				b = b[:mark]
			}
		}
		w.path = w.path[:len(w.path)-1]
	}
	return append(b, '}')
}

// array appends the kept elements of the array at i, each declared by
// elem.
func (w *walker) array(b []byte, i span, elem *catalogue.Node, undeclared bool) []byte {
	b = append(b, '[')
	last := &w.path[len(w.path)-1]
	outer := last.array // an array in an array: its elements have the same path
	last.array = true
	w.arrays++
	written := 0
	for e := elementsOf(w.t, i); e.next(); {
		mark := len(b)
		if written > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = w.value(b, e.v, elem, undeclared); ok {
			written++
		} else {
			b = b[:mark]
		}
	}
	w.arrays--
	w.path[len(w.path)-1].array = outer
	return append(b, ']')
}

// value appends the value at i as its declaration n keeps it, or reports
// false when nothing of it is kept.
func (w *walker) value(b []byte, i span, n *catalogue.Node, undeclared bool) ([]byte, bool) {
	t := w.t
	kind := kindOf(t, i)
	if n == nil {
		if w.export || w.p.settings.Undeclared != UndeclaredScrub {
			return b, false
		}
		switch {
		case kind == kindObject:
			return w.object(b, i, nil, true), true
		case kind == kindArray && coordinatePair(t, i):
			w.violate(ReasonPersonalValue)
			return b, false
		case kind == kindArray:
			return w.array(b, i, nil, true), true
		}
		return w.p.appendScrubbedScalar(b, t, i), true
	}
	switch {
	case kind == kindNull && n.Field != nil:
		return append(b, "null"...), true
	case n.Field != nil:
		if !typeMatches(n.Field.Type, t, i) {
			w.violate(ReasonWrongType)
			return b, false
		}
		return w.field(b, i, n.Field)
	case n.Elem != nil:
		if kind != kindArray {
			w.violate(ReasonWrongType)
			return b, false
		}
		return w.array(b, i, n.Elem, false), true
	case kind != kindObject:
		w.violate(ReasonWrongType)
		return b, false
	}
	return w.object(b, i, n, false), true
}

// field appends a declared scalar as its class says.
func (w *walker) field(b []byte, i span, f *catalogue.Field) ([]byte, bool) {
	if kindOf(w.t, i) == kindString && !f.Allows(valOf(w.t, i)) {
		w.violate(ReasonInvalidValue)
		if w.export {
			return b, false
		}
	}
	switch {
	case f.Class == catalogue.Public && w.export:
		// As sent: the export gate refuses an event with a value the
		// scrubbers find something in, so a mistaken class is caught.
		w.r.checkScalar(w.p.scrubber, w.path[0].key, kindOf(w.t, i), valOf(w.t, i))
		return appendScalar(b, w.t, i), true
	case f.Class == catalogue.Public || f.Class == catalogue.Internal && !w.export:
		return w.p.appendScrubbedScalar(b, w.t, i), true
	case f.Class == catalogue.Personal && !w.export && f.Pseudonym != "":
		return event.AppendString(b, w.key.Pseudonym(f.Pseudonym, valOf(w.t, i))), true
	}
	return b, false
}

// coordinatePair says whether the array at i is two numbers precise
// enough to find a place (three decimals or more) within the ranges of a
// latitude and a longitude, in either order: GeoJSON, Amap and Baidu
// write [longitude, latitude].
func coordinatePair(t []byte, i span) bool {
	var nums [2]float64
	n := 0
	for e := elementsOf(t, i); e.next(); n++ {
		if n == 2 || kindOf(t, e.v) != kindNumber {
			return false
		}
		f, ok := preciseDegrees(valOf(t, e.v))
		if !ok {
			return false
		}
		nums[n] = f
	}
	a, b := nums[0], nums[1]
	return n == 2 && (a <= 90 && b <= 180 || a <= 180 && b <= 90)
}

// preciseDegrees is the absolute value of a number literal with three
// decimals or more.
func preciseDegrees(lit string) (float64, bool) {
	dot := strings.IndexByte(lit, '.')
	if dot < 0 || len(lit)-dot-1 < 3 || strings.ContainsAny(lit, "eE") {
		return 0, false
	}
	f, err := strconv.ParseFloat(lit, 64)
	return math.Abs(f), err == nil
}

// typeMatches says whether the value at i has the declared type.
func typeMatches(typ catalogue.Type, t []byte, i span) bool {
	switch typ {
	case catalogue.String:
		return t[i.at] == kindString
	case catalogue.Number:
		return kindOf(t, i) == kindNumber
	case catalogue.Integer:
		return kindOf(t, i) == kindNumber && !strings.ContainsAny(valOf(t, i), ".eE")
	case catalogue.Boolean:
		return isBool(t, i)
	}
	return false
}

// personalKey says whether an undeclared key is, or names, personal
// information: such a member is dropped whatever its value.
func (w *walker) personalKey(key string) bool {
	if _, ok := pii.KeyKind(key); ok {
		return true
	}
	_, ok := w.p.scrubber.Find(key)
	return ok
}

// maxEventViolations bounds the departures kept of one event: past a
// few dozen paths the next say nothing new, and finding the repeats is
// quadratic.
const maxEventViolations = 64

// violate records a departure at the current path, once per event.
func (w *walker) violate(r Reason) {
	if w.r.violations == nil || len(*w.r.violations) >= maxEventViolations {
		return
	}
	path := w.p.violationPath(w.path)
	for _, v := range *w.r.violations {
		if v.Path == path && v.Reason == r {
			return
		}
	}
	*w.r.violations = append(*w.r.violations, Violation{Path: path, Reason: r})
}

// violationPath joins a path's keys, scrubbed, cut to maxViolationPath.
// The same paths come back event after event: a path met before costs a
// lookup and no allocation.
func (p *Profile) violationPath(path []step) string {
	var buf [maxViolationPath]byte
	raw := buf[:0]
	for _, s := range path {
		mark := byte(0)
		if s.array {
			mark = 1
		}
		raw = append(append(raw, s.key...), mark)
	}
	if len(raw) > maxViolationPath {
		return scrubbedPath(p.scrubber, path) // long paths are not remembered: memory is bounded by count and size
	}
	p.paths.RLock()
	s, ok := p.paths.m[string(raw)]
	p.paths.RUnlock()
	if ok {
		return s
	}
	s = scrubbedPath(p.scrubber, path)
	p.paths.Lock()
	if len(p.paths.m) < maxViolationPaths {
		p.paths.m[string(raw)] = s
	}
	p.paths.Unlock()
	return s
}

// maxViolationPaths bounds the paths a profile remembers: clients choose
// them.
const maxViolationPaths = 4096

// scrubbedPath joins a path's keys, scrubbed, cut to maxViolationPath.
func scrubbedPath(scrubber *pii.Scrubber, path []step) string {
	var sb strings.Builder
	for i, s := range path {
		if i > 0 {
			sb.WriteByte('.')
		}
		key := s.key
		if scrubbed := scrubber.Scrub(key); scrubbed != key {
			key = scrubbed
		} else if i > 0 && strings.ContainsAny(key, ".[]") {
			// A key that reads as a path ("shipping.city", "products[]")
			// is quoted, so it is not taken for the declared field there.
			key = strconv.Quote(key)
		}
		sb.WriteString(key)
		if s.array {
			sb.WriteString("[]")
		}
		if sb.Len() > maxViolationPath {
			break
		}
	}
	s := sb.String()
	if len(s) > maxViolationPath {
		s = s[:maxViolationPath] + "..."
	}
	return s
}

// appendScrubbedScalar appends the scalar at i with personal data in a
// string replaced by what it was ("[email]", "[phone]", ...), and a number
// that is a whole phone, IMEI or identity number written as that.
func (p *Profile) appendScrubbedScalar(b []byte, t []byte, i span) []byte {
	switch kindOf(t, i) {
	case kindString:
		return event.AppendString(b, p.scrub(valOf(t, i)))
	case kindNumber:
		lit := valOf(t, i)
		if plain, ok := plainDecimal(lit); ok && plain != lit {
			lit = plain // 1.3812345678e10 reads as the phone number it is
		}
		if s := p.scrub(lit); s != lit {
			return event.AppendString(b, s)
		}
		return append(b, valOf(t, i)...)
	}
	return appendScalar(b, t, i)
}

// scrub is the scrubbers on s, or, when they find nothing there but do
// in s read as a person reads it (pii.Fold: "１３８…" is a phone number),
// on that reading.
func (p *Profile) scrub(s string) string {
	if out := p.scrubber.Scrub(s); out != s {
		return out
	}
	if folded := pii.Fold(s); folded != s {
		if out := p.scrubber.Scrub(folded); out != folded {
			return out
		}
	}
	return s
}

// appendDeclared appends the properties (root "properties") or traits
// (root "traits"), the JSON text t, as the profile keeps them by the
// event's declaration decl (nil: undeclared), reporting to r.
func (p *Profile) appendDeclared(b []byte, t []byte, root string, decl *catalogue.Node, declared bool, key *Pseudonymizer, r *passReport) []byte {
	var path [8]step // outside w, which would not stay on the stack pointing into itself
	w := walker{p: p, t: t, key: key, export: p.declared.Export, r: r, path: append(path[:0], step{key: root})}
	i := span{at: 0, end: int32(len(t))} // t is one value
	if t[0] == '"' {
		i = spanAt(t, 0)
	}
	if kindOf(t, i) != kindObject {
		// Event.Validate lets only objects through: nothing here is
		// declared.
		if out, ok := w.value(b, i, nil, true); ok {
			return out
		}
		return append(b, "{}"...)
	}
	return w.object(b, i, decl, !declared)
}

// dropsPath reports whether drop_fields names <path...>.<key>, path
// starting at properties or context and going into no array.
func (p *Profile) dropsPath(path []step, key string) bool {
	for _, d := range p.drops {
		if len(d) == len(path)+1 && d[len(d)-1] == key &&
			slices.EqualFunc(d[:len(d)-1], path, func(k string, s step) bool { return k == s.key && !s.array }) {
			return true
		}
	}
	return false
}

// ContextPaths is the context the enricher may keep, for a catalogue to
// declare: the allow-list's keys and the keys kept inside them (nil for a
// value). Consent categories are kept by their own rule, not declared.
func ContextPaths() map[string][]string {
	out := map[string][]string{}
	for _, a := range contextAllowList {
		if a.key != "consent" {
			out[a.key] = slices.Clone(a.keys)
		}
	}
	return out
}

// contextDecl is what the catalogue declares of an allow-listed context
// key (node) and of the keys kept inside it (keys, in the allow-list's
// order): looked up once per profile, not per event.
type contextDecl struct {
	node *catalogue.Node
	keys []*catalogue.Node
}

// contextDeclsOf resolves allowList's declarations in c.
func contextDeclsOf(c *catalogue.Catalogue, allowList []allowed) []contextDecl {
	out := make([]contextDecl, len(allowList))
	for i, a := range allowList {
		n := c.ContextDeclarations().Member(a.key)
		out[i] = contextDecl{node: n, keys: make([]*catalogue.Node, len(a.keys))}
		for j, k := range a.keys {
			out[i].keys[j] = n.Member(k)
		}
	}
	return out
}
