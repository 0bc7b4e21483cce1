package catalogue_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/catalogue"
	"github.com/consentflow/consentflow/internal/event"
)

var update = flag.Bool("update", false, "rewrite testdata/infer/sample.golden.yaml from the inferrer's output")

const (
	sampleFile = "testdata/infer/sample.ndjson"
	goldenFile = "testdata/infer/sample.golden.yaml"
)

// contextPaths is the enricher's context allow-list (internal/policy,
// contextAllowList) less consent, as enricher/main.go passes it.
var contextPaths = map[string][]string{
	"app":      {"build", "name", "namespace", "version"},
	"campaign": {"content", "medium", "name", "source", "term"},
	"device":   {"manufacturer", "model", "type"},
	"library":  {"name", "version"},
	"locale":   nil,
	"network":  {"bluetooth", "carrier", "cellular", "wifi"},
	"os":       {"name", "version"},
	"page":     {"path", "referrer", "title", "url"},
	"screen":   {"density", "height", "width"},
	"timezone": nil,
}

type badLine struct {
	line int
	err  string
}

// inferSample runs the inferrer over lines, and returns the draft and the
// lines it reported.
func inferSample(t *testing.T, opts catalogue.InferOptions, lines []byte) ([]byte, []badLine, int) {
	t.Helper()
	in := catalogue.NewInferrer(opts)
	var bad []badLine
	n, err := in.ReadNDJSON(bytes.NewReader(lines), func(line int, err error) { bad = append(bad, badLine{line, err.Error()}) })
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := in.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), bad, n
}

func readSample(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(sampleFile)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestInferGolden: the draft of the sample is the golden file (go test
// -run TestInferGolden -update rewrites it), parses, and the lines that
// hold no event are reported by number, without their content.
func TestInferGolden(t *testing.T) {
	sample := readSample(t)
	out, bad, n := inferSample(t, catalogue.InferOptions{ContextPaths: contextPaths}, sample)
	if *update {
		if err := os.WriteFile(goldenFile, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("draft differs from %s (go test ./internal/catalogue -run TestInferGolden -update rewrites it):\n%s", goldenFile, out)
	}
	if _, err := catalogue.Parse("draft.yaml", out); err != nil {
		t.Fatalf("the draft does not parse: %v\n%s", err, out)
	}
	// 16 events on lines 1-16, two of the batch's three on line 18.
	if n != 18 {
		t.Errorf("%d events added, want 18", n)
	}
	wantBad := []int{18, 19, 20}
	var lines []int
	for _, b := range bad {
		lines = append(lines, b.line)
	}
	if !slices.Equal(lines, wantBad) {
		t.Errorf("bad lines %v (%v), want %v", lines, bad, wantBad)
	}
	sampleLines := strings.Split(string(sample), "\n")
	for _, b := range bad {
		for _, word := range strings.FieldsFunc(sampleLines[b.line-1], func(r rune) bool { return !isWordRune(r) }) {
			if len(word) >= 5 && strings.Contains(b.err, word) && !strings.Contains("batch events skipped type track identify page screen group alias", word) {
				t.Errorf("line %d reported as %q, which holds %q from the line", b.line, b.err, word)
			}
		}
	}
	for _, want := range []string{"inferred by \"enricher catalogue infer\" from 18 events", "nothing is public"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the draft does not say %q", want)
		}
	}
}

func isWordRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '@' || r == '.' || r == '-' || r == '_'
}

// TestInferWritesNoValue: no value of the input is in the draft, but for
// those equal to an event name, a key or a Segment type, which the draft
// names. Every string of 4 bytes or more and every number of 5 or more
// is looked for, and every word of a line that is not JSON.
func TestInferWritesNoValue(t *testing.T) {
	sample := readSample(t)
	out, _, _ := inferSample(t, catalogue.InferOptions{ContextPaths: contextPaths}, sample)
	allowed := map[string]bool{}
	for _, typ := range event.Types {
		allowed[typ] = true
	}
	var values []string
	for line := range strings.SplitSeq(string(sample), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			// Not JSON: its every word is a value.
			values = append(values, strings.FieldsFunc(line, func(r rune) bool { return !isWordRune(r) })...)
			continue
		}
		collectValues(v, "", allowed, &values)
	}
	checked := 0
	for _, v := range values {
		if allowed[v] || len(v) < 4 || isNumber(v) && len(v) < 5 {
			continue
		}
		checked++
		if bytes.Contains(out, []byte(v)) {
			t.Errorf("the draft holds the value %q", v)
		}
	}
	if checked < 100 {
		t.Errorf("only %d values checked: the sample is not read as expected", checked)
	}
	// The values the scrubber must have found are in the sample, not in
	// the draft: the check above ran on them.
	for _, pi := range []string{"liwei@example.cn", "bob.zhang@example.org", "+86 139 8765 4321", "13987654321", "203.0.113.7", "zhao.min@example.net", "wang.fang@example.com"} {
		if !slices.Contains(values, pi) && !bytes.Contains(sample, []byte(pi)) {
			t.Errorf("%q is not in the sample", pi)
		}
		if bytes.Contains(out, []byte(pi)) {
			t.Errorf("the draft holds %q", pi)
		}
	}
}

