package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/testenv"
)

// catalogueLeaks are the personal values a product team put in the
// properties of the events below (and the one name and key that are
// e-mail addresses): with cross-border consent recorded, none may reach
// the export topic or analytics_intl, and none may stay readable in
// region.
var catalogueLeaks = []string{
	"203.0.113.77",                         // client_ip
	"6D92078A-8246-4BA4-AE5B-76104861E7DC", // an IDFA
	"a4:83:e7:12:34:56",                    // a Wi-Fi MAC
	"9774d56d682e549c",                     // an Android ID
	"31.2304", "121.4737",                  // latitude and longitude
	"740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad", // an APNs push token
	"555-0132",      // a US phone number
	"198.51.100.23", // {"network": {"ip": ...}}
	"leaky.buyer@example.com",
	"7911 123456",                                                        // a UK phone number, inside free text
	"ua.leak@example.com", "SECRET-MARKER-ZZ", "carol.model@example.com", // in the user agent, a consent category, context.device.model
	"１３８１２３４５６７８", "1.3812345678e10", // a phone number in fullwidth digits, and as a number with an exponent
}

// TestCatalogueEndToEnd posts, through the public write key, events whose
// properties hold every leak of catalogueLeaks (an e-mail address as a
// key, another in the event name), for a user whose cross-border consent
// the backend recorded, and checks Kafka and ClickHouse in both
// destinations: the declared public properties arrive abroad and nothing
// else does; in region the leaks are scrubbed or dropped; the enricher
// counts the departures from the catalogue by path, without values.
func TestCatalogueEndToEnd(t *testing.T) {
	ctx := testenv.Context(t, 3*time.Minute)
	st := startPrivacyStack(t, ctx, "catalogue", nil)
	user := "leaky-" + st.run
	now := time.Now().UTC()
	consent := map[string]any{"userId": user, "crossBorder": true, "purposes": map[string]bool{"analytics": true},
		"timestamp": now.Add(-time.Minute).Format(time.RFC3339Nano)}
	if a := send(t, serverKey, st.base+"/v1/consent", consent); a.Code != http.StatusOK {
		t.Fatalf("consent: %+v", a)
	}
	leaky := func() map[string]any {
		return map[string]any{
			"client_ip": "203.0.113.77", "ad": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "wifi": "a4:83:e7:12:34:56",
			"aid": "9774d56d682e549c", "latitude": 31.2304, "longitude": 121.4737,
			"push":     "740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad",
			"callback": "(415) 555-0132", "network": map[string]any{"ip": "198.51.100.23"},
			"leaky.buyer@example.com": "vip", "remark": "call +44 7911 123456",
		}
	}
	declared := leaky()
	declared["revenue"], declared["currency"], declared["order_id"] = 25, "CNY", "o-1"
	batch := []map[string]any{
		{"type": "track", "event": "Order Completed", "userId": user, "messageId": "declared-" + st.run, "properties": declared,
			"context": map[string]any{"page": map[string]any{"path": "/u/leaky.buyer@example.com", "title": "Hi (415) 555-0132"},
				"app": map[string]any{"name": "Shop", "version": "4.2.0"}}},
		{"type": "track", "event": "Invite sent to leaky.buyer@example.com", "userId": user, "messageId": "undeclared-" + st.run,
			"properties": leaky()},
	}
	if a := send(t, clientKey, st.base+"/v1/batch", map[string]any{"batch": batch}); a.Code != http.StatusOK || len(a.Rejected) != 0 {
		t.Fatalf("batch: %+v", a)
	}
	// Where SDKs write, a client can too: a user agent whose family
	// ua-parser takes from the string, a consent category of its own, the
	// device model.
	sdkFields := map[string]any{"type": "track", "event": "Order Completed", "userId": user, "messageId": "sdk-fields-" + st.run,
		"properties": map[string]any{"revenue": 5, "currency": "bob(at)example(dot)com"},
		"context": map[string]any{"device": map[string]any{"model": "carol.model@example.com"},
			"consent": map[string]any{"categoryPreferences": map[string]bool{"analytics": true, "SECRET-MARKER-ZZ": true}}}}
	if a := send(t, clientKey, st.base+"/v1/track", sdkFields, "User-Agent", "ua.leak@example.com/1.0 CFNetwork/1410.0.3 Darwin/22.6.0"); a.Code != http.StatusOK {
		t.Fatalf("track: %+v", a)
	}
	batch = append(batch, sdkFields)
	// In the declared public fields themselves: a phone number in
	// lookalike digits, and one written as a number with an exponent.
	for i, props := range []map[string]any{{"value": json.Number("1.3812345678e10")}, {"products": []any{map[string]any{"product_id": "１３８１２３４５６７８"}}}} {
		lookalike := map[string]any{"type": "track", "event": "Checkout Started", "userId": user, "messageId": fmt.Sprintf("lookalike-%d-%s", i, st.run), "properties": props}
		batch = append(batch, lookalike)
		if a := send(t, clientKey, st.base+"/v1/track", lookalike); a.Code != http.StatusOK {
			t.Fatalf("track: %+v", a)
		}
	}
	for testenv.CommittedTotal(t, ctx, st.brokers, st.ecfg.GroupID, st.raw) < int64(len(batch)) {
		if ctx.Err() != nil {
			t.Fatal("the enricher did not judge both events")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The offsets commit with the transaction; its markers reach the
	// output partitions a moment later.
	clean, exported := testenv.ReadAll(t, ctx, st.brokers, st.clean), testenv.ReadAll(t, ctx, st.brokers, st.export)
	for (len(clean) < len(batch) || len(exported) < len(batch)-2) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		clean, exported = testenv.ReadAll(t, ctx, st.brokers, st.clean), testenv.ReadAll(t, ctx, st.brokers, st.export)
	}
	// The lookalikes stay home: the gate refuses both abroad.
	if len(clean) != len(batch) || len(exported) != len(batch)-2 {
		t.Fatalf("%d clean and %d exported records, want %d and %d", len(clean), len(exported), len(batch), len(batch)-2)
	}
	if got := testenv.CounterValue(t, st.enricherReg, "enricher_events_dropped_total", "reason", "gate_refused"); got != 2 {
		t.Errorf("enricher_events_dropped_total{reason=gate_refused} = %v, want 2 (the lookalikes)", got)
	}
	waitRows(t, ctx, st.conn, st.database, len(batch))
	waitRows(t, ctx, st.conn, st.database+"_intl", len(batch)-2)

	stored := map[string]string{
		"events.export":  recordValues(exported),
		"analytics_intl": tableText(t, ctx, st.conn, st.database+"_intl.events"),
		"events.clean":   recordValues(clean),
		"analytics_cn":   tableText(t, ctx, st.conn, st.database+".events"),
	}
	for where, text := range stored {
		for _, leak := range catalogueLeaks {
			if strings.Contains(text, leak) {
				t.Errorf("%s holds %q", where, leak)
			}
		}
	}
	// The declared public properties arrive abroad, as ClickHouse reads them.
	var revenue float64
	var currency, name string
	if err := st.conn.QueryRow(ctx, "SELECT visitParamExtractFloat(properties, 'revenue'), visitParamExtractString(properties, 'currency'), event FROM "+
		st.database+"_intl.events WHERE event = 'Order Completed' AND visitParamExtractFloat(properties, 'revenue') > 10").Scan(&revenue, &currency, &name); err != nil || revenue != 25 || currency != "CNY" {
		t.Errorf("abroad: revenue %v, currency %q (%v), want 25 CNY", revenue, currency, err)
	}
	if strings.Contains(stored["analytics_intl"], "o-1") {
		t.Error("an internal property (order_id) left the region")
	}
	// No scrubber reads "bob(at)example(dot)com" as an address; the
	// catalogue's currency codes keep it home.
	if strings.Contains(stored["analytics_intl"], "bob(at)") || strings.Contains(stored["events.export"], "bob(at)") {
		t.Error("a public field outside its declared values left the region")
	}
	if !strings.Contains(stored["analytics_intl"], "(undeclared)") {
		t.Error("the undeclared event's name is not replaced abroad")
	}
	for _, want := range []string{"[phone]", "[mac]", "[push_token]", "[device_id]", "[email]"} {
		if !strings.Contains(stored["analytics_cn"], want) {
			t.Errorf("in region, no %s: the scrubbed value did not stay as its kind", want)
		}
	}

	// The privacy office sees what was removed, by path.
	rec := httptest.NewRecorder()
	st.enricher.(*pipeline.Pipeline).Violations().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/catalogue/violations", nil))
	body := rec.Body.String()
	for _, want := range []string{`"path":"properties.client_ip","reason":"personal_key"`, `"path":"properties.[email]","reason":"personal_key"`,
		`"path":"properties.remark","reason":"undeclared_field"`, `"event":"(undeclared)","path":"event","reason":"undeclared_event"`} {
		if !strings.Contains(body, want) {
			t.Errorf("violations lack %s:\n%s", want, body)
		}
	}
	for _, leak := range catalogueLeaks {
		if strings.Contains(body, leak) {
			t.Errorf("violations hold %q", leak)
		}
	}
	if got := testenv.CounterValue(t, st.enricherReg, "enricher_catalogue_violations_total", "reason", "personal_key"); got < 2 {
		t.Errorf("enricher_catalogue_violations_total{reason=personal_key} = %v, want at least 2", got)
	}
	var report pipeline.ViolationReport
	if err := json.Unmarshal(rec.Body.Bytes(), &report); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d paths reported, e.g. %+v", len(report.Violations), report.Violations[0])
}

// recordValues is the records' keys and values, one record a line.
func recordValues(records []*kgo.Record) string {
	var sb strings.Builder
	for _, r := range records {
		sb.Write(r.Key)
		sb.WriteByte('\t')
		sb.Write(r.Value)
		sb.WriteByte('\n')
	}
	return sb.String()
}
