package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/keyring"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
	"github.com/consentflow/consentflow/sink/chwriter"
)

// isolatePrivacy points every stage's privacy topics (receipts, identity
// links, erasure notices) at this run's own, deleted when the test ends.
func isolatePrivacy(t *testing.T, brokers []string, run string, c *ingest.Config, e *pipeline.Config, sinks ...*chwriter.Config) {
	receipts, identities, requests := "privacy.receipts."+run, "privacy.identities."+run, "privacy.erasure-requests."+run
	notices := func(dest string) string { return "privacy.erasures." + dest + "." + run }
	c.Topics.Receipts.Name, c.Topics.Identities.Name, c.Topics.ErasureRequests.Name = receipts, identities, requests
	e.Topics.Receipts.Name, e.Topics.Identities.Name, e.Topics.ErasureRequests.Name = receipts, identities, requests
	e.Topics.ErasureNotices.Name, e.Export.ErasureNotices.Name = notices(e.Region), notices(e.Export.Name)
	for _, s := range sinks {
		s.Topics.Receipts.Name, s.Topics.Erasures.Name = receipts, notices(s.Region)
	}
	testenv.DeleteTopicsAfter(t, brokers, receipts, identities, requests, notices(e.Region), notices(e.Export.Name))
}

// devKeyring is the keyring of a shipped development key file.
func devKeyring(t *testing.T, id, file string) *policy.Keyring {
	t.Helper()
	c := keyring.Config{KeyID: id, KeyFile: file}
	if err := c.Resolve("key"); err != nil {
		t.Fatal(err)
	}
	k, err := c.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// operatorClient calls the privacy admin API.
type operatorClient struct {
	base, token string
}

func (o operatorClient) do(t *testing.T, ctx context.Context, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, o.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// erase posts an erasure and returns its request id.
func (o operatorClient) erase(t *testing.T, ctx context.Context, body map[string]string) string {
	t.Helper()
	b, _ := json.Marshal(body)
	code, out := o.do(t, ctx, http.MethodPost, "/v1/privacy/erasures", o.token, b)
	var accepted struct {
		RequestID string `json:"requestId"`
	}
	if code != http.StatusAccepted || json.Unmarshal(out, &accepted) != nil || accepted.RequestID == "" {
		t.Fatalf("erasure %v: %d %s, want 202 with a requestId", body, code, out)
	}
	return accepted.RequestID
}

// exported is what POST /v1/privacy/exports answered, its rows' message
// ids sorted.
type exported struct {
	Subject            string `json:"subject"`
	LinkedAnonymousIDs int    `json:"linkedAnonymousIds"`
	Rows               []struct {
		MessageID string `json:"message_id"`
	} `json:"rows"`
	Destinations []struct {
		Name, Subject string
		Rows          []struct {
			MessageID string `json:"message_id"`
		} `json:"rows"`
	} `json:"destinations"`
	messageIDs []string
	body       []byte
}

// export exports the userId's data, and wants it served.
func (o operatorClient) export(t *testing.T, ctx context.Context, userID string) exported {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"userId": userID})
	code, out := o.do(t, ctx, http.MethodPost, "/v1/privacy/exports", o.token, body)
	x := exported{body: out}
	if code != http.StatusOK || json.Unmarshal(out, &x) != nil {
		t.Fatalf("export: %d %s", code, out)
	}
	for _, r := range x.Rows {
		x.messageIDs = append(x.messageIDs, r.MessageID)
	}
	slices.Sort(x.messageIDs)
	return x
}

// erasureStatus is what GET /v1/privacy/erasures/{id} answers.
type erasureStatus struct {
	Status       string `json:"status"`
	Subjects     int    `json:"subjects"`
	Notified     bool   `json:"notified"`
	Destinations map[string]struct {
		Status      string `json:"status"`
		RowsDeleted int64  `json:"rowsDeleted"`
	} `json:"destinations"`
}