var numberRE = regexp.MustCompile(`^-?[0-9.eE+-]+$`)

func isNumber(s string) bool { return numberRE.MatchString(s) }

// collectValues appends v's strings and numbers to values, and marks keys,
// event and page names as allowed.
func collectValues(v any, key string, allowed map[string]bool, values *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, m := range v {
			allowed[k] = true
			collectValues(m, k, allowed, values)
		}
	case []any:
		for _, m := range v {
			collectValues(m, key, allowed, values)
		}
	case string:
		if key == "event" || key == "name" {
			allowed[v] = true // a track event's or a page's name (and a few more, which is lenient)
		}
		*values = append(*values, v)
	case json.Number:
		*values = append(*values, v.String())
	}
}

// TestInferClasses: the classes guessed for the sample's personal and
// sensitive fields, none public, the context as allowed, and the types.
func TestInferClasses(t *testing.T) {
	out, _, _ := inferSample(t, catalogue.InferOptions{ContextPaths: contextPaths}, readSample(t))
	c, err := catalogue.Parse("draft.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	type want struct {
		class     catalogue.Class
		typ       catalogue.Type
		pseudonym string
	}
	checks := []struct {
		typ, name, path string
		want            want
	}{
		{"identify", "", "email", want{catalogue.Personal, catalogue.String, "email"}},
		{"identify", "", "phone", want{catalogue.Personal, catalogue.String, "phone"}}, // also seen as a number
		{"identify", "", "age", want{catalogue.Sensitive, catalogue.Integer, ""}},
		{"identify", "", "birthday", want{catalogue.Sensitive, catalogue.String, ""}},
		{"identify", "", "ageGroup", want{catalogue.Sensitive, catalogue.String, ""}},
		{"identify", "", "monthly_income", want{catalogue.Sensitive, catalogue.Integer, ""}},
		{"identify", "", "last_ip", want{catalogue.Personal, catalogue.String, ""}},
		{"identify", "", "plan", want{catalogue.Internal, catalogue.String, ""}},
		{"identify", "", "newsletter", want{catalogue.Internal, catalogue.Boolean, ""}},
		{"identify", "", "company.employees", want{catalogue.Internal, catalogue.Integer, ""}},
		{"group", "", "employees", want{catalogue.Internal, catalogue.Integer, ""}},
		{"track", "Order Completed", "shipping.lat", want{catalogue.Sensitive, catalogue.Number, ""}},
		{"track", "Order Completed", "shipping.lng", want{catalogue.Sensitive, catalogue.Number, ""}},
		{"track", "Order Completed", "shipping.city", want{catalogue.Internal, catalogue.String, ""}},
		{"track", "Order Completed", "payment.card_number", want{catalogue.Sensitive, catalogue.String, ""}},
		{"track", "Order Completed", "note", want{catalogue.Personal, catalogue.String, ""}},    // a phone number in free text
		{"track", "Order Completed", "revenue", want{catalogue.Internal, catalogue.Number, ""}}, // also seen as a string
		{"track", "Order Completed", "products[].quantity", want{catalogue.Internal, catalogue.Integer, ""}},
		{"track", "Order Completed", "products[].price", want{catalogue.Internal, catalogue.Number, ""}},
		{"track", "Order Completed", "coupon", want{catalogue.Internal, catalogue.String, ""}},     // only null
		{"track", "Order Completed", "recipients", want{catalogue.Personal, catalogue.String, ""}}, // its one key, PI, omitted
		{"track", "Product Viewed", "customer_email", want{catalogue.Personal, catalogue.String, "email"}},
		{"track", "Product Viewed", "tags[]", want{catalogue.Internal, catalogue.String, ""}},
		{"track", "Product Viewed", "variant", want{catalogue.Internal, catalogue.String, ""}}, // object and array
		{"track", "Product Viewed", "in_stock", want{catalogue.Internal, catalogue.Boolean, ""}},
		{"track", "Product Viewed", "price", want{catalogue.Internal, catalogue.Number, ""}},
		{"track", "Checkout Started", "products[].quantity", want{catalogue.Internal, catalogue.Integer, ""}},
		{"page", "Home", "url", want{catalogue.Internal, catalogue.String, ""}},
		{"page", "*", "search", want{catalogue.Internal, catalogue.String, ""}},
		{"screen", "Settings", "font_scale", want{catalogue.Internal, catalogue.Number, ""}},
	}
	for _, ck := range checks {
		e := c.Lookup(ck.typ, ck.name)
		if e == nil || ck.typ == "page" && ck.name == "*" && e.Name != "*" {
			t.Errorf("%s %q is not declared", ck.typ, ck.name)
			continue
		}
		tree := e.Properties
		if ck.typ == "identify" || ck.typ == "group" {
			tree = e.Traits
		}
		f := lookupPath(tree, ck.path)
		if f == nil {
			t.Errorf("%s %q %s is not declared", ck.typ, ck.name, ck.path)
			continue
		}
		if got := (want{f.Class, f.Type, f.Pseudonym}); got != ck.want {
			t.Errorf("%s %q %s: %v %v %q, want %v %v %q", ck.typ, ck.name, ck.path, got.class, got.typ, got.pseudonym, ck.want.class, ck.want.typ, ck.want.pseudonym)
		}
	}
	if f := lookupPath(c.Context, "page.url"); f == nil || f.Class != catalogue.Personal {
		t.Errorf("context page.url (an e-mail address in one): %+v, want personal", f)
	}
	// Nothing public; the context as allowed; the PI key, event name and
	// page name, and the unknown type, not declared.
	for _, e := range c.Events() {
		for _, tree := range []*catalogue.Node{e.Properties, e.Traits} {
			eachField(tree, func(f *catalogue.Field) {
				if f.Class == catalogue.Public {
					t.Errorf("%s %q %s is public", e.Type, e.Name, f.Path)
				}
			})
		}
		if strings.Contains(e.Name, "@") {
			t.Errorf("%s %q declared: its name is personal information", e.Type, e.Name)
		}
	}
	var contextSeen []string
	eachField(c.Context, func(f *catalogue.Field) {
		contextSeen = append(contextSeen, f.Path)
		key, sub, _ := strings.Cut(f.Path, ".")
		subs, ok := contextPaths[key]
		if !ok || (sub == "") != (len(subs) == 0) || sub != "" && !slices.Contains(subs, sub) {
			t.Errorf("context %s declared: not on the allow-list", f.Path)
		}
		if f.Class == catalogue.Public {
			t.Errorf("context %s is public", f.Path)
		}
	})
	for _, want := range []string{"app.name", "device.model", "locale", "screen.density", "campaign.medium", "library.version"} {
		if !slices.Contains(contextSeen, want) {
			t.Errorf("context %s not declared (declared: %v)", want, contextSeen)
		}
	}
	if f := lookupPath(c.Context, "screen.density"); f == nil || f.Type != catalogue.Number {
		t.Errorf("context screen.density: %+v, want a number", f)
	}
	if f := lookupPath(c.Context, "screen.width"); f == nil || f.Type != catalogue.Integer {
		t.Errorf("context screen.width: %+v, want an integer", f)
	}
	if c.Lookup("alias", "") == nil || c.Lookup("group", "") == nil {
		t.Error("alias or group not declared")
	}
	for _, want := range []string{
		"1 key that is personal information omitted",
		"1 track event name that is personal information omitted",
		"1 page or screen event whose name is personal information is counted under \"*\"",
		"# in 3 of 3; also seen: string", // Product Viewed in_stock, Order Completed revenue
		"only null seen: declared string",
		"seen as object and as array: declared string",
		"values looked like email",
		"key names age",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the draft does not say %q", want)
		}
	}
}

