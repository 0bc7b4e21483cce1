package policy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/pii"
	"github.com/consentflow/consentflow/internal/policy"
)

// Where FuzzPlantedPII plants values: bits of its where argument. Each bit
// forces at least one planting at its place; bits plantValues,
// plantInText, plantKeys and plantNumbers also let the random properties
// tree plant at random places.
const (
	plantValues      = 1 << iota // whole string values in properties
	plantInText                  // inside longer strings in properties
	plantKeys                    // object keys in properties
	plantEventName               // the event name
	plantPage                    // context.page.title, url and path
	plantCampaign                // context.campaign.name
	plantAppName                 // context.app.name (declared public)
	plantTraits                  // event.traits and context.traits
	plantConsentKeys             // context.consent.categoryPreferences names
	plantNumbers                 // JSON numbers that are wholly PI
	plantAll         = 1<<iota - 1
)

// plantedKinds names what plantGen.instance makes, by index: every pii
// kind, then the marker (which no scrubber matches).
var plantedKinds = []string{"email", "prc_mobile", "uk_phone", "nanp_phone", "ipv4", "ipv6", "mac", "uuid",
	"android_id", "apns_token", "location", "card", "prc_id_number", "imei", "marker"}

const markerKind = 14

// Keys the properties tree is made of: the declared property names of
// testdata/catalogue.yaml (at every level), and keys that are or name
// personal data.
var (
	declaredKeys = []string{"orderId", "revenue", "currency", "contact", "shipping", "city", "street", "geo", "lat", "lng",
		"products", "sku", "quantity", "tags", "gift", "coupon", "note", "page", "order", "amount", "internal_note",
		"path", "title", "email", "plan", "age"}
	personalKeys = []string{"email", "client_ip", "phone_number", "idfa", "latitude", "deviceId", "push_token", "ssn",
		"imei", "mac_address", "card_number", "id_number"}
	fillerWords = []string{"note", "call", "me", "at", "order", "from", "see", "user", "shipped", "to", "hello", "or"}
)

// publicStringPaths are the declared public string properties of Order
// Completed (testdata/catalogue.yaml): a value there leaves the region as
// sent, so a marker placed there may be exported; any other may not.
var publicStringPaths = map[string]bool{"currency": true, "products[].sku": true, "tags[]": true, "coupon": true,
	"note": true, "page": true, "order": true}

// crossBorderConsent is the subject's consent record of
// testdata/decisions/cross_border_export.json: analytics, sharing and
// cross-border transfer granted.
const crossBorderConsent = `[{"schemaVersion":1,"subject":"user-4f1c9a7e","userId":"user-4f1c9a7e",
"purposes":{"analytics":true,"personalization":false,"marketing":false,"third_party_sharing":true},
"crossBorder":true,"minor":false,"guardianConsent":false,"updatedAt":"2026-03-01T00:00:00Z",
"receivedAt":"2026-03-01T00:00:00Z","sourceId":"web-shop","region":"cn"}]`

// plantGen builds an event from fuzzed bytes and remembers what it planted.
type plantGen struct {
	b     []byte
	free  string
	where uint16
	// public are the catalogue paths whose string values leave the region
	// (nil when the event is not declared for its source).
	public map[string]bool
	n      int
	// pi are the planted personal values (with their kinds), markers the
	// planted markers, exportable the markers placed in a declared public
	// value.
	pi         map[string]string
	markers    []string
	exportable map[string]bool
}

func (g *plantGen) byte() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *plantGen) intn(n int) int { return int(g.byte()) % n }

func (g *plantGen) on(bit uint16) bool { return g.where&bit != 0 }

func (g *plantGen) digits(n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteByte('0' + byte(g.intn(10)))
	}
	return sb.String()
}

func (g *plantGen) hex(n int) string {
	const h = "0123456789abcdef"
	var sb strings.Builder
	for range n {
		sb.WriteByte(h[g.intn(16)])
	}
	return sb.String()
}

// mixedHex is n hex digits with at least one digit and one letter, as
// random ids of that length have (and the scrubbers require).
func (g *plantGen) mixedHex(n int) string {
	s := []byte(g.hex(n))
	d := g.intn(n)
	l := (d + 1 + g.intn(n-1)) % n
	s[d] = "0123456789"[g.intn(10)]
	s[l] = "abcdef"[g.intn(6)]
	return string(s)
}

