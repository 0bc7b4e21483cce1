package policy

import (
	"errors"
	"slices"
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
)

// Reasons lists every Reason.
var Reasons = []Reason{ReasonUndeclaredEvent, ReasonSourceNotAllowed, ReasonUndeclaredField, ReasonWrongType, ReasonPersonalKey}

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
	for key, n := range root.Members {
		i := slices.IndexFunc(contextAllowList, func(a allowed) bool { return a.key == key })
		switch {
		case i < 0 || key == "consent":
			errs = append(errs, contextError(c, n, "context."+key, "is not kept by any profile: the context allow-list is app, campaign, device, library, locale, network, os, page, screen, timezone"))
		case contextAllowList[i].keys == nil && n.Field == nil:
			errs = append(errs, contextError(c, n, "context."+key, "is a value, not an object"))
		case contextAllowList[i].keys != nil:
			if n.Field != nil || n.Elem != nil {
				errs = append(errs, contextError(c, n, "context."+key, "is an object of values"))
				continue
			}
			for sub, m := range n.Members {
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
	// path is the keys from the root, "[]" for an array's elements; arrays
	// counts the arrays on it (drop_fields apply outside arrays only).
	path   []string
	arrays int
	r      *passReport
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
// kept as sent at field.
func (r *passReport) check(sc *pii.Scrubber, field, s string) {
	if r.leak != "" {
		return
	}
	if kind, found := sc.Find(s); found {
		r.leak, r.leakAt = kind, field
	}
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
		if w.arrays == 0 && w.p.dropsPath(w.path, key) {
			continue
		}
		w.path = append(w.path, key)
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
	w.path[len(w.path)-1] += "[]"
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
	last := &w.path[len(w.path)-1]
	*last = (*last)[:len(*last)-2]
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
		switch kind {
		case kindObject:
			return w.object(b, i, nil, true), true
		case kindArray:
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
	switch {
	case f.Class == catalogue.Public && w.export:
		// As sent: the export gate refuses an event with a value the
		// scrubbers find something in, so a mistaken class is caught.
		if k := kindOf(w.t, i); k == kindString || k == kindNumber {
			w.r.check(w.p.scrubber, w.path[0], valOf(w.t, i))
		}
		return appendScalar(b, w.t, i), true
	case f.Class == catalogue.Public || f.Class == catalogue.Internal && !w.export:
		return w.p.appendScrubbedScalar(b, w.t, i), true
	case f.Class == catalogue.Personal && !w.export && f.Pseudonym != "":
		return event.AppendString(b, w.key.Pseudonym(f.Pseudonym, valOf(w.t, i))), true
	}
	return b, false
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

// violate records a departure at the current path, once per event.
func (w *walker) violate(r Reason) {
	if w.r.violations == nil {
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
func (p *Profile) violationPath(path []string) string {
	var buf [maxViolationPath]byte
	raw := buf[:0]
	for _, k := range path {
		raw = append(append(raw, k...), 0)
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
func scrubbedPath(scrubber *pii.Scrubber, path []string) string {
	var sb strings.Builder
	for i, k := range path {
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(scrubber.Scrub(k))
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
		return event.AppendString(b, p.scrubber.Scrub(valOf(t, i)))
	case kindNumber:
		lit := valOf(t, i)
		if s := p.scrubber.Scrub(lit); s != lit {
			return event.AppendString(b, s)
		}
		return append(b, lit...)
	}
	return appendScalar(b, t, i)
}

// appendDeclared appends the properties (root "properties") or traits
// (root "traits"), the JSON text t, as the profile keeps them by the
// event's declaration decl (nil: undeclared), reporting to r.
func (p *Profile) appendDeclared(b []byte, t []byte, root string, decl *catalogue.Node, declared bool, key *Pseudonymizer, r *passReport) []byte {
	var path [8]string // outside w, which would not stay on the stack pointing into itself
	w := walker{p: p, t: t, key: key, export: p.declared.Export, r: r, path: append(path[:0], root)}
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
// starting at properties or context.
func (p *Profile) dropsPath(path []string, key string) bool {
	for _, d := range p.drops {
		if len(d) == len(path)+1 && d[len(d)-1] == key && slices.Equal(d[:len(d)-1], path) {
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
