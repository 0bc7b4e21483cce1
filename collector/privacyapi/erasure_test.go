package privacyapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestErasureAPI runs the erasure endpoint's authentication, validation
// and limits against a real broker, and checks what reached Kafka: one
// erasure record and one consent tombstone per identifier of an accepted
// request, nothing for a refused one.
func TestErasureAPI(t *testing.T) {
	f := newPrivacyFixture(t)
	erasures, consent := f.cfg.Topics.Erasures.Name, f.cfg.Topics.Consent.Name
	bearer := "Bearer " + dpoToken
	longID := strings.Repeat("x", 1025)
	cases := []struct {
		name, method, auth, body string
		code                     int
		errPart                  string
		ids                      int // identifiers erased
	}{
		{"no token", "POST", "", `{"userId":"u-none","reason":"user_request"}`, 401, "operator token", 0},
		{"unknown token", "POST", "Bearer " + strings.Repeat("z", 50), `{"userId":"u-unknown","reason":"user_request"}`, 401, "operator token", 0},
		{"token as basic auth", "POST", "Basic " + dpoToken, `{"userId":"u-basic","reason":"user_request"}`, 401, "operator token", 0},
		{"empty bearer", "POST", "Bearer ", `{"userId":"u-empty","reason":"user_request"}`, 401, "operator token", 0},
		{"token prefix", "POST", "Bearer " + dpoToken[:len(dpoToken)-1], `{"userId":"u-prefix","reason":"user_request"}`, 401, "operator token", 0},
		{"user id", "POST", bearer, `{"userId":"u-1","reason":"account_cancelled"}`, 202, "", 1},
		{"anonymous id", "POST", bearer, `{"anonymousId":"a-1","reason":"consent_withdrawn"}`, 202, "", 1},
		{"both ids, other operator, lower-case scheme", "POST", "bearer " + supportToken, `{"userId":"u-2","anonymousId":"a-2","reason":"user_request"}`, 202, "", 2},
		{"unknown field", "POST", bearer, `{"userId":"u-3","email":"u3@example.com","reason":"user_request"}`, 400, "email: unknown field", 0},
		{"unknown reason", "POST", bearer, `{"userId":"u-3","reason":"because"}`, 400, `reason: must be one of account_cancelled, consent_withdrawn, user_request, got "because"`, 0},
		{"no reason", "POST", bearer, `{"userId":"u-3"}`, 400, "reason: is required", 0},
		{"no id", "POST", bearer, `{"reason":"user_request"}`, 400, "userId or anonymousId is required", 0},
		{"empty id", "POST", bearer, `{"userId":"","anonymousId":"a-3","reason":"user_request"}`, 400, "userId: must not be empty", 0},
		{"id not a string", "POST", bearer, `{"userId":42,"reason":"user_request"}`, 400, "userId: must be a string", 0},
		{"null id", "POST", bearer, `{"anonymousId":null,"userId":"u-3","reason":"user_request"}`, 400, "anonymousId: must be a string", 0},
		{"id too long", "POST", bearer, `{"userId":"` + longID + `","reason":"user_request"}`, 400, "userId: is 1025 bytes", 0},
		{"duplicate field", "POST", bearer, `{"userId":"u-3","userId":"u-4","reason":"user_request"}`, 400, "(body)", 0},
		{"not an object", "POST", bearer, `["u-3"]`, 400, "(body): must be a JSON object", 0},
		{"null body", "POST", bearer, `null`, 400, "(body): must be a JSON object", 0},
		{"invalid JSON", "POST", bearer, `{"userId":`, 400, "(body)", 0},
		{"trailing data", "POST", bearer, `{"userId":"u-3","reason":"user_request"} {}`, 400, "(body)", 0},
		{"body too large", "POST", bearer, `{"userId":"u-3","reason":"user_request","pad":"` + strings.Repeat("p", 16<<10) + `"}`, 413, "exceeds 16384 bytes", 0},
		{"GET", "GET", bearer, ``, 405, "", 0},
	}
	requestIDs := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			beforeE, beforeC := f.stored(t, erasures), f.stored(t, consent)
			code, header, body := f.erase(t, tc.method, tc.auth, []byte(tc.body))
			if code != tc.code {
				t.Fatalf("%d %s, want %d", code, body, tc.code)
			}
			switch {
			case code == 202:
				var ok struct {
					RequestID string `json:"requestId"`
				}
				if err := json.Unmarshal(body, &ok); err != nil || len(ok.RequestID) != 36 || requestIDs[ok.RequestID] {
					t.Errorf("body %s: want a new UUID requestId", body)
				}
				requestIDs[ok.RequestID] = true
			case code == 405:
			default:
				var resp response
				if err := json.Unmarshal(body, &resp); err != nil || resp.Success || !strings.Contains(resp.Error, tc.errPart) {
					t.Errorf("body %s: want an error containing %q", body, tc.errPart)
				}
				if code == 401 && header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
			if got := f.stored(t, erasures) - beforeE; got != int64(tc.ids) {
				t.Errorf("%d erasure records written, want %d", got, tc.ids)
			}
			if got := f.stored(t, consent) - beforeC; got != int64(tc.ids) {
				t.Errorf("%d consent tombstones written, want %d", got, tc.ids)
			}
		})
	}

	// The erasure log (the suppression list): keyed by the identifier's
	// pseudonym, never by the identifier, never null, naming the request;
	// the requests the enricher passes on: keyed by the identifier, the
	// same value.
	ctx := testenv.Context(t, 30*time.Second)
	want := map[string]struct{ kind, reason, operator string }{
		"u-1": {"userId", "account_cancelled", "dpo"},
		"a-1": {"anonymousId", "consent_withdrawn", "dpo"},
		"u-2": {"userId", "user_request", "support"},
		"a-2": {"anonymousId", "user_request", "support"},
	}
	key := f.keys.At(time.Now())
	suppressionKey := map[string]string{}
	for id, w := range want {
		kind := policy.KindUser
		if w.kind == "anonymousId" {
			kind = policy.KindAnonymous
		}
		suppressionKey[id] = key.Pseudonym(kind, id)
	}
	for _, topic := range []string{erasures, f.cfg.Topics.ErasureRequests.Name} {
		got := map[string]event.ErasureRecord{}
		for _, r := range testenv.ReadAll(t, ctx, f.brokers, topic) {
			if r.Value == nil {
				t.Fatalf("%s record %q is null", topic, r.Key)
			}
			var rec event.ErasureRecord
			if err := json.Unmarshal(r.Value, &rec); err != nil {
				t.Fatal(err)
			}
			for id := range want {
				if strings.Contains(string(r.Value), `"`+id+`"`) || (topic == erasures && string(r.Key) == id) {
					t.Errorf("%s record %s %s holds the identifier %q", topic, r.Key, r.Value, id)
				}
			}
			got[string(r.Key)] = rec
		}
		if len(got) != len(want) {
			t.Errorf("%s holds %d subjects, want %d: %+v", topic, len(got), len(want), got)
		}
		for id, w := range want {
			rec := got[id]
			if topic == erasures {
				rec = got[suppressionKey[id]]
			}
			if rec.SchemaVersion != 1 || rec.SubjectKind != w.kind || rec.Reason != w.reason || rec.Operator != w.operator ||
				!requestIDs[rec.RequestID] || time.Since(rec.RequestedAt) > time.Minute {
				t.Errorf("%s record of %s = %+v, want kind %s, reason %s, operator %s, a request id answered", topic, id, rec, w.kind, w.reason, w.operator)
			}
		}
		if got[suppressionKey["u-2"]].RequestID != got[suppressionKey["a-2"]].RequestID || got["u-2"].RequestID != got["a-2"].RequestID {
			t.Errorf("the two identifiers of one request have different request ids in %s", topic)
		}
	}
	// The consent topic: a tombstone per identifier, nothing else.
	tombstones := map[string]bool{}
	for _, r := range testenv.ReadAll(t, ctx, f.brokers, consent) {
		if r.Value != nil {
			t.Errorf("consent record %q is not a tombstone: %s", r.Key, r.Value)
		}
		tombstones[string(r.Key)] = true
	}
	for key := range want {
		if !tombstones[key] {
			t.Errorf("no consent tombstone for %s", key)
		}
	}

	// Metrics, by reason and refusal code.
	for reason, n := range map[string]float64{"account_cancelled": 1, "consent_withdrawn": 1, "user_request": 1} {
		if got := testutil.ToFloat64(f.api.metrics.erasures.WithLabelValues(reason)); got != n {
			t.Errorf("privacy_erasure_requests_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
	for code, n := range map[string]float64{"400": 13, "401": 5, "413": 1, "503": 0} {
		if got := testutil.ToFloat64(f.api.metrics.erasureRefusals.WithLabelValues(code)); got != n {
			t.Errorf("privacy_erasure_requests_refused_total{code=%q} = %v, want %v", code, got, n)
		}
	}
	testenv.LintMetrics(t, f.reg)

	// Logs: each accepted request by request id, operator and reason;
	// never an identifier or a token.
	logs := f.logs.String()
	for id := range requestIDs {
		if !strings.Contains(logs, id) {
			t.Errorf("request %s not logged", id)
		}
	}
	for _, secret := range []string{`"u-1"`, `"a-1"`, `"u-2"`, `"a-2"`, "u3@example.com", dpoToken, supportToken, dpoToken[:20]} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs reveal %q:\n%s", secret, logs)
		}
	}
}