// lookupPath is the field declared at path ("a.b", "c[].d") under n.
func lookupPath(n *catalogue.Node, path string) *catalogue.Field {
	for part := range strings.SplitSeq(path, ".") {
		key, array := strings.CutSuffix(part, "[]")
		n = n.Member(key)
		if array {
			n = n.Element()
		}
	}
	if n == nil {
		return nil
	}
	return n.Field
}

func eachField(n *catalogue.Node, f func(*catalogue.Field)) {
	if n == nil {
		return
	}
	if n.Field != nil {
		f(n.Field)
	}
	for _, m := range n.Members {
		eachField(m, f)
	}
	eachField(n.Elem, f)
}

// TestInferDeterministic: the same events in another order give the same
// draft.
func TestInferDeterministic(t *testing.T) {
	sample := readSample(t)
	want, _, _ := inferSample(t, catalogue.InferOptions{ContextPaths: contextPaths}, sample)
	lines := strings.Split(strings.TrimSpace(string(sample)), "\n")
	r := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		r.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
		got, _, _ := inferSample(t, catalogue.InferOptions{ContextPaths: contextPaths}, []byte(strings.Join(lines, "\n")))
		if !bytes.Equal(got, want) {
			t.Fatalf("the draft depends on the order of events:\n%s", got)
		}
	}
}

