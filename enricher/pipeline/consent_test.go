package pipeline

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/kafkax/dlqtest"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestConsentDecisions runs the enricher against real consent and erasure
// topics: every drop reason, consent ordering, a default grant, export with
// its own key, and the gate. Consent is produced just before the events,
// with no pause: the store must catch up before it judges them.
func TestConsentDecisions(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 2*time.Minute)
	cfg := testConfig(brokers)
	p := startIsolated(t, ctx, brokers, &cfg)

	now := time.Now().UTC()
	consent := func(subject string, at time.Time, u event.ConsentUpdate) *kgo.Record {
		u.UserID, u.Timestamp = subject, at.Format(time.RFC3339Nano)
		v, _ := json.Marshal(u.State(now, "app", "cn"))
		return &kgo.Record{Topic: cfg.Topics.Consent.Name, Key: []byte(subject), Value: v}
	}
	analytics := map[string]bool{"analytics": true}
	yes := true
	testenv.Produce(t, ctx, brokers,
		consent("u-granted", now.Add(-time.Hour), event.ConsentUpdate{Purposes: analytics, CrossBorder: true}),
		consent("u-dnt", now.Add(-time.Hour), event.ConsentUpdate{Purposes: analytics}),
		consent("u-minor", now.Add(-time.Hour), event.ConsentUpdate{Purposes: analytics, CrossBorder: true, Minor: &yes}),
		consent("u-gpc", now.Add(-time.Hour), event.ConsentUpdate{Purposes: map[string]bool{"analytics": true, "third_party_sharing": true}, CrossBorder: true}),
		// The withdrawal is recorded before the grant that preceded it.
		consent("u-withdraw", now.Add(-time.Minute), event.ConsentUpdate{Purposes: map[string]bool{}}),
		consent("u-withdraw", now.Add(-2*time.Hour), event.ConsentUpdate{Purposes: analytics}),
		consent("u-erased", now.Add(-time.Hour), event.ConsentUpdate{Purposes: analytics}),
	)
	testenv.Produce(t, ctx, brokers, erasure(cfg, "u-erased", event.SubjectUserID)...)
	// Events are received a minute after they happen, unless that is
	// later than now: received says when.
	received := func(at time.Time) time.Time {
		if r := at.Add(time.Minute); r.Before(now) {
			return r
		}
		return now
	}
	ev := func(id, source, user string, at time.Time, dnt bool, props string) *kgo.Record {
		e := event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: id, ReceivedAt: received(at), SourceID: source, Region: "cn",
			Signals: event.Signals{DNT: dnt, GPC: user == "u-gpc", IP: "1.2.4.8", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36"},
			Event: event.Event{Type: "track", Event: "Viewed", UserID: user, AnonymousID: "anon-" + user,
				Timestamp: at.Format(time.RFC3339Nano), Context: json.RawMessage(`{"device":{"id":"device-` + user + `"}}`)}}
		if props != "" {
			e.Event.Properties = json.RawMessage(props)
		}
		v, _ := json.Marshal(e)
		return &kgo.Record{Topic: cfg.Topics.Raw.Name, Key: []byte("anon-" + user), Value: v}
	}
	before := now.Add(-30 * time.Minute)
	testenv.Produce(t, ctx, brokers,
		ev("e-granted", "app", "u-granted", before, false, `{"price":9.5,"coupon":"SPRING","buyer@example.com":true,"note":7}`),
		ev("e-none", "app", "u-none", before, false, ""),
		ev("e-dnt", "app", "u-dnt", before, true, ""),
		ev("e-minor", "app", "u-minor", before, false, ""),
		ev("e-before-withdrawal", "app", "u-withdraw", now.Add(-90*time.Minute), false, ""),
		ev("e-after-withdrawal", "app", "u-withdraw", now.Add(-30*time.Second), false, ""),
		// Stamped before the withdrawal, received after it: not kept.
		backdated(ev("e-backdated", "app", "u-withdraw", now.Add(-90*time.Minute), false, ""), now),
		// GPC: no third-party sharing, nothing abroad, whatever consent says.
		ev("e-gpc", "app", "u-gpc", before, false, ""),
		ev("e-erased", "app", "u-erased", before, false, ""),
		ev("e-leak", "app", "u-granted", before, false, `{"note":"ticket from u-granted about anon-u-granted"}`),
		ev("e-default", "web", "u-unknown", before, false, ""),
	)

	clean := map[string]event.Clean{}
	for _, r := range testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Clean.Name, 4) {
		c, err := event.DecodeClean(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		clean[c.MessageID] = c
	}
	for _, id := range []string{"e-granted", "e-before-withdrawal", "e-leak", "e-default"} {
		if c, ok := clean[id]; !ok || !slices.Equal(c.Purposes, []string{"analytics"}) {
			t.Errorf("clean %s = %+v, want kept for [analytics]", id, c)
		}
	}
	exported := testenv.ReadTopic(t, ctx, brokers, cfg.Export.Topic.Name, 1)
	x, err := event.DecodeClean(exported[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	in := clean["e-granted"]
	switch {
	case x.MessageID != exportPseudonym(t, cfg, policy.KindMessage, "e-granted"):
		t.Errorf("exported %q, want only e-granted, its messageId under the export key", x.MessageID)
	case !strings.HasPrefix(x.Subject, "x1.") || !strings.HasPrefix(in.Subject, "t1.") || string(exported[0].Key) != x.Subject:
		t.Errorf("export subject %q (key %q), clean subject %q: want each under its own key", x.Subject, exported[0].Key, in.Subject)
	case x.DeviceID != "" || in.DeviceID == "" || x.IP != "" || in.IP != "1.2.4.0" || x.Country != "CN" || in.Country != "CN":
		t.Errorf("export %+v / clean %+v: want device id and IP only in region, country in both", x, in)
	case x.Browser != "Chrome" || x.DeviceClass != "desktop":
		t.Errorf("export browser %q class %q, want Chrome desktop", x.Browser, x.DeviceClass)
	case string(x.Properties) != `{"price":9.5}` || string(in.Properties) != `{"coupon":"SPRING","price":9.5}`:
		t.Errorf("export properties %s, clean %s: want the declared public price abroad, the undeclared coupon in region only, the e-mail key and the mistyped note nowhere",
			x.Properties, in.Properties)
	}
	dead := testenv.ReadTopic(t, ctx, brokers, cfg.Topics.DLQ.Name, 1)
	src := dlqtest.Check(t, ctx, brokers, dead[0], []string{"u-granted", "e-leak"})
	if r := kafkax.Header(dead[0], kafkax.HeaderReason); r != "gate_refused" || !strings.Contains(string(src.Value), "e-leak") {
		t.Errorf("dead letter reason %q error %q, want gate_refused pointing at e-leak",
			r, kafkax.Header(dead[0], kafkax.HeaderError))
	}

	for testenv.CommittedTotal(t, ctx, brokers, cfg.GroupID, cfg.Topics.Raw.Name) < 11 {
		if ctx.Err() != nil {
			t.Fatal("enricher did not commit the eleven events")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// What departed from the catalogue, by path, never by value.
	violations := map[string]int{}
	for _, v := range p.violations.report().Violations {
		violations[v.Source+" "+v.Event+" "+v.Path+" "+v.Reason] = v.Count
	}
	want := map[string]int{"app Viewed properties.coupon undeclared_field": 1, "app Viewed properties.[email] personal_key": 1,
		"app Viewed properties.note wrong_type": 1}
	if !maps.Equal(violations, want) {
		t.Errorf("violations %v, want %v", violations, want)
	}
	if got := testutil.ToFloat64(p.violations.metric.WithLabelValues("app", "Viewed", "undeclared_field")); got != 1 {
		t.Errorf("enricher_catalogue_violations_total{app,Viewed,undeclared_field} = %v, want 1", got)
	}
	for reason, want := range map[string]float64{"no_consent": 3, "dnt": 1, "minor": 1, "suppressed": 1, "gate_refused": 1, "gpc": 1} {
		if got := testutil.ToFloat64(p.metrics.dropped.WithLabelValues(reason)); got != want {
			t.Errorf("dropped{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(p.metrics.out.WithLabelValues("export")); got != 1 {
		t.Errorf("out{route=export} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(p.metrics.defaultGrants.WithLabelValues("web")); got != 1 {
		t.Errorf("default grants for web = %v, want 1", got)
	}
	if all := testenv.ReadAll(t, ctx, brokers, cfg.Topics.Clean.Name); len(all) != 4 {
		t.Errorf("clean topic holds %d events, want 4", len(all))
	}
}

// backdated is a raw event record received at receivedAt instead.
func backdated(r *kgo.Record, receivedAt time.Time) *kgo.Record {
	env, err := event.DecodeEnvelope(r.Value)
	if err != nil {
		panic(err)
	}
	env.ReceivedAt = receivedAt
	r.Value, _ = json.Marshal(env)
	return r
}

// exportPseudonym is value's pseudonym under the export key of cfg.
func exportPseudonym(t *testing.T, cfg Config, kind, value string) string {
	t.Helper()
	p, err := policy.NewPseudonymizer(cfg.Export.Pseudonym.KeyID, []byte(cfg.Export.Pseudonym.Key.Reveal()))
	if err != nil {
		t.Fatal(err)
	}
	return p.Pseudonym(kind, value)
}

// TestConsentCarriedInEvent: an event's own consent categories count as an
// update at its time, for it and for the subject's later events.
func TestConsentCarriedInEvent(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	cfg := testConfig(brokers)
	startIsolated(t, ctx, brokers, &cfg)
	now := time.Now().UTC()
	ev := func(id string, at time.Time, ctxJSON string) *kgo.Record {
		v, _ := json.Marshal(event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: id, ReceivedAt: now, SourceID: "app", Region: "cn",
			Event: event.Event{Type: "page", AnonymousID: "anon-carried", Timestamp: at.Format(time.RFC3339Nano), Context: json.RawMessage(ctxJSON)}})
		return &kgo.Record{Topic: cfg.Topics.Raw.Name, Key: []byte("anon-carried"), Value: v}
	}
	testenv.Produce(t, ctx, brokers,
		ev("c-0-before", now.Add(-3*time.Minute), `{}`),
		ev("c-1-grants", now.Add(-2*time.Minute), `{"consent":{"categoryPreferences":{"Analytics":true,"Advertising":false}}}`),
		ev("c-2-after", now.Add(-time.Minute), `{}`),
		ev("c-3-withdraws", now.Add(-30*time.Second), `{"consent":{"categoryPreferences":{"analytics":false}}}`),
	)
	clean := testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Clean.Name, 2)
	var ids []string
	for _, r := range clean {
		c, _ := event.DecodeClean(r.Value)
		ids = append(ids, c.MessageID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"c-1-grants", "c-2-after"}) {
		t.Errorf("clean events %v, want the granting event and the one after it", ids)
	}

	// Each change was written to privacy.consent, whole, stamped when its
	// event was received: the grant, then the withdrawal.
	var states []event.ConsentState
	for _, r := range testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Consent.Name, 2) {
		st, err := event.DecodeConsentState(r.Value)
		if err != nil || string(r.Key) != "anon-carried" {
			t.Fatalf("consent record %s: %s (%v)", r.Key, r.Value, err)
		}
		states = append(states, st)
	}
	if g, w := states[0], states[1]; !g.Purposes["analytics"] || g.Purposes["marketing"] || w.Purposes["analytics"] ||
		g.Authority != event.AuthorityEvent || g.AnonymousID != "anon-carried" || !g.UpdatedAt.Equal(now) {
		t.Errorf("written consent %+v then %+v, want analytics granted then withdrawn, by event, as of receipt", g, w)
	}
}

// TestConsentBehindAnOpenTransaction: another enricher instance has a
// transaction of carried consent open on the consent topic when the
// collector writes a subject's withdrawal to the same partition, then the
// subject's next event comes. A read_committed reader reaches the
// withdrawal only once that transaction ends, and judged by the last
// committed offsets alone the event was kept (found by the e2e test
// TestSeveralInstancesPerStage, with an instance stopped mid-transaction).
func TestConsentBehindAnOpenTransaction(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	cfg := testConfig(brokers)
	startIsolated(t, ctx, brokers, &cfg)
	now := time.Now().UTC()
	const subject = "anon-behind"
	state := func(at time.Time, analytics bool) *kgo.Record {
		v, _ := json.Marshal(event.ConsentState{SchemaVersion: event.SchemaVersion, Subject: subject, AnonymousID: subject,
			Purposes: map[string]bool{"analytics": analytics}, UpdatedAt: at, ReceivedAt: at, SourceID: "app", Region: "cn"})
		return &kgo.Record{Topic: cfg.Topics.Consent.Name, Key: []byte(subject), Value: v}
	}
	testenv.Produce(t, ctx, brokers, state(now.Add(-time.Hour), true))

	other, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(testenv.Name(t, "other-enricher")),
		kgo.TransactionTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := other.ProduceSync(ctx, state(now.Add(-2*time.Minute), true)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The collector's withdrawal, after the open transaction's record on
	// the same partition (same key), then the subject's event and, behind
	// it in the same raw partition, one of a subject with consent.
	testenv.Produce(t, ctx, brokers, state(now.Add(-time.Minute), false))
	ev := func(id, anon string) *kgo.Record {
		v, _ := json.Marshal(event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: id, ReceivedAt: now, SourceID: "web", Region: "cn",
			Event: event.Event{Type: "page", AnonymousID: anon}})
		return &kgo.Record{Topic: cfg.Topics.Raw.Name, Key: []byte(subject), Value: v}
	}
	testenv.Produce(t, ctx, brokers, ev("after-withdrawal", subject), ev("marker", "anon-default")) // web: analytics by default
	time.Sleep(2 * time.Second)
	if err := other.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Clean.Name, 1) // the marker: the event before it is judged
	var ids []string
	for _, r := range testenv.ReadAll(t, ctx, brokers, cfg.Topics.Clean.Name) {
		c, _ := event.DecodeClean(r.Value)
		ids = append(ids, c.MessageID)
	}
	if !slices.Equal(ids, []string{"marker"}) {
		t.Errorf("clean events %v, want the marker only: the event after the withdrawal was judged without it", ids)
	}
}