// TestErasureNotOnPublicPort checks the privacy API is served on its own
// listener only.
func TestErasureNotOnPublicPort(t *testing.T) {
	f := newPrivacyFixture(t)
	before := f.stored(t, f.cfg.Topics.Erasures.Name)
	r := f.do(t, call{method: "POST", path: "/v1/privacy/erasures", header: map[string]string{"Authorization": "Bearer " + dpoToken},
		body: []byte(`{"userId":"u-public","reason":"user_request"}`)})
	if r.code != http.StatusNotFound {
		t.Errorf("public port answered %d %s, want 404", r.code, r.body)
	}
	if got := f.stored(t, f.cfg.Topics.Erasures.Name) - before; got != 0 {
		t.Errorf("%d erasure records written through the public port", got)
	}
}

// TestErasureBrokerDownAnswers503 checks that with Kafka unreachable an
// erasure is answered 503 with Retry-After once the produce deadline has
// passed, never 202.
func TestErasureBrokerDownAnswers503(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:1"})
	cfg.HTTP.ProduceTimeout = time.Second
	privacyConfig(&cfg)
	_, api := newCollector(t, cfg, prometheus.NewRegistry(), quiet)
	req := httptest.NewRequest(http.MethodPost, "/v1/privacy/erasures", strings.NewReader(`{"userId":"u-1","reason":"user_request"}`))
	req.Header.Set("Authorization", "Bearer "+dpoToken)
	rec := httptest.NewRecorder()
	start := time.Now()
	api.Routes()[ErasureRoute].ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d %s (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	if elapsed := time.Since(start); elapsed > cfg.HTTP.ProduceTimeout+5*time.Second {
		t.Errorf("answered after %v; the produce deadline is %v", elapsed, cfg.HTTP.ProduceTimeout)
	}
	if got := testutil.ToFloat64(api.metrics.erasureRefusals.WithLabelValues("503")); got != 1 {
		t.Errorf("privacy_erasure_requests_refused_total{code=\"503\"} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(api.metrics.erasures.WithLabelValues("user_request")); got != 0 {
		t.Errorf("privacy_erasure_requests_total = %v for a refused request", got)
	}
}

// TestErasureNoOperators checks that with no operator configured every
// request is refused.
func TestErasureNoOperators(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:1"})
	_, api := newCollector(t, cfg, prometheus.NewRegistry(), quiet)
	req := httptest.NewRequest(http.MethodPost, "/v1/privacy/erasures", strings.NewReader(`{"userId":"u-1","reason":"user_request"}`))
	req.Header.Set("Authorization", "Bearer "+dpoToken)
	rec := httptest.NewRecorder()
	api.Routes()[ErasureRoute].ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("got %d %s, want 401", rec.Code, rec.Body)
	}
}

// TestDecodeErasure covers the body's rules without a broker.
func TestDecodeErasure(t *testing.T) {
	req, err := decodeSubject([]byte(` {"reason":"user_request","anonymousId":"a-1"} `), true)
	if err != nil || req != (subjectRequest{anonymousID: "a-1", reason: "user_request"}) {
		t.Errorf("decodeErasure = %+v, %v", req, err)
	}
	if _, err := decodeSubject([]byte("{\"userId\":\"\xff\",\"reason\":\"user_request\"}"), true); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	// An unknown field is reported before anything else, the same one every time.
	for range 5 {
		if _, err := decodeSubject([]byte(`{"zeta":1,"alpha":2,"reason":"nope"}`), true); err == nil || !strings.HasPrefix(err.Error(), "alpha: unknown field") {
			t.Fatalf("err = %v, want alpha named", err)
		}
	}
}

// TestErasureOfADeviceSpeltLikeAUser: erasing an anonymousId spelt like a
// userId with consent leaves that user's consent alone (the record under
// the key is the user's), and the suppression list keys the two kinds of
// an id apart (their pseudonyms differ), so compaction cannot lift one
// erasure with the other.
func TestErasureOfADeviceSpeltLikeAUser(t *testing.T) {
	f := newPrivacyFixture(t)
	ctx := testenv.Context(t, 30*time.Second)
	erasures, consent := f.cfg.Topics.Erasures.Name, f.cfg.Topics.Consent.Name
	kid, _ := json.Marshal(event.ConsentUpdate{UserID: "u-kid", Purposes: map[string]bool{"analytics": true}, Minor: new(true)}.State(time.Now(), "backend", "cn"))
	testenv.Produce(t, ctx, f.brokers, &kgo.Record{Topic: consent, Key: []byte("u-kid"), Value: kid})
	bearer := "Bearer " + dpoToken
	for _, body := range []string{`{"anonymousId":"u-kid","reason":"user_request"}`, `{"userId":"u-gone","reason":"user_request"}`,
		`{"anonymousId":"u-gone","reason":"user_request"}`} {
		if code, _, out := f.erase(t, "POST", bearer, []byte(body)); code != 202 {
			t.Fatalf("erase %s: %d %s", body, code, out)
		}
	}
	for _, r := range testenv.ReadAll(t, ctx, f.brokers, consent) {
		if string(r.Key) == "u-kid" && r.Value == nil {
			t.Error("erasing the device u-kid tombstoned the user u-kid's consent")
		}
	}
	var kinds []string
	for _, r := range testenv.ReadAll(t, ctx, f.brokers, erasures) {
		rec, err := event.DecodeErasureRecord(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, string(r.Key)+":"+rec.SubjectKind)
	}
	key := f.keys.At(time.Now())
	want := []string{key.Pseudonym(policy.KindUser, "u-gone") + ":userId", key.Pseudonym(policy.KindAnonymous, "u-gone") + ":anonymousId",
		key.Pseudonym(policy.KindAnonymous, "u-kid") + ":anonymousId"}
	slices.Sort(want)
	slices.Sort(kinds)
	if !slices.Equal(kinds, want) {
		t.Errorf("erasure records %v, want %v", kinds, want)
	}
}

// TestConsentOfAnErasedSubjectIsNotWritten: after an erasure, a consent
// update for the erased device (anyone may post one with the public write
// key) is answered 200 like any other, and not written: a record under
// the raw id would outlive the tombstone in the compacted topic for good.
func TestConsentOfAnErasedSubjectIsNotWritten(t *testing.T) {
	f := newPrivacyFixture(t)
	consent := f.cfg.Topics.Consent.Name
	if code, _, out := f.erase(t, "POST", "Bearer "+dpoToken, []byte(`{"anonymousId":"a-erased","reason":"consent_withdrawn"}`)); code != 202 {
		t.Fatalf("erase: %d %s", code, out)
	}
	for !f.srv.ConsentStore().Suppressed(consentstore.KindAnonymous, "a-erased") {
		time.Sleep(20 * time.Millisecond) // the gate reads the suppression list back
	}
	before := f.stored(t, consent)
	for _, body := range []string{`{"anonymousId":"a-erased","purposes":{"analytics":true}}`, `{"anonymousId":"a-other","purposes":{"analytics":true}}`} {
		if r := f.do(t, call{method: "POST", path: "/v1/consent", key: "web-write-key", body: []byte(body)}); r.code != 200 || !r.resp.Success {
			t.Fatalf("consent %s: %d %s, want 200 either way", body, r.code, r.body)
		}
	}
	if got := f.stored(t, consent) - before; got != 1 {
		t.Errorf("%d consent records written, want 1 (the other device's only)", got)
	}
	for _, r := range testenv.ReadAll(t, testenv.Context(t, 30*time.Second), f.brokers, consent) {
		if string(r.Key) == "a-erased" && r.Value != nil {
			t.Errorf("a consent record of the erased device was written: %s", r.Value)
		}
	}
}