// TestInferBounds: at most MaxEvents events and MaxPaths paths per event
// are inferred; the rest are counted in comments, and the draft parses.
func TestInferBounds(t *testing.T) {
	var in bytes.Buffer
	for i := range 50 {
		props := map[string]any{}
		for j := range 40 {
			props[fmt.Sprintf("field_%02d", (i+j)%60)] = map[string]any{"sub": j, "list": []any{map[string]any{"x": true}}}
		}
		raw, _ := json.Marshal(map[string]any{"type": "track", "event": fmt.Sprintf("Event %02d", i%20), "anonymousId": "a", "properties": props})
		in.Write(append(raw, '\n'))
	}
	out, bad, n := inferSample(t, catalogue.InferOptions{ContextPaths: contextPaths, MaxEvents: 7, MaxPaths: 30}, in.Bytes())
	if len(bad) > 0 || n != 50 {
		t.Fatalf("%d events, bad lines %v", n, bad)
	}
	c, err := catalogue.Parse("draft.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	events := c.Events()
	if len(events) != 7 {
		t.Errorf("%d events declared, want 7", len(events))
	}
	for _, e := range events {
		paths := 0
		eachField(e.Properties, func(*catalogue.Field) { paths++ })
		// Each field takes at least one path of the 30, and its parents
		// some more.
		if paths == 0 || paths > 30 {
			t.Errorf("%s: %d paths declared, want 1 to 30", e.Name, paths)
		}
	}
	for _, want := range []string{"13 more distinct events (", "at most 7 events are inferred", "not declared: at most 30 paths are inferred per event"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the draft does not say %q:\n%s", want, out)
		}
	}
	sum := catalogue.NewInferrer(catalogue.InferOptions{}).Summary()
	if sum != (catalogue.InferSummary{}) {
		t.Errorf("empty summary: %+v", sum)
	}
}