// waitDone polls a request's status until it is done.
func (o operatorClient) waitDone(t *testing.T, ctx context.Context, id string) (erasureStatus, time.Duration) {
	t.Helper()
	began := time.Now()
	for {
		code, out := o.do(t, ctx, http.MethodGet, "/v1/privacy/erasures/"+id, o.token, nil)
		var st erasureStatus
		if code == http.StatusOK && json.Unmarshal(out, &st) == nil && st.Status == "done" {
			return st, time.Since(began)
		}
		if ctx.Err() != nil {
			t.Fatalf("erasure %s not done: %d %s", id, code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// subjectRows counts the rows of database.events under the pseudonyms.
func subjectRows(t *testing.T, ctx context.Context, conn driver.Conn, database string, users, anonymous []string) uint64 {
	t.Helper()
	var n uint64
	where, args := chx.SubjectsWhere(users, anonymous)
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+database+".events WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestErasureEndToEnd runs the collector (with the privacy admin API), the
// enricher and both sinks, and follows a subject with two linked devices
// through export, erasure, a replay of the raw topic and a restored
// backup: the export returns exactly its rows; the erasure suppresses an
// event sent after its 202, leaves no row in either database and says so
// per destination, with the rows it deleted; the replay brings nothing
// back; the reapply command cleans the restore; the audit tells it all.
func TestErasureEndToEnd(t *testing.T) {
	ctx := testenv.Context(t, 4*time.Minute)
	stack := startPrivacyStack(t, ctx, "erasure", nil)
	brokers, run, database, log, base, op, conn := stack.brokers, stack.run, stack.database, stack.log, stack.base, stack.op, stack.conn
	consent, erasures := stack.consent, stack.erasures
	ecfg, scfg, enricher, enricherReg, sinkReg := stack.ecfg, stack.scfg, stack.enricher, stack.enricherReg, stack.sinkReg

	// The erased person signs in on a phone (identify) and, later, the
	// backend links a laptop used before sign-in (alias: a server source's
	// word). Both persons consent to analytics and transfer abroad; the
	// laptop consented before sign-in.
	user, phone, laptop := "erased-"+run, "phone-"+run, "laptop-"+run
	kept, keptDevice := "kept-"+run, "kept-device-"+run
	for _, c := range []map[string]any{{"userId": user}, {"anonymousId": laptop}, {"userId": kept}} {
		c["purposes"], c["crossBorder"] = map[string]bool{"analytics": true}, true
		c["timestamp"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
		if resp := postAs(t, serverKey, base+"/v1/consent", c); !resp.Success {
			t.Fatalf("consent %v: %+v", c, resp)
		}
	}
	var batch []map[string]any
	ev := func(typ, id string, ids map[string]string) {
		e := map[string]any{"type": typ, "event": "Product Viewed", "messageId": run + "-" + id, "timestamp": time.Now().UTC().Format(time.RFC3339Nano)}
		for k, v := range ids {
			e[k] = v
		}
		batch = append(batch, e)
	}
	for i := range 3 {
		ev("track", fmt.Sprintf("laptop-%d", i), map[string]string{"anonymousId": laptop})
	}
	ev("identify", "identify", map[string]string{"userId": user, "anonymousId": phone})
	for i := range 4 {
		ev("track", fmt.Sprintf("phone-%d", i), map[string]string{"userId": user, "anonymousId": phone})
	}
	for i := range 5 {
		ev("track", fmt.Sprintf("kept-%d", i), map[string]string{"userId": kept, "anonymousId": keptDevice})
	}
	if resp := post(t, base+"/v1/batch", map[string]any{"batch": batch}); !resp.Success || len(resp.Rejected) != 0 {
		t.Fatalf("batch: %+v", resp)
	}
	batch = nil
	ev("alias", "alias", map[string]string{"userId": user, "previousId": laptop})
	if resp := postAs(t, serverKey, base+"/v1/batch", map[string]any{"batch": batch}); !resp.Success || len(resp.Rejected) != 0 {
		t.Fatalf("alias: %+v", resp)
	}
	const erasedEvents, keptEvents = 9, 5

	cn, intl := devKeyring(t, "k1", "../configs/dev-pseudonym.key"), devKeyring(t, "x1", "../configs/dev-export.key")
	pseudonyms := func(k *policy.Keyring) (users, anonymous []string) {
		return k.Pseudonyms(policy.KindUser, user), append(k.Pseudonyms(policy.KindAnonymous, phone), k.Pseudonyms(policy.KindAnonymous, laptop)...)
	}
	cnUsers, cnAnon := pseudonyms(cn)
	intlUsers, intlAnon := pseudonyms(intl)
	for {
		total := func(db string) uint64 {
			var n uint64
			_ = conn.QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&n)
			return n
		}
		if total(database) == erasedEvents+keptEvents && total(database+"_intl") == erasedEvents+keptEvents {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("rows: %d in region, %d abroad, want %d each", total(database), total(database+"_intl"), erasedEvents+keptEvents)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := subjectRows(t, ctx, conn, database, cnUsers, cnAnon); n != erasedEvents {
		t.Fatalf("%d rows of the erased person in the region, want %d", n, erasedEvents)
	}
	if n := subjectRows(t, ctx, conn, database+"_intl", intlUsers, intlAnon); n != erasedEvents {
		t.Fatalf("%d rows of the erased person abroad, want %d", n, erasedEvents)
	}

	// Export: exactly the person's rows, the laptop's included, nobody else's.
	x := op.export(t, ctx, user)
	var ids []string
	for _, id := range x.messageIDs {
		ids = append(ids, strings.TrimPrefix(id, run+"-"))
	}
	want := []string{"alias", "identify", "laptop-0", "laptop-1", "laptop-2", "phone-0", "phone-1", "phone-2", "phone-3"}
	if !slices.Equal(ids, want) || x.Subject != cnUsers[0] || x.LinkedAnonymousIDs != 2 {
		t.Errorf("export: subject %s, %d linked, rows %q; want %s, 2, %q", x.Subject, x.LinkedAnonymousIDs, ids, cnUsers[0], want)
	}
	if strings.Contains(string(x.body), user) || strings.Contains(string(x.body), phone) {
		t.Error("the export holds a raw identifier; the database never should")
	}
	// ... and the copy abroad: every row, under the export key (its
	// message ids are pseudonyms there).
	if len(x.Destinations) != 1 || x.Destinations[0].Name != "intl" || x.Destinations[0].Subject != intlUsers[0] || len(x.Destinations[0].Rows) != erasedEvents {
		t.Errorf("export abroad: %+v, want intl's %d rows under %s", x.Destinations, erasedEvents, intlUsers[0])
	}

	// Bad requests change nothing.
	erasuresBefore := len(testenv.ReadAll(t, ctx, brokers, erasures))
	erasure, _ := json.Marshal(map[string]string{"userId": user, "reason": "account_cancelled"})
	for _, tc := range []struct {
		token, body string
		code        int
		msg         string
	}{
		{"", string(erasure), http.StatusUnauthorized, "operator token"},
		{"wrong-token-0123456789-0123456789-0123456789", string(erasure), http.StatusUnauthorized, "operator token"},
		{op.token, `{"userId":"x","reason":"bored"}`, http.StatusBadRequest, "reason: must be one of"},
		{op.token, `{"userId":7,"reason":"user_request"}`, http.StatusBadRequest, "userId: must be a string"},
	} {
		code, out := op.do(t, ctx, http.MethodPost, "/v1/privacy/erasures", tc.token, []byte(tc.body))
		if code != tc.code || !strings.Contains(string(out), tc.msg) {
			t.Errorf("POST erasure %s with token %q: %d %s, want %d naming %q", tc.body, tc.token, code, out, tc.code, tc.msg)
		}
	}
	if n := len(testenv.ReadAll(t, ctx, brokers, erasures)); n != erasuresBefore {
		t.Errorf("refused requests wrote %d erasure records", n-erasuresBefore)
	}
	if code, _ := op.do(t, ctx, http.MethodGet, "/v1/privacy/erasures/no-such-request", op.token, nil); code != http.StatusNotFound {
		t.Errorf("status of an unknown request: %d, want 404", code)
	}

	// The erasure: done in both destinations, with the rows it deleted.
	id := op.erase(t, ctx, map[string]string{"userId": user, "reason": "account_cancelled"})
	// An event sent after the 202 never gets in: the enricher reads the
	// erasure log before it judges a batch.
	batch = nil
	ev("track", "late", map[string]string{"userId": user, "anonymousId": phone})
	if resp := post(t, base+"/v1/batch", map[string]any{"batch": batch}); !resp.Success {
		t.Fatalf("late batch: %+v", resp)
	}
	st, took := op.waitDone(t, ctx, id)
	t.Logf("erasure verified in every destination %v after the 202", took.Round(10*time.Millisecond))
	if !st.Notified || st.Subjects != 1 || len(st.Destinations) != 2 || st.Destinations["cn"].RowsDeleted != erasedEvents || st.Destinations["intl"].RowsDeleted != erasedEvents {
		t.Errorf("status %+v, want both destinations done with %d rows deleted", st, erasedEvents)
	}
	for _, db := range []struct {
		name             string
		users, anonymous []string
	}{{database, cnUsers, cnAnon}, {database + "_intl", intlUsers, intlAnon}} {
		if n := subjectRows(t, ctx, conn, db.name, db.users, db.anonymous); n != 0 {
			t.Errorf("%s holds %d rows of the erased person", db.name, n)
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+db.name+".events").Scan(&n); err != nil || n != keptEvents {
			t.Errorf("%s holds %d rows (%v), want the other person's %d", db.name, n, err, keptEvents)
		}
	}
	for testenv.CounterValue(t, enricherReg, "enricher_events_dropped_total", "reason", "suppressed") != 1 {
		if ctx.Err() != nil {
			t.Fatal("the event sent after the erasure was not suppressed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The erasure log (the suppression list, kept for good) holds the
	// user and, marked linked, both devices (the alias's previousId as
	// both kinds), by their pseudonyms: no raw identifier. The consent of
	// the user and of both devices is tombstoned.
	logged := map[string]bool{}
	for _, r := range testenv.ReadAll(t, ctx, brokers, erasures) {
		rec, err := event.DecodeErasureRecord(r.Value)
		if err != nil || rec.RequestID != id || rec.Operator != "dev" {
			t.Errorf("erasure record %s = %s (%v)", r.Key, r.Value, err)
		}
		for _, raw := range []string{user, phone, laptop} {
			if strings.Contains(string(r.Key)+string(r.Value), raw) {
				t.Errorf("the erasure log holds the raw identifier %s: %s %s", raw, r.Key, r.Value)
			}
		}
		logged[string(r.Key)] = rec.Linked
	}
	k1 := cn.At(time.Now())
	if linked, ok := logged[k1.Pseudonym(policy.KindUser, user)]; !ok || linked || !logged[k1.Pseudonym(policy.KindAnonymous, phone)] ||
		!logged[k1.Pseudonym(policy.KindAnonymous, laptop)] || !logged[k1.Pseudonym(policy.KindUser, laptop)] || len(logged) != 4 {
		t.Errorf("erasure log %v, want the user's pseudonym, then its phone's and laptop's as linked", logged)
	}
	latest := map[string][]byte{}
	for _, r := range testenv.ReadAll(t, ctx, brokers, consent) {
		latest[string(r.Key)] = r.Value
	}
	for _, subject := range []string{user, laptop} {
		if v, ok := latest[subject]; !ok || v != nil {
			t.Errorf("privacy.consent's latest record for %s is %s, want a tombstone", subject, v)
		}
	}
	// An unknown subject: accepted, and done at once with nothing deleted.
	unknown := op.erase(t, ctx, map[string]string{"anonymousId": "never-seen-" + run, "reason": "user_request"})
	if st, _ := op.waitDone(t, ctx, unknown); st.Destinations["cn"].RowsDeleted != 0 || st.Destinations["intl"].RowsDeleted != 0 {
		t.Errorf("unknown subject: %+v, want zero rows", st)
	}

	// Replay: the enricher's group back to the start of the raw topic.
	shutdownCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := enricher.Shutdown(shutdownCtx); err != nil {
		t.Fatal(err)
	}
	cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).DeleteGroup(ctx, ecfg.GroupID); err != nil {
		t.Fatalf("reset the enricher's group: %v", err)
	}
	replayReg := prometheus.NewRegistry()
	startOn(t, ctx, replayReg, func(reg prometheus.Registerer) (obs.Component, error) { return pipeline.New(ecfg, reg, log) })
	for testenv.CounterValue(t, replayReg, "enricher_events_in_total", "", "") < erasedEvents+1+keptEvents {
		if ctx.Err() != nil {
			t.Fatal("the replay did not run")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := testenv.CounterValue(t, replayReg, "enricher_events_dropped_total", "reason", "suppressed"); got != erasedEvents+1 {
		t.Errorf("the replay suppressed %v events, want the erased person's %d", got, erasedEvents+1)
	}
	// The replayed events of the other person reach ClickHouse again; by
	// then any of the erased person's would have too.
	for {
		var n uint64
		_ = conn.QueryRow(ctx, "SELECT count() FROM "+database+".events").Scan(&n)
		if n >= 2*keptEvents {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the replay reached ClickHouse with %d rows", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := subjectRows(t, ctx, conn, database, cnUsers, cnAnon); n != 0 {
		t.Errorf("the replay brought back %d rows of the erased person", n)
	}

	// Restore: the erased rows come back with a backup; reapplying the
	// erasure log removes them again.
	restore, err := conn.PrepareBatch(ctx, "INSERT INTO "+database+".events (message_id, subject, user_pseudonym, anonymous_pseudonym, event_time, received_at)")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range [][2]string{{cnUsers[0], cnAnon[0]}, {cnUsers[0], ""}, {"", cnAnon[1]}} {
		if err := restore.Append(fmt.Sprintf("restored-%d", i), p[0]+p[1], p[0], p[1], time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := restore.Send(); err != nil {
		t.Fatal(err)
	}
	report, err := chwriter.Reapply(ctx, scfg, log)
	if err != nil || report.Rows != 3 || report.Notices != 2 {
		t.Errorf("reapply: %+v, %v; want 3 rows of 2 notices", report, err)
	}
	if n := subjectRows(t, ctx, conn, database, cnUsers, cnAnon); n != 0 {
		t.Errorf("%d restored rows of the erased person remain after reapply", n)
	}

	// The audit holds every stage of the erasure and the export.
	for auditCtx, cancel := context.WithTimeout(ctx, 30*time.Second); ; {
		var stages []string
		rows, err := conn.Query(auditCtx, "SELECT concat(kind, ':', stage, ':', destination, ':', status) AS s FROM "+database+
			".privacy_audit FINAL WHERE request_id = ? OR (kind = 'export' AND operator = 'dev') ORDER BY s", id)
		if err == nil {
			for rows.Next() {
				var s string
				_ = rows.Scan(&s)
				stages = append(stages, s)
			}
			rows.Close()
		}
		want := []string{"erasure:collector::accepted", "erasure:enricher::notified", "erasure:sink:cn:deleted", "erasure:sink:intl:deleted", "export:collector::served"}
		if slices.Equal(stages, want) {
			cancel()
			break
		}
		if auditCtx.Err() != nil {
			t.Fatalf("audit rows %q (%v), want %q", stages, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The runbook's audit query answers the same.
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var auditQuery string
	for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.Contains(m[1], "privacy_audit") {
			auditQuery = regexp.MustCompile(`'[0-9a-f-]{36}'`).ReplaceAllString(strings.ReplaceAll(m[1], "analytics_cn.", database+"."), "'"+id+"'")
		}
	}
	rows, err := conn.Query(ctx, auditQuery)
	if err != nil {
		t.Fatalf("README audit query %q: %v", auditQuery, err)
	}
	var audited []string
	for rows.Next() {
		var at time.Time
		var kind, stage, destination, status, operator, reason, subject string
		var n, latency int64
		if err := rows.Scan(&at, &kind, &stage, &destination, &status, &operator, &reason, &subject, &n, &latency); err != nil {
			t.Fatal(err)
		}
		audited = append(audited, fmt.Sprintf("%s:%s:%s:%s:%d", stage, destination, status, operator, n))
		if subject == "" || strings.Contains(subject, user) {
			t.Errorf("audit row %s names the subject %q, want its pseudonym", stage, subject)
		}
	}
	rows.Close()
	slices.Sort(audited)
	if want := []string{"collector::accepted:dev:0", "enricher::notified:dev:0", fmt.Sprintf("sink:cn:deleted::%d", erasedEvents),
		fmt.Sprintf("sink:intl:deleted::%d", erasedEvents)}; !slices.Equal(audited, want) {
		t.Errorf("README audit query: %q, want %q", audited, want)
	}
	if n := histogramCount(t, sinkReg, "privacy_erasure_duration_seconds"); n < 2 {
		t.Errorf("privacy_erasure_duration_seconds observed %d erasures in the region, want 2", n)
	}
}

// histogramCount is the sample count of the histogram name in g.
func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// TestErasedDeviceLeavesNoCopy: a person signed in on a phone and a
// tablet, events abroad too; erasing the phone alone (its anonymousId)
// deletes every row of the phone, signed in or not, in every destination
// (abroad a signed-in row names its device under the export key), and
// only those: the tablet's rows stay. The export before it returned rows
// from both databases.
func TestErasedDeviceLeavesNoCopy(t *testing.T) {
	ctx := testenv.Context(t, 3*time.Minute)
	stack := startPrivacyStack(t, ctx, "device", nil)
	run, database, base, op, conn := stack.run, stack.database, stack.base, stack.op, stack.conn
	user, phone, tablet := "owner-"+run, "phone-"+run, "tablet-"+run
	for _, c := range []map[string]any{{"userId": user}, {"anonymousId": phone}} {
		c["purposes"], c["crossBorder"] = map[string]bool{"analytics": true}, true
		c["timestamp"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
		if resp := postAs(t, serverKey, base+"/v1/consent", c); !resp.Success {
			t.Fatalf("consent %v: %+v", c, resp)
		}
	}
	var batch []map[string]any
	for i, ids := range []map[string]string{
		{"anonymousId": phone}, {"anonymousId": phone}, // before sign-in
		{"userId": user, "anonymousId": phone}, {"userId": user, "anonymousId": phone}, {"userId": user, "anonymousId": phone},
		{"userId": user, "anonymousId": tablet}, {"userId": user, "anonymousId": tablet},
	} {
		e := map[string]any{"type": "track", "event": "Product Viewed", "messageId": fmt.Sprintf("%s-%d", run, i), "timestamp": time.Now().UTC().Format(time.RFC3339Nano)}
		for k, v := range ids {
			e[k] = v
		}
		batch = append(batch, e)
	}
	if resp := post(t, base+"/v1/batch", map[string]any{"batch": batch}); !resp.Success || len(resp.Rejected) != 0 {
		t.Fatalf("batch: %+v", resp)
	}
	const phoneRows, tabletRows = 5, 2
	waitRows(t, ctx, conn, database, phoneRows+tabletRows)
	waitRows(t, ctx, conn, database+"_intl", phoneRows+tabletRows)

	x := op.export(t, ctx, user)
	if len(x.Rows) != 5 || len(x.Destinations) != 1 || len(x.Destinations[0].Rows) != 5 {
		t.Errorf("export of the user: %d rows in region, destinations %+v; want its 5 signed-in rows in each", len(x.Rows), x.Destinations)
	}

	id := op.erase(t, ctx, map[string]string{"anonymousId": phone, "reason": "consent_withdrawn"})
	if st, _ := op.waitDone(t, ctx, id); st.Destinations["intl"].RowsDeleted != phoneRows || st.Destinations["cn"].RowsDeleted != phoneRows {
		t.Errorf("status %+v, want the phone's %d rows deleted in each destination", st, phoneRows)
	}
	for _, db := range []struct {
		name string
		keys *policy.Keyring
	}{{database, devKeyring(t, "k1", "../configs/dev-pseudonym.key")}, {database + "_intl", devKeyring(t, "x1", "../configs/dev-export.key")}} {
		if n := subjectRows(t, ctx, conn, db.name, nil, db.keys.Pseudonyms(policy.KindAnonymous, phone)); n != 0 {
			t.Errorf("%s keeps %d rows of the erased phone", db.name, n)
		}
		if n := subjectRows(t, ctx, conn, db.name, nil, db.keys.Pseudonyms(policy.KindAnonymous, tablet)); n != tabletRows {
			t.Errorf("%s keeps %d rows of the tablet, want %d", db.name, n, tabletRows)
		}
		// Rows that do not name their device would escape the lookups above.
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+db.name+".events").Scan(&n); err != nil || n != tabletRows {
			t.Errorf("%s holds %d rows (%v), want the tablet's %d only", db.name, n, err, tabletRows)
		}
	}
}
