package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestErasureSuppresses runs the collector (with its admin server) and the
// enricher in-process: a subject erased through the privacy admin API is
// suppressed at once. Its events sent after the 202 never reach the clean
// topic and count as suppressed, another subject's events flow as before,
// and privacy.consent holds the erased subject's tombstone.
func TestErasureSuppresses(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 2*time.Minute)
	run := testenv.Name(t, "erase")
	raw, clean, rawDLQ, export := "events.raw."+run, "events.clean."+run, "events.dlq.raw."+run, "events.export."+run
	consent, erasures := "privacy.consent."+run, "privacy.erasures."+run
	testenv.DeleteTopicsAfter(t, brokers, raw, clean, rawDLQ, export, consent, erasures)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	// The shipped configs, pointed at this run's topics, with the dev
	// operator of configs/collector.yaml switched on.
	t.Setenv("ENRICHER_PSEUDONYM_KEY_FILE", "../configs/dev-pseudonym.key")
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_KEY_FILE", "../configs/dev-export.key")
	t.Setenv("COLLECTOR_PRIVACY_PSEUDONYM_KEY_FILE", "../configs/dev-pseudonym.key")
	ccfg := ingest.Default()
	load(t, "../configs/collector.yaml", "COLLECTOR", &ccfg)
	ccfg.Kafka.Brokers, ccfg.HTTP.Listen, ccfg.Admin.Listen = brokers, "127.0.0.1:0", "127.0.0.1:0"
	ccfg.Topics.Raw.Name, ccfg.Topics.Consent.Name, ccfg.Topics.Erasures.Name = raw, consent, erasures
	ccfg.Privacy.Operators = []ingest.Operator{{Name: "dev", TokenFile: "../configs/dev-operator.token"}}
	if err := ccfg.Validate(); err != nil { // reads the token file
		t.Fatal(err)
	}

	ecfg := pipeline.Default()
	load(t, "../configs/enricher.yaml", "ENRICHER", &ecfg)
	ecfg.Kafka.Brokers, ecfg.GroupID, ecfg.TransactionalID = brokers, "enricher-"+run, "enricher-"+run
	ecfg.Admin.Listen = "127.0.0.1:0"
	ecfg.Topics.Raw.Name, ecfg.Topics.Clean.Name, ecfg.Topics.DLQ.Name = raw, clean, rawDLQ
	// The enricher reads the collector's consent and erasure topics.
	ecfg.Topics.Consent.Name, ecfg.Topics.Erasures.Name, ecfg.Export.Topic.Name = ccfg.Topics.Consent.Name, ccfg.Topics.Erasures.Name, export
	isolatePrivacy(t, brokers, run, &ccfg, &ecfg)

	enricherReg := prometheus.NewRegistry()
	startOn(t, ctx, enricherReg, func(reg prometheus.Registerer) (obs.Component, error) { return pipeline.New(ecfg, reg, log) })
	collectorReg := prometheus.NewRegistry()
	collector := startOn(t, ctx, collectorReg, func(reg prometheus.Registerer) (obs.Component, error) { return ingest.New(ccfg, reg, log) }).(*ingest.Server)
	// The collector's admin server, as collector/main.go wires it.
	admin := obs.NewAdmin(ccfg.Admin, collectorReg, log, map[string]obs.Check{"kafka": collector.Ready})
	for pattern, h := range collector.AdminRoutes() {
		admin.Handle(pattern, h)
	}
	if err := admin.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Shutdown(context.Background()) })

	erased := subject{userID: "erased-user-" + run, anonymousID: "erased-anon-" + run}
	kept := subject{userID: "kept-user-" + run, anonymousID: "kept-anon-" + run}
	base := "http://" + collector.Addr()
	for _, s := range []subject{erased, kept} {
		update := map[string]any{"userId": s.userID, "purposes": map[string]bool{"analytics": true},
			"timestamp": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)}
		if resp := post(t, base+"/v1/consent", update); !resp.Success {
			t.Fatalf("consent for %s: %+v", s.userID, resp)
		}
	}

	// The erasure, through the admin port.
	token, err := os.ReadFile("../configs/dev-operator.token")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"userId": erased.userID, "anonymousId": erased.anonymousID, "reason": "account_cancelled"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+admin.Addr()+"/v1/privacy/erasures", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var accepted struct {
		RequestID string `json:"requestId"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(answer, &accepted) != nil || accepted.RequestID == "" {
		t.Fatalf("erasure: %d %s, want 202 with a requestId", resp.StatusCode, answer)
	}

	// Then both subjects send events, interleaved in one batch; the erased
	// subject's include one sent under its anonymousId only.
	const perSubject = 6
	var batch []map[string]any
	keptIDs := map[string]bool{}
	for i := range perSubject {
		for _, s := range []subject{erased, kept} {
			id := fmt.Sprintf("%s-%d", s.userID, i)
			ev := map[string]any{"type": "track", "event": "Product Viewed", "messageId": id, "userId": s.userID, "anonymousId": s.anonymousID,
				"timestamp": time.Now().UTC().Format(time.RFC3339Nano)}
			if s == erased && i == 0 {
				delete(ev, "userId")
			}
			if s == kept {
				keptIDs[id] = true
			}
			batch = append(batch, ev)
		}
	}
	if resp := post(t, base+"/v1/batch", map[string]any{"batch": batch}); !resp.Success || len(resp.Rejected) != 0 {
		t.Fatalf("batch: %+v", resp)
	}

	// The enricher judges the whole batch in one transaction or retries it:
	// wait for the kept events, then the suppressed count must be complete.
	var cleanIDs []string
	for deadline := time.Now().Add(60 * time.Second); ; {
		cleanIDs = cleanIDs[:0]
		for _, r := range testenv.ReadAll(t, ctx, brokers, clean) {
			var ev struct {
				MessageID string `json:"messageId"`
			}
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatalf("clean record: %v", err)
			}
			cleanIDs = append(cleanIDs, ev.MessageID)
		}
		suppressed := counterValue(t, enricherReg, "enricher_events_dropped_total", "reason", "suppressed")
		if len(cleanIDs) >= perSubject && suppressed >= perSubject {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the clean topic holds %d events and %v were suppressed, want %d each", len(cleanIDs), suppressed, perSubject)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(cleanIDs) != perSubject {
		t.Errorf("clean topic holds %d events, want the %d of the kept subject: %q", len(cleanIDs), perSubject, cleanIDs)
	}
	for _, id := range cleanIDs {
		if !keptIDs[id] {
			t.Errorf("clean topic holds %s, not an event of the kept subject", id)
		}
	}
	if got := counterValue(t, enricherReg, "enricher_events_dropped_total", "reason", "suppressed"); got != perSubject {
		t.Errorf(`enricher_events_dropped_total{reason="suppressed"} = %v, want %d`, got, perSubject)
	}
	if got := counterValue(t, collectorReg, "privacy_erasure_requests_total", "reason", "account_cancelled"); got != 1 {
		t.Errorf(`privacy_erasure_requests_total{reason="account_cancelled"} = %v, want 1`, got)
	}

	// privacy.consent: the erased subject's latest record is a tombstone,
	// the kept subject's its consent state.
	latest := map[string][]byte{}
	seen := map[string]bool{}
	for _, r := range testenv.ReadAll(t, ctx, brokers, consent) {
		latest[string(r.Key)], seen[string(r.Key)] = r.Value, true
	}
	for _, key := range []string{erased.userID, erased.anonymousID} {
		if !seen[key] || latest[key] != nil {
			t.Errorf("privacy.consent for %s: seen %v, latest %q; want a tombstone", key, seen[key], latest[key])
		}
	}
	if latest[kept.userID] == nil {
		t.Errorf("privacy.consent lost the kept subject's consent")
	}
	// privacy.erasures: one record per identifier, keyed by it, never null.
	n := 0
	for _, r := range testenv.ReadAll(t, ctx, brokers, erasures) {
		var rec event.ErasureRecord
		if r.Value == nil || json.Unmarshal(r.Value, &rec) != nil || rec.RequestID != accepted.RequestID || rec.Operator != "dev" {
			t.Errorf("erasure record %q = %s", r.Key, r.Value)
		}
		n++
	}
	if n != 2 {
		t.Errorf("privacy.erasures holds %d records, want 2", n)
	}
}

// startOn builds a component on reg, starts it, and shuts it down when the
// test ends.
func startOn(t *testing.T, ctx context.Context, reg *prometheus.Registry, build func(prometheus.Registerer) (obs.Component, error)) obs.Component {
	t.Helper()
	c, err := build(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return c
}

// counterValue is the value of the counter name{label=value} in g (of the
// counter name when label is empty), 0 if absent.
func counterValue(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