// TestInferAwkwardNames: names and keys YAML would misread are quoted, and
// what a catalogue cannot hold is counted, not written.
func TestInferAwkwardNames(t *testing.T) {
	long := strings.Repeat("k", 600)
	lines := []string{
		`{"type":"track","event":"true","properties":{"null":1,"#x":"a","a: b":2,"sp ace ":3,"中文":4,"tab\tkey":5}}`,
		`{"type":"track","event":"Said \"hi\": #1","properties":{"dotted.key":1,"br[ack]et":2,"":3,"` + long + `":4}}`,
		`{"type":"track","event":"*","properties":{"x":1}}`,
		`{"type":"page","name":"*","properties":{"x":1}}`,
		`{"type":"screen","name":"- dash","properties":{"@at":1}}`,
		`{"type":"identify","traits":null}`,
		`{"type":"track","event":"Deep","properties":{"a":{"b":{"c":[[{"d":1}]]}}}}`,
	}
	in := catalogue.NewInferrer(catalogue.InferOptions{})
	for i, l := range lines {
		if _, err := in.AddRecord([]byte(l)); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
	}
	var out bytes.Buffer
	if err := in.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	c, err := catalogue.Parse("draft.yaml", out.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if e := c.Lookup("track", "true"); e == nil || lookupPath(e.Properties, "null") == nil || lookupPath(e.Properties, "a: b") == nil ||
		lookupPath(e.Properties, "sp ace ") == nil || lookupPath(e.Properties, "中文") == nil || lookupPath(e.Properties, "tab\tkey") == nil || lookupPath(e.Properties, "#x") == nil {
		t.Errorf("track \"true\" and its awkward keys not declared as such:\n%s", out.String())
	}
	e := c.Lookup("track", `Said "hi": #1`)
	if e == nil || e.Properties != nil {
		t.Errorf("track with quotes: %+v, want declared with no property", e)
	}
	if !strings.Contains(out.String(), "4 keys that cannot be written as a path omitted") {
		t.Errorf("the unwritable keys are not counted:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "1 track event name that cannot be declared") || c.Lookup("track", "*") != nil {
		t.Errorf("the track event named \"*\" is not omitted and counted:\n%s", out.String())
	}
	// A key with an @ may be an e-mail address the scrubber misses: not
	// written.
	if e := c.Lookup("screen", "- dash"); e == nil || e.Name != "- dash" || lookupPath(e.Properties, "@at") != nil {
		t.Errorf("screen \"- dash\": %+v, want declared without the key \"@at\"", e)
	}
	if e := c.Lookup("track", "Deep"); e == nil || lookupPath(e.Properties, "a.b.c[]") == nil {
		// Arrays in arrays have no path: the outer array's elements are
		// declared strings.
		t.Errorf("track Deep: a.b.c[] not declared:\n%s", out.String())
	}
}

// TestAddRecordErrors: records that are no event are refused with a
// reason that names fields, never values.
func TestAddRecordErrors(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`not json secret@example.com`, "not JSON"},
		{`["secret@example.com"]`, "not a JSON object"},
		{`{"type":"secret@example.com"}`, "type is not one of"},
		{`{"type":"track","properties":{}}`, "event is required for track"},
		{`{"type":"track","event":"X","properties":["secret@example.com"]}`, "properties is not an object"},
		{`{"type":"track","event":"X","context":"secret@example.com"}`, "context is not an object"},
		{`{"type":"track","event":7}`, "event is not a string"},
		{`{"schemaVersion":2,"event":{"type":"track","event":"X"}}`, "envelope schemaVersion is not 1"},
		{`{"schemaVersion":1,"event":{"type":"secret@example.com"}}`, "event.type is not one of"},
		{`{"batch":"secret@example.com"}`, "batch is not an array"},
		{`{"batch":[{"type":"track","event":"X"},{"type":"secret@example.com"}]}`, "1 of the batch's 2 events skipped, the first as batch[1]: type is not one of"},
	} {
		_, err := catalogue.NewInferrer(catalogue.InferOptions{}).AddRecord([]byte(tc.raw))
		switch {
		case err == nil:
			t.Errorf("%s: no error", tc.raw)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v, want %q", tc.raw, err, tc.want)
		case strings.Contains(err.Error(), "secret"):
			t.Errorf("%s: %v holds a value", tc.raw, err)
		}
	}
}