func (g *plantGen) word() string { return fillerWords[g.intn(len(fillerWords))] }

func (g *plantGen) freeText() string {
	if g.free == "" {
		return g.word()
	}
	i := g.intn(len(g.free))
	j := min(len(g.free), i+1+g.intn(16))
	return g.free[i:j]
}

// luhnDigit is the check digit that makes digits pass the Luhn check.
func luhnDigit(digits string) byte {
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if (len(digits)-1-i)%2 == 0 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

// instance makes a realistic value of kind k (an index of plantedKinds) in
// one of the forms the scrubbers document (standalone, or set off by
// spaces); number asks for digits only (kinds 1, 11, 12 and 13), to be
// written as a JSON number.
func (g *plantGen) instance(k int, number bool) string {
	switch k {
	case 0:
		tlds := []string{"com", "cn", "org", "com.cn"}
		return fmt.Sprintf("%s.%s%s@%s.%s", []string{"li", "wang", "zhang", "buyer"}[g.intn(4)], g.word(), g.digits(2),
			[]string{"example", "mail-host", "qq", "shop"}[g.intn(4)], tlds[g.intn(len(tlds))])
	case 1:
		n := "1" + string(byte('3'+g.intn(7))) + g.digits(9)
		if number {
			return n
		}
		switch g.intn(4) {
		case 0:
			return "+86" + n
		case 1:
			return "+86 " + n
		case 2:
			return n[:3] + " " + n[3:7] + " " + n[7:]
		}
		return n
	case 2:
		switch g.intn(3) {
		case 0:
			return "+44 7" + g.digits(3) + " " + g.digits(6)
		case 1:
			return "+447" + g.digits(9)
		}
		return "+44 20 " + g.digits(4) + " " + g.digits(4)
	case 3:
		area := string(byte('2'+g.intn(8))) + g.digits(2)
		exch := string(byte('2'+g.intn(8))) + g.digits(2)
		line := g.digits(4)
		switch g.intn(5) {
		case 0:
			return "(" + area + ") " + exch + "-" + line
		case 1:
			return area + "." + exch + "." + line
		case 2:
			return area + " " + exch + " " + line
		case 3:
			return "+1 " + area + " " + exch + " " + line
		}
		return area + "-" + exch + "-" + line
	case 4:
		// A three-digit first octet: never one of the addresses the event
		// carries anyway (1.2.4.8, truncated to 1.2.4.0).
		octet := func() string { return fmt.Sprint(g.intn(256)) }
		return fmt.Sprintf("%d.%s.%s.%s", 100+g.intn(124), octet(), octet(), octet())
	case 5:
		if g.intn(2) == 0 {
			return "2001:db8:" + strings.TrimLeft(g.hex(3)+"1", "0") + "::" + strings.TrimLeft(g.hex(3), "0") + "7"
		}
		groups := []string{"2001", "0db8"}
		for range 6 {
			groups = append(groups, g.hex(4))
		}
		return strings.Join(groups, ":")
	case 6:
		pairs := make([]string, 6)
		for i := range pairs {
			pairs[i] = g.hex(2)
		}
		switch g.intn(3) {
		case 0:
			return strings.Join(pairs, ":")
		case 1:
			return strings.ToUpper(strings.Join(pairs, "-"))
		}
		h := strings.Join(pairs, "")
		h = h[:11] + "a" // Cisco's dotted form needs a hex letter
		return h[:4] + "." + h[4:8] + "." + h[8:]
	case 7:
		h := "1" + g.hex(31) // never the nil UUID
		u := h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
		if g.intn(2) == 0 {
			u = strings.ToUpper(u)
		}
		return u
	case 8:
		return g.mixedHex(16)
	case 9:
		return g.mixedHex(64)
	case 10:
		lat := fmt.Sprintf("%d.%s", g.intn(90), g.digits(4))
		if g.intn(2) == 0 {
			lat = "-" + lat
		}
		lng := fmt.Sprintf("%d.%s", g.intn(180), g.digits(4))
		return lat + []string{",", ", ", " "}[g.intn(3)] + lng
	case 11:
		body := string(byte('4'+g.intn(2))) + g.digits(14)
		n := body + string(luhnDigit(body))
		if number {
			return n
		}
		switch g.intn(3) {
		case 0:
			return n[:4] + " " + n[4:8] + " " + n[8:12] + " " + n[12:]
		case 1:
			return n[:4] + "-" + n[4:8] + "-" + n[8:12] + "-" + n[12:]
		}
		return n
	case 12:
		id := string(byte('1'+g.intn(9))) + g.digits(5) + []string{"19", "20"}[g.intn(2)] + g.digits(2) +
			fmt.Sprintf("%02d%02d", 1+g.intn(12), 1+g.intn(28)) + g.digits(3)
		if !number && g.intn(3) == 0 {
			return id + "X"
		}
		return id + g.digits(1)
	case 13:
		return string(byte('1'+g.intn(9))) + g.digits(14)
	}
	g.n++
	return fmt.Sprintf("zq7-secret-%d-zq", g.n)
}

// plant makes a value of a kind the input picks and records it.
func (g *plantGen) plant() string {
	k := g.intn(len(plantedKinds))
	v := g.instance(k, false)
	g.record(k, v)
	return v
}

// plantNumber makes a value that is digits only (a PRC mobile number, a
// card, an identity or IMEI number), for a JSON number.
func (g *plantGen) plantNumber() json.Number {
	k := []int{1, 11, 12, 13}[g.intn(4)]
	v := g.instance(k, true)
	g.record(k, v)
	return json.Number(v)
}

func (g *plantGen) record(k int, v string) {
	if k == markerKind {
		g.markers = append(g.markers, v)
	} else if _, ok := g.pi[v]; !ok {
		g.pi[v] = plantedKinds[k]
	}
}

// text is a longer string with one or two planted values in it, each set
// off by spaces and words (no digit before a value: "5 415-555-0132" is
// not documented to be a phone number).
func (g *plantGen) text() string {
	parts := []string{g.word()}
	for range 1 + g.intn(2) {
		parts = append(parts, g.plant(), g.word())
	}
	return strings.Join(parts, " ")
}

// placed records that the markers in s were placed at path: those in a
// declared public value may leave.
func (g *plantGen) placed(path, s string) {
	if !g.public[path] {
		return
	}
	for _, m := range g.markers {
		if strings.Contains(s, m) {
			g.exportable[m] = true
		}
	}
}

func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// key picks an object key.
func (g *plantGen) key() string {
	switch c := g.intn(8); {
	case c < 4:
		return declaredKeys[g.intn(len(declaredKeys))]
	case c == 4:
		return personalKeys[g.intn(len(personalKeys))]
	case c == 5:
		return g.freeText()
	case g.on(plantKeys):
		if g.intn(2) == 0 {
			return g.plant()
		}
		return g.text()
	}
	return g.word()
}

// value makes a random JSON value at path (catalogue notation:
// "products[].sku").
func (g *plantGen) value(depth int, path string) any {
	c := g.intn(10)
	if depth >= 4 && c < 3 {
		c += 3
	}
	switch c {
	case 0, 1:
		return g.object(depth+1, path)
	case 2:
		arr := []any{}
		for range g.intn(4) {
			arr = append(arr, g.value(depth+1, path+"[]"))
		}
		return arr
	case 3:
		return g.freeText()
	case 4:
		return g.word()
	case 5:
		if g.intn(2) == 0 {
			return json.Number(fmt.Sprint(g.intn(200)))
		}
		return json.Number(fmt.Sprintf("%d.%d", g.intn(100), g.intn(100)))
	case 6:
		return []any{true, false, nil}[g.intn(3)]
	}
	switch {
	case g.on(plantNumbers) && c == 7:
		return g.plantNumber()
	case g.on(plantValues) && (c == 8 || !g.on(plantInText)):
		v := g.plant()
		g.placed(path, v)
		return v
	case g.on(plantInText):
		s := g.text()
		g.placed(path, s)
		return s
	}
	return g.word()
}

func (g *plantGen) object(depth int, path string) map[string]any {
	m := map[string]any{}
	for range g.intn(5) {
		k := g.key()
		m[k] = g.value(depth, childPath(path, k))
	}
	return m
}

// plantedEvent builds the case and what was planted in it.
func plantedEvent(t *testing.T, nameSel uint8, backend bool, where uint16, choices []byte, free string) (policy.Case, *plantGen) {
	t.Helper()
	// A marker in the input is one the generator did not place.
	free = strings.ReplaceAll(free, "zq7", "zq8")
	g := &plantGen{b: choices, free: free, where: where, pi: map[string]string{}, exportable: map[string]bool{}}
	source := "web-shop"
	if backend {
		source = "backend"
	}
	name := []string{"Order Completed", "Refund Issued", "Product Viewed"}[nameSel%3]
	if g.on(plantEventName) {
		if g.intn(2) == 0 {
			name = g.plant()
		} else {
			name = name + " " + g.text()
		}
	}
	if name == "Order Completed" {
		g.public = publicStringPaths
	}

	// Properties: a random tree, then one planting per bit.
	props := g.object(0, "")
	if g.on(plantValues) {
		k := declaredKeys[g.intn(len(declaredKeys))]
		v := g.plant()
		props[k] = v
		g.placed(k, v)
	}
	if g.on(plantInText) {
		k := declaredKeys[g.intn(len(declaredKeys))]
		s := g.text()
		props[k] = s
		g.placed(k, s)
	}
	if g.on(plantKeys) {
		var k string
		if g.intn(2) == 0 {
			k = g.plant()
		} else {
			k = g.text()
		}
		props[k] = g.value(1, k)
	}
	if g.on(plantNumbers) {
		props[[]string{"revenue", "amount", "quantity", "orderId", "total"}[g.intn(5)]] = g.plantNumber()
	}

	ctx := map[string]any{
		"app":       map[string]any{"name": "Shop", "version": "4.2.0"},
		"locale":    "zh-CN",
		"timezone":  "Asia/Shanghai",
		"os":        map[string]any{"name": "iOS", "version": "17.1"},
		"device":    map[string]any{"model": "iPhone15,2", "type": "ios", "id": "device-B5372DB0-C21E"},
		"library":   map[string]any{"name": "analytics.js", "version": "5.2.0"},
		"page":      map[string]any{"path": "/checkout", "title": "Checkout", "url": "https://shop.example.cn/checkout"},
		"campaign":  map[string]any{"name": "spring", "source": "newsletter"},
		"ip":        "1.2.4.8",
		"userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)",
	}
	if g.on(plantPage) {
		page := ctx["page"].(map[string]any)
		page["title"] = g.text()
		page["url"] = "https://shop.example.cn/u/" + g.plant() + "/orders?email=" + g.plant()
		page["path"] = "/u/" + g.plant() + "/orders?x=" + g.plant()
	}
	if g.on(plantCampaign) {
		if g.intn(2) == 0 {
			ctx["campaign"].(map[string]any)["name"] = g.plant()
		} else {
			ctx["campaign"].(map[string]any)["name"] = g.text()
		}
	}
	if g.on(plantAppName) {
		var s string
		if g.intn(2) == 0 {
			s = g.plant()
		} else {
			s = g.text()
		}
		ctx["app"].(map[string]any)["name"] = s
		// Declared public: a marker there may leave, PI must not.
		for _, m := range g.markers {
			if strings.Contains(s, m) {
				g.exportable[m] = true
			}
		}
	}
	var traits json.RawMessage
	if g.on(plantTraits) {
		saved := g.public
		g.public = nil // traits never leave
		tr := g.object(0, "")
		tr["email"] = g.plant()
		tr["name"] = g.text()
		g.public = saved
		traits, _ = json.Marshal(tr)
		ctx["traits"] = map[string]any{"email": g.plant(), "name": g.text()}
	}
	if g.on(plantConsentKeys) {
		ctx["consent"] = map[string]any{"categoryPreferences": map[string]any{g.plant(): g.intn(2) == 0}}
	}

	propsJSON, err := json.Marshal(props)
	if err != nil {
		t.Fatal(err)
	}
	ctxJSON, err := json.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var consent []event.ConsentState
	if err := json.Unmarshal([]byte(crossBorderConsent), &consent); err != nil {
		t.Fatal(err)
	}
	c := policy.Case{
		Envelope: event.Envelope{
			SchemaVersion: event.SchemaVersion,
			MessageID:     "msg-0001",
			ReceivedAt:    time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC),
			SourceID:      source,
			Region:        "cn",
			Signals: event.Signals{IP: "1.2.4.8", ServerSource: backend,
				UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"},
			Event: event.Event{
				Type:        "track",
				MessageID:   "msg-0001",
				UserID:      "user-4f1c9a7e",
				AnonymousID: "anon-507f191e810c",
				Event:       name,
				Timestamp:   "2026-03-14T08:59:58Z",
				Context:     ctxJSON,
				Properties:  propsJSON,
				Traits:      traits,
			},
		},
		Consent: consent,
	}
	return c, g
}

// pseudonymPattern is what a pseudonym in the clean record looks like.
var pseudonymPattern = regexp.MustCompile(`^k[12]\.[0-9a-f]{32}$`)

// decodedForms are a decoded string and, when it holds escapes, its
// URL-decoded form: a URL the pipeline re-encoded holds its value so.
func decodedForms(ss []string) []string {
	out := slices.Clone(ss)
	for _, s := range ss {
		if u, err := url.PathUnescape(s); err == nil && u != s {
			out = append(out, u)
		}
	}
	return out
}

// FuzzPlantedPII: for generated events with personal values planted at
// random paths under random keys, no planted value appears in any export
// record, and none of the scrubbable kinds appears in the clean record.
//
// The event (Order Completed, Refund Issued from the backend or not, or an
// undeclared name) has a random properties tree (depth up to 4, keys from
// the catalogue, personal keys and the input) in which realistic values of
// every pii kind and unique markers that no scrubber matches are planted,
// as where says: as values, in longer text, as keys, as numbers, in the
// event name, the page's title, URL and path, the campaign name, the app
// name (declared public: the gate must catch it), traits and consent
// category names. It is judged with cross-border consent by the golden
// profiles, and:
//
//  1. the export, if not refused, holds no planted value and no marker
//     (but those placed in a declared public value), raw or decoded;
//  2. the clean record holds no planted personal value, raw or decoded;
//  3. pii finds nothing in the clean record's event name, context and
//     properties (keys, strings and numbers) but pseudonyms;
//  4. the violations' paths hold no planted personal value.
func FuzzPlantedPII(f *testing.F) {
	// One seed per placement; one per kind (bytes all equal pick that kind
	// everywhere) in every placement but the three that show the misses
	// below, so that each miss fails one seed; a few mixed.
	for i := range 10 {
		if 1<<i == plantAppName {
			continue // below, with the miss it shows
		}
		f.Add(uint8(i), i%2 == 0, uint16(1<<i), []byte{byte(3 * i), 7, 9, 1, 4, byte(i), 2, 8, 5, 0, 6, 3, 11, 12, 13, 14, 10}, "seed text")
	}
	for k := range plantedKinds {
		choices := bytes.Repeat([]byte{byte(k)}, 4000)
		f.Add(uint8(k), k%2 == 1, uint16(plantAll&^(plantAppName|plantPage|plantConsentKeys)), choices, "")
	}
	f.Add(uint8(0), false, uint16(plantValues|plantInText|plantKeys|plantNumbers), []byte("\x00\x00\x01\x02\x07\x08\x09\x07\x08\x09\x00\x05\x06"), "coupon")
	f.Add(uint8(1), true, uint16(plantAll&^(plantAppName|plantConsentKeys)), []byte("the quick brown fox jumps over the lazy dog 0123456789"), "Zhang Wei <zw@x>")
	// A marker in Order Completed's note (declared public) may leave.
	f.Add(uint8(0), false, uint16(plantValues), []byte{0, 16, 14}, "")
	f.Add(uint8(2), false, uint16(plantValues|plantKeys|plantTraits|plantEventName), []byte{250, 1, 2, 3, 200, 100, 50, 25, 12, 6, 3, 1}, "\xff\xfe")
	// Real privacy misses this test found; it fails on these seeds until
	// they are fixed. An e-mail address in context.app.name stays in the
	// clean record as sent (appendContext scrubs page and campaign only);
	f.Add(uint8(0), false, uint16(plantAppName), []byte{0, 0, 0}, "")
	// a phone number written with spaces in context.page.url comes out
	// re-encoded by stripURL ("+44%207000%20000000") before it is
	// scrubbed, and no scrubber finds it so;
	f.Add(uint8(0), false, uint16(plantPage), []byte{0, 0, 0, 14, 0, 2, 0}, "")
	// a consent category name that no scrubber matches leaves the region
	// (appendConsent, export profile), though nothing declares it public.
	f.Add(uint8(0), false, uint16(plantConsentKeys), []byte{0, 14}, "")

	inRegion, exports := goldenProfiles(f)
	scrubber := pii.NewScrubber()

	f.Fuzz(func(t *testing.T, nameSel uint8, backend bool, where uint16, choices []byte, free string) {
		c, g := plantedEvent(t, nameSel, backend, where, choices, free)
		envJSON, err := json.Marshal(c.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := event.DecodeEnvelope(envJSON); err != nil {
			return // the collector would not take it
		}
		rep, err := policy.Evaluate(c, goldenRules, "clean", inRegion, exports)
		if err != nil {
			t.Fatalf("Evaluate: %v", err)
		}
		if !rep.Kept {
			t.Fatalf("dropped (%s) despite consent", rep.Dropped)
		}
		// A value the input itself holds is not only planted.
		checked := func(v string) bool { return !strings.Contains(free, v) }
		// holds lists the planted values (and markers, when given) that a
		// record holds, raw or decoded.
		holds := func(rec []byte, markers bool) []string {
			strs := decodedForms(jsonStrings(t, rec))
			var found []string
			for v, kind := range g.pi {
				if checked(v) && (bytes.Contains(rec, []byte(v)) || anyContains(strs, v)) {
					found = append(found, fmt.Sprintf("%s %q", kind, v))
				}
			}
			for _, m := range g.markers {
				if markers && !g.exportable[m] && checked(m) && (bytes.Contains(rec, []byte(m)) || anyContains(strs, m)) {
					found = append(found, fmt.Sprintf("marker %q (not placed in a declared public value)", m))
				}
			}
			slices.Sort(found)
			return found
		}

		// 1. Nothing planted leaves, but markers in declared public values.
		if x := rep.Destinations["intl"]; x.Event != nil {
			if found := holds(x.Event, true); len(found) > 0 {
				t.Errorf("export holds planted %s:\n%s", strings.Join(found, ", "), x.Event)
			}
		} else if !strings.Contains(x.Skipped, policy.ErrGateRefused.Error()) {
			t.Fatalf("intl skipped for another reason than the gate: %q", x.Skipped)
		}

		// 2. No planted personal value in the clean record.
		clean := rep.Destinations["clean"].Event
		if clean == nil {
			t.Fatalf("no clean record: %q", rep.Destinations["clean"].Skipped)
		}
		if found := holds(clean, false); len(found) > 0 {
			t.Errorf("clean record holds planted %s:\n%s", strings.Join(found, ", "), clean)
		}

		// 3. pii finds nothing in what clients wrote, but pseudonyms.
		var out event.Clean
		if err := json.Unmarshal(clean, &out); err != nil {
			t.Fatalf("clean record: %v", err)
		}
		parts := map[string][]string{"event": {out.Event}}
		if len(out.Context) > 0 {
			parts["context"] = jsonStrings(t, out.Context)
		}
		if len(out.Properties) > 0 {
			parts["properties"] = jsonStrings(t, out.Properties)
		}
		for _, part := range []string{"event", "context", "properties"} {
			for _, s := range parts[part] {
				if pseudonymPattern.MatchString(s) {
					continue
				}
				if kind, found := scrubber.Find(s); found {
					t.Errorf("clean %s holds %s-shaped %q", part, kind, s)
				}
			}
		}

		// 4. Violation paths name no planted personal value.
		for _, v := range rep.Violations {
			for p := range g.pi {
				if checked(p) && strings.Contains(v.Path, p) {
					t.Errorf("violation path %q holds planted %q", v.Path, p)
				}
			}
		}
	})
}
