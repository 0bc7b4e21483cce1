package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/internal/consenttoken"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
)

// answer is a collector's answer, whatever its status.
type answer struct {
	Code     int
	Error    string `json:"error"`
	Field    string `json:"field"`
	Rejected []struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	} `json:"rejected"`
}

// send posts body with writeKey and headers, and returns the answer.
func send(t *testing.T, writeKey, url string, body any, headers ...string) answer {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.SetBasicAuth(writeKey, "")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{Code: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("POST %s: %d, answer not JSON: %v", url, resp.StatusCode, err)
	}
	return a
}

// TestTrustEndToEnd attacks the whole pipeline as an outsider holding only
// the public write key a web page ships (the client source), through the
// HTTP API, and checks in Kafka and ClickHouse that each attack fails:
// a forged cross-border grant for someone else's userId, alias poisoning,
// an identify naming an erased user, a minor flag cleared by omission, a
// backdated event after a withdrawal, GPC with cross-border consent, and
// far-past and far-future timestamps. The same grants made the legitimate
// way, by the backend's server key or with a consent token it signed,
// take effect.
func TestTrustEndToEnd(t *testing.T) {
	ctx := testenv.Context(t, 4*time.Minute)
	tokenKey := consenttoken.Key{ID: "ct-e2e", Secret: []byte("e2e-only-consent-token-key-0123456789abcdef")}
	keyFile := filepath.Join(t.TempDir(), "consent-token.key")
	if err := os.WriteFile(keyFile, tokenKey.Secret, 0o600); err != nil {
		t.Fatal(err)
	}
	st := startPrivacyStack(t, ctx, "trust", func(c *ingest.Config) {
		c.ConsentTokens.Keys = []consenttoken.KeyConfig{{KeyID: tokenKey.ID, KeyFile: keyFile}}
	})
	run, base := st.run, st.base
	id := func(name string) string { return name + "-" + run }
	victim, victimPhone := id("victim"), id("victim-phone")
	attacker, attackerDevice := id("attacker"), id("attacker-device")
	child, withdrawn, gpc, erased := id("child-tablet"), id("withdrawn"), id("gpc"), id("erased")
	abroadServer, abroadToken := id("abroad-by-server"), id("abroad-by-token")
	restated, replayed := id("restated-ahead"), id("token-replayed")
	now := time.Now().UTC()
	stamp := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	consent := func(subject map[string]any, purposes ...string) map[string]any {
		p := map[string]bool{}
		for _, name := range purposes {
			p[name] = true
		}
		subject["purposes"] = p
		if subject["timestamp"] == nil {
			subject["timestamp"] = stamp(-time.Minute)
		}
		return subject
	}
	mustOK := func(what string, a answer) {
		t.Helper()
		if a.Code != http.StatusOK || len(a.Rejected) != 0 {
			t.Fatalf("%s: %+v, want 200", what, a)
		}
	}
	attack := func(what string, a answer, code int, field string) {
		t.Helper()
		t.Logf("attack %q: %d field=%q %s", what, a.Code, a.Field, a.Error)
		if a.Code != code || a.Field != field {
			t.Errorf("attack %q: %+v, want %d naming field %q", what, a, code, field)
		}
	}

	// Consent recorded the legitimate way: the backend (server key) for
	// userIds and the child's tablet, the page (client key) for its own
	// device, and with a token the backend signed.
	for _, c := range []map[string]any{
		consent(map[string]any{"userId": victim}, "analytics"),
		consent(map[string]any{"anonymousId": child, "minor": true}, "analytics"),
		consent(map[string]any{"userId": withdrawn, "timestamp": stamp(-2 * time.Hour)}, "analytics"),
		consent(map[string]any{"userId": withdrawn}), // the withdrawal, a minute ago
		consent(map[string]any{"userId": gpc, "crossBorder": true}, "analytics", "third_party_sharing"),
		consent(map[string]any{"userId": abroadServer, "crossBorder": true}, "analytics"),
		consent(map[string]any{"userId": erased}, "analytics"),
		consent(map[string]any{"userId": restated, "crossBorder": true}, "analytics"),
	} {
		mustOK("server consent", send(t, serverKey, base+"/v1/consent", c))
	}
	mustOK("client consent for its own device", send(t, clientKey, base+"/v1/consent", consent(map[string]any{"anonymousId": attackerDevice}, "analytics")))
	mustOK("the victim's page, for its device", send(t, clientKey, base+"/v1/consent", consent(map[string]any{"anonymousId": victimPhone}, "analytics")))
	token, err := consenttoken.Sign(tokenKey, consenttoken.Claims{UserID: abroadToken, Purposes: []string{"analytics"}, CrossBorder: true,
		IssuedAt: now.Add(-time.Minute).Truncate(time.Second), Expiry: now.Add(10 * time.Minute).Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	mustOK("client consent with a token", send(t, clientKey, base+"/v1/consent",
		consent(map[string]any{"userId": abroadToken, "crossBorder": true, "consentToken": token}, "analytics")))
	replayToken, err := consenttoken.Sign(tokenKey, consenttoken.Claims{UserID: replayed, Purposes: []string{"analytics"}, CrossBorder: true,
		IssuedAt: now.Add(-time.Minute).Truncate(time.Second), Expiry: now.Add(10 * time.Minute).Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	replay := consent(map[string]any{"userId": replayed, "crossBorder": true, "consentToken": replayToken}, "analytics")
	mustOK("client consent with a token, to be replayed", send(t, clientKey, base+"/v1/consent", replay))

	// The attacks on consent: nothing is written.
	consentBefore := len(testenv.ReadAll(t, ctx, st.brokers, st.consent))
	attack("forged cross-border grant for someone else's userId", send(t, clientKey, base+"/v1/consent",
		consent(map[string]any{"userId": victim, "crossBorder": true, "minor": false, "guardianConsent": true}, "analytics", "marketing", "third_party_sharing")),
		http.StatusForbidden, "purposes.marketing")
	attack("cross-border grant for the victim's device", send(t, clientKey, base+"/v1/consent",
		consent(map[string]any{"anonymousId": victimPhone, "crossBorder": true}, "analytics")), http.StatusForbidden, "crossBorder")
	attack("minor cleared", send(t, clientKey, base+"/v1/consent",
		consent(map[string]any{"anonymousId": child, "minor": false}, "analytics")), http.StatusForbidden, "minor")
	attack("the token replayed for another userId", send(t, clientKey, base+"/v1/consent",
		consent(map[string]any{"userId": victim, "crossBorder": true, "consentToken": token}, "analytics")), http.StatusForbidden, "consentToken")
	if n := len(testenv.ReadAll(t, ctx, st.brokers, st.consent)); n != consentBefore {
		t.Errorf("refused consent updates wrote %d records", n-consentBefore)
	}
	// A device named like the victim's userId: answered as if recorded,
	// and not written (it would take the victim's record's place).
	mustOK("consent for a device named like the victim's userId", send(t, clientKey, base+"/v1/consent",
		consent(map[string]any{"anonymousId": victim}, "analytics", "marketing", "personalization", "third_party_sharing")))
	for _, r := range testenv.ReadAll(t, ctx, st.brokers, st.consent) {
		if cs, err := event.DecodeConsentState(r.Value); err == nil && cs.AnonymousID == victim {
			t.Errorf("consent recorded for a device named like the victim's userId: %s", r.Value)
		}
	}
	// A grant restated ahead of time, then withdrawn by the backend: the
	// withdrawal is the latest. The token replayed after a withdrawal.
	mustOK("restated, stamped 59 minutes ahead", send(t, clientKey, base+"/v1/consent",
		consent(map[string]any{"userId": restated, "crossBorder": true, "timestamp": stamp(59 * time.Minute)}, "analytics")))
	mustOK("the backend withdraws cross-border", send(t, serverKey, base+"/v1/consent", consent(map[string]any{"userId": restated}, "analytics")))
	mustOK("the backend withdraws", send(t, serverKey, base+"/v1/consent", consent(map[string]any{"userId": replayed})))
	attack("the token replayed after a withdrawal", send(t, clientKey, base+"/v1/consent", replay), http.StatusForbidden, "purposes.analytics")
	// Minor left out: accepted, and the tablet stays a minor's.
	mustOK("minor left out", send(t, clientKey, base+"/v1/consent", consent(map[string]any{"anonymousId": child}, "analytics", "marketing")))

	erasure := st.op.erase(t, ctx, map[string]string{"userId": erased, "reason": "account_cancelled"})
	st.op.waitDone(t, ctx, erasure)

	// The events, all through the page's key.
	var batch []map[string]any
	ev := func(typ, msg string, fields map[string]any) {
		e := map[string]any{"type": typ, "event": "Viewed", "messageId": id(msg), "timestamp": stamp(0)}
		for k, v := range fields {
			e[k] = v
		}
		batch = append(batch, e)
	}
	victimIDs := map[string]any{"userId": victim, "anonymousId": victimPhone}
	ev("identify", "victim-identify", victimIDs)
	for _, m := range []string{"victim-1", "victim-2", "victim-3"} {
		ev("track", m, victimIDs)
	}
	// Consent carried in an event, granting for the victim's userId.
	ev("track", "forged-carried", map[string]any{"userId": victim,
		"context": map[string]any{"consent": map[string]any{"categoryPreferences": map[string]bool{"marketing": true}}}})
	ev("track", "victim-4", victimIDs)
	ev("alias", "alias-poison", map[string]any{"previousId": victimPhone, "userId": attacker})
	ev("identify", "attacker-identify", map[string]any{"userId": attacker, "anonymousId": attackerDevice})
	ev("track", "attacker-1", map[string]any{"userId": attacker, "anonymousId": attackerDevice})
	ev("identify", "identify-erased", map[string]any{"userId": erased, "anonymousId": victimPhone})
	// The victim's userId as the attacker's device: an anonymousId with no
	// consent of its own, so nothing is kept and nothing linked.
	ev("identify", "identify-as-victim", map[string]any{"userId": attacker, "anonymousId": victim})
	for _, m := range []string{"restated-1", "replayed-1"} {
		ev("track", m, map[string]any{"userId": map[string]string{"restated-1": restated, "replayed-1": replayed}[m]})
	}
	ev("page", "child-1", map[string]any{"anonymousId": child})
	// A flood of consent carried in the child's events, toggling, each at
	// its own time: the minor flag beneath must hold.
	for i := range 20 {
		ev("page", fmt.Sprintf("child-flood-%02d", i), map[string]any{"anonymousId": child, "timestamp": stamp(time.Duration(i-25) * 2 * time.Second),
			"context": map[string]any{"consent": map[string]any{"categoryPreferences": map[string]bool{"analytics": true, "marketing": i%2 == 0}}}})
	}
	// The victim's device, linked to the victim earlier in this batch,
	// claimed by the attacker.
	ev("identify", "relink", map[string]any{"userId": attacker, "anonymousId": victimPhone})
	ev("track", "backdated", map[string]any{"userId": withdrawn, "timestamp": stamp(-time.Hour)})
	for _, m := range []string{"abroad-server-1", "abroad-server-2"} {
		ev("track", m, map[string]any{"userId": abroadServer})
	}
	for _, m := range []string{"abroad-token-1", "abroad-token-2"} {
		ev("track", m, map[string]any{"userId": abroadToken})
	}
	ev("track", "ten-days-old", map[string]any{"userId": abroadServer, "timestamp": stamp(-240 * time.Hour)})
	ev("track", "far-future", map[string]any{"userId": abroadServer, "timestamp": "2099-06-01T00:00:00Z"})
	a := send(t, clientKey, base+"/v1/batch", map[string]any{"batch": batch, "sentAt": stamp(0)})
	if a.Code != http.StatusOK || len(a.Rejected) != 2 || a.Rejected[0].Index != len(batch)-2 || a.Rejected[1].Index != len(batch)-1 ||
		!strings.Contains(a.Rejected[0].Error, "max_event_age") || !strings.Contains(a.Rejected[1].Error, "max_future_skew") {
		t.Fatalf("batch: %+v, want the last two rejected for their time", a)
	}
	t.Logf("attack %q: %s", "event ten days old", a.Rejected[0].Error)
	t.Logf("attack %q: %s", "event in 2099", a.Rejected[1].Error)
	mustOK("GPC event", send(t, clientKey, base+"/v1/track", map[string]any{"event": "Viewed", "messageId": id("gpc-1"), "userId": gpc}, "Sec-GPC", "1"))

	// Settle: the enricher has judged every raw event, and each sink has
	// loaded everything its topic holds.
	rawEvents := int64(len(batch) - 2 + 1)
	for testenv.CommittedTotal(t, ctx, st.brokers, st.ecfg.GroupID, st.raw) < rawEvents {
		if ctx.Err() != nil {
			t.Fatal("the enricher did not judge every event")
		}
		time.Sleep(100 * time.Millisecond)
	}
	clean, exported := testenv.ReadAll(t, ctx, st.brokers, st.scfg.Topics.Clean.Name), testenv.ReadAll(t, ctx, st.brokers, st.export)
	waitRows(t, ctx, st.conn, st.database, len(clean))
	waitRows(t, ctx, st.conn, st.database+"_intl", len(exported))

	cn, intl := devKeyring(t, "k1", "../configs/dev-pseudonym.key"), devKeyring(t, "x1", "../configs/dev-export.key")
	// Abroad: only the two subjects the backend and the token granted.
	var abroad []string
	for _, r := range exported {
		abroad = append(abroad, string(r.Key))
	}
	slices.Sort(abroad)
	want := slices.Sorted(slices.Values([]string{intl.Pseudonyms(policy.KindUser, abroadServer)[0], intl.Pseudonyms(policy.KindUser, abroadServer)[0],
		intl.Pseudonyms(policy.KindUser, abroadToken)[0], intl.Pseudonyms(policy.KindUser, abroadToken)[0]}))
	if !slices.Equal(abroad, want) {
		t.Errorf("exported subjects %q, want the server's and the token's grants only, twice each", abroad)
	}
	for who, ids := range map[string][]string{"the victim": {victim}, "the GPC user": {gpc}} {
		if n := subjectRows(t, ctx, st.conn, st.database+"_intl", intl.Pseudonyms(policy.KindUser, ids[0]), nil); n != 0 {
			t.Errorf("%d rows of %s abroad, want none", n, who)
		}
	}
	// In region: the victim's events, for analytics alone (the one the
	// attacker forged under the victim's userId too: the key lets anyone
	// send events, but its marketing grant was ignored); nothing of the
	// child, of the backdated event, of the GPC event.
	inRegion := map[string][]string{}
	for _, r := range clean {
		c, err := event.DecodeClean(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		inRegion[strings.TrimSuffix(c.MessageID, "-"+run)] = c.Purposes
	}
	if p, ok := inRegion["restated-1"]; !ok || !slices.Equal(p, []string{"analytics"}) {
		t.Errorf("clean restated-1: %v (stored %v), want kept for analytics, and not abroad", p, ok)
	}
	if _, ok := inRegion["replayed-1"]; ok {
		t.Error("the replayed token's subject has an event stored")
	}
	for _, m := range []string{"victim-identify", "victim-1", "victim-2", "victim-3", "forged-carried", "victim-4"} {
		if p, ok := inRegion[m]; !ok || !slices.Equal(p, []string{"analytics"}) {
			t.Errorf("clean %s: purposes %v (stored %v), want kept for analytics only", m, p, ok)
		}
	}
	for m := range inRegion {
		if strings.HasPrefix(m, "child-") {
			t.Errorf("clean topic holds the minor's %s", m)
		}
	}
	for _, m := range []string{"backdated", "gpc-1"} {
		if _, ok := inRegion[m]; ok {
			t.Errorf("clean topic holds %s", m)
		}
	}
	// The victim's device linked to the victim alone, and not erased.
	for _, r := range testenv.ReadAll(t, ctx, st.brokers, st.ecfg.Topics.Identities.Name) {
		if l, err := event.DecodeIdentityLink(r.Value); string(r.Key) == victimPhone && (err != nil || l.UserID != victim) {
			t.Errorf("the victim's device was linked: %s", r.Value)
		}
	}
	for _, r := range testenv.ReadAll(t, ctx, st.brokers, st.erasures) {
		if string(r.Key) == victimPhone || string(r.Key) == victim {
			t.Errorf("the victim was erased: %s %s", r.Key, r.Value)
		}
	}

	// Export and erasure of the attacker touch nothing of the victim.
	export := st.op.export(t, ctx, attacker)
	var rows []string
	for _, id := range export.messageIDs {
		rows = append(rows, strings.TrimSuffix(id, "-"+run))
	}
	t.Logf("attack %q: the attacker's export holds %q", "alias poisoning", rows)
	// relink is the attacker's own event (its userId), sent from the
	// victim's device: the device stayed the victim's.
	if !slices.Equal(rows, []string{"attacker-1", "attacker-identify", "relink"}) || export.LinkedAnonymousIDs != 1 {
		t.Errorf("the attacker's export: %d linked, rows %q; want its own device and rows only", export.LinkedAnonymousIDs, rows)
	}
	victimRows := func() uint64 {
		return subjectRows(t, ctx, st.conn, st.database, cn.Pseudonyms(policy.KindUser, victim), cn.Pseudonyms(policy.KindAnonymous, victimPhone))
	}
	// The victim's six, and the attacker's relink, sent from the device.
	if n := victimRows(); n != 7 {
		t.Fatalf("%d rows of the victim in region, want 7", n)
	}
	st.op.waitDone(t, ctx, st.op.erase(t, ctx, map[string]string{"userId": attacker, "reason": "user_request"}))
	mustOK("the victim's next event", send(t, clientKey, base+"/v1/track", map[string]any{"event": "Viewed", "messageId": id("victim-5"),
		"userId": victim, "anonymousId": victimPhone}))
	// The attacker's relink row goes with the attacker; the victim's six
	// stay, and the next is stored.
	for victimRows() != 7 {
		if ctx.Err() != nil {
			t.Fatalf("the victim has %d rows after the attacker's erasure, want 7: erased or suppressed with it", victimRows())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("attack %q: the victim keeps %d rows after the attacker's erasure", "alias poisoning", victimRows())
}

// waitRows waits until database.events holds n rows.
func waitRows(t *testing.T, ctx context.Context, conn driver.Conn, database string, n int) {
	t.Helper()
	for {
		var got uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM "+database+".events").Scan(&got)
		if err == nil && got == uint64(n) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s.events holds %d rows (%v), want %d", database, got, err, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