// TestReadNDJSONLongLine: a line over MaxLineBytes is skipped and
// reported, and the next one read.
func TestReadNDJSONLongLine(t *testing.T) {
	long := `{"type":"track","event":"X","properties":{"p":"` + strings.Repeat("x", catalogue.MaxLineBytes) + `"}}`
	input := long + "\n" + `{"type":"track","event":"Next","properties":{"q":1}}` + "\n"
	out, bad, n := inferSample(t, catalogue.InferOptions{}, []byte(input))
	if n != 1 || len(bad) != 1 || bad[0].line != 1 || !strings.Contains(bad[0].err, "longer than") {
		t.Errorf("%d events, bad %v; want 1 event and line 1 too long", n, bad)
	}
	if !bytes.Contains(out, []byte("  Next:")) {
		t.Errorf("event Next not declared:\n%s", out)
	}
}

// TestInferShapes: a path that is mostly an object (or array) but also
// something else declares the object's members with a note; the types of
// numbers; the limits of what "also seen" says.
func TestInferShapes(t *testing.T) {
	lines := []string{
		`{"type":"track","event":"Signed Up","properties":{"customer":{"tier":"gold","since":2019},"items":[1,2],"score":1}}`,
		`{"type":"track","event":"Signed Up","properties":{"customer":{"tier":"silver","since":2021.5},"items":[3],"score":1e3}}`,
		`{"type":"track","event":"Signed Up","properties":{"customer":"guest","items":"none","score":true}}`,
	}
	out, bad, _ := inferSample(t, catalogue.InferOptions{}, []byte(strings.Join(lines, "\n")))
	if len(bad) > 0 {
		t.Fatal(bad)
	}
	c, err := catalogue.Parse("draft.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	props := c.Lookup("track", "Signed Up").Properties
	for path, want := range map[string]catalogue.Type{"customer.tier": catalogue.String, "customer.since": catalogue.Number, "items[]": catalogue.Integer, "score": catalogue.Number} {
		if f := lookupPath(props, path); f == nil || f.Type != want || f.Class != catalogue.Internal {
			t.Errorf("%s: %+v, want an internal %v", path, f, want)
		}
	}
	for _, want := range []string{
		"      # customer is an object in 3 of 3; also seen: string\n      customer.since:",
		"      # items is an array in 3 of 3; also seen: string\n      items[]:",
		"score: {type: number, class: internal}  # in 3 of 3; also seen: boolean\n",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the draft does not say %q:\n%s", want, out)
		}
	}
}

// TestInferOmitsNamesThatMayBePersonal: a name or key the scrubbers miss
// but that holds an @, a percent escape or a long digit run is not
// written: adopted, the draft would let it leave the region.
func TestInferOmitsNamesThatMayBePersonal(t *testing.T) {
	in := catalogue.NewInferrer(catalogue.InferOptions{})
	for _, l := range []string{
		`{"type":"track","event":"Invite sent to josé@example.com","properties":{"x":1}}`,
		`{"type":"track","event":"Call 4155550132","properties":{"x":1}}`,
		`{"type":"page","name":"Profile of alice%40example.com","properties":{"x":1}}`,
		`{"type":"track","event":"Signed Up","properties":{"ref 20261207":1,"plan":"pro"}}`,
	} {
		if _, err := in.AddRecord([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := in.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"josé", "4155550132", "alice", "20261207"} {
		if strings.Contains(out.String(), leak) {
			t.Errorf("the draft holds %q:\n%s", leak, out.String())
		}
	}
	c, err := catalogue.Parse("draft.yaml", out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Lookup("track", "Signed Up"); e == nil || lookupPath(e.Properties, "plan") == nil {
		t.Errorf("Signed Up and its plan are not declared:\n%s", out.String())
	}
}
