package pipeline

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/kafkax/dlqtest"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
)

// erasure is what the collector writes for an erasure of id: its
// suppression record (keyed by its pseudonym under cfg's key) and its
// request (keyed by id).
func erasure(cfg Config, id, kind string) []*kgo.Record {
	keys, err := cfg.Pseudonym.Keyring()
	if err != nil {
		panic(err)
	}
	rec := event.ErasureRecord{SchemaVersion: event.SchemaVersion, RequestID: "req-" + id, Reason: "user_request",
		Operator: "test", RequestedAt: time.Now().UTC(), SubjectKind: kind, KeyCheck: keys.At(time.Now()).Check()}
	v, _ := json.Marshal(rec)
	return append(suppression(cfg, id, rec), &kgo.Record{Topic: cfg.Topics.ErasureRequests.Name, Key: []byte(id), Value: v})
}

// suppression is rec's suppression record of id, keyed as the collector
// keys it.
func suppression(cfg Config, id string, rec event.ErasureRecord) []*kgo.Record {
	keys, err := cfg.Pseudonym.Keyring()
	if err != nil {
		panic(err)
	}
	return consentstore.New(1, keys).SuppressionRecords(cfg.Topics.Erasures.Name, id, rec)
}

// pseudonymOf is the in-region pseudonym of id under cfg's key in
// service: how the suppression list names it.
func pseudonymOf(cfg Config, kind, id string) string {
	keys, err := cfg.Pseudonym.Keyring()
	if err != nil {
		panic(err)
	}
	return keys.At(time.Now()).Pseudonym(kind, id)
}

// rawEvent is an events.raw record of a Segment event of a server source
// (which may send alias), received now.
func rawEvent(cfg Config, e event.Event) *kgo.Record {
	return rawEventAt(cfg, e, time.Now().UTC())
}

// rawEventAt is rawEvent received at receivedAt.
func rawEventAt(cfg Config, e event.Event, receivedAt time.Time) *kgo.Record {
	e.Timestamp = receivedAt.Format(time.RFC3339Nano)
	v, _ := json.Marshal(event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: e.MessageID, ReceivedAt: receivedAt,
		SourceID: "web", Region: "cn", Signals: event.Signals{IP: "1.2.4.8", ServerSource: true}, Event: e})
	return &kgo.Record{Topic: cfg.Topics.Raw.Name, Key: []byte(e.PartitionKey()), Value: v}
}

// TestErasureFollowsLinksAndCrossesBordersAsPseudonyms: identify and alias
// link two devices to a user; erasing the user sends each destination one
// notice with its own pseudonyms of the user and both devices (and no raw
// identifier), suppresses the devices for good, forgets the links and
// writes a receipt. Another user's link is untouched; a bad erasure record
// goes to the DLQ. Devices linked to the user after its erasure, by an
// event or by a link written late, are erased.
func TestErasureFollowsLinksAndCrossesBordersAsPseudonyms(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 2*time.Minute)
	cfg := testConfig(brokers)
	p := startIsolated(t, ctx, brokers, &cfg)

	testenv.Produce(t, ctx, brokers,
		rawEvent(cfg, event.Event{Type: "identify", MessageID: "m-1", UserID: "u-1", AnonymousID: "a-phone"}),
		rawEvent(cfg, event.Event{Type: "alias", MessageID: "m-2", UserID: "u-1", PreviousID: "a-laptop"}),
		rawEvent(cfg, event.Event{Type: "identify", MessageID: "m-3", UserID: "u-2", AnonymousID: "a-other"}),
		rawEvent(cfg, event.Event{Type: "track", Event: "Viewed", MessageID: "m-4", AnonymousID: "a-nolink"}))
	// Committed (counted only then), so the erasure below finds them.
	for testutil.ToFloat64(p.metrics.identityLinks) < 3 {
		if ctx.Err() != nil {
			t.Fatal("identity links not committed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	links := testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Identities.Name, 3)
	linked := map[string]string{}
	for _, r := range links {
		l, err := event.DecodeIdentityLink(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		linked[string(r.Key)] = l.UserID
	}
	if linked["a-phone"] != "u-1" || linked["a-laptop"] != "u-1" || linked["a-other"] != "u-2" || len(linked) != 3 {
		t.Fatalf("identity links %v", linked)
	}

	bad := &kgo.Record{Topic: cfg.Topics.ErasureRequests.Name, Key: []byte("u-bad"), Value: []byte(`{"schemaVersion":1}`)}
	beforeErasure := time.Now().UTC().Add(-time.Second)
	testenv.Produce(t, ctx, brokers, append([]*kgo.Record{bad}, erasure(cfg, "u-1", event.SubjectUserID)...)...)

	for _, d := range []struct {
		name, topic string
		keys        *policy.Keyring
	}{{"cn", cfg.Topics.ErasureNotices.Name, p.clean.Keys()}, {"intl", cfg.Export.ErasureNotices.Name, p.export.Keys()}} {
		recs := testenv.ReadTopic(t, ctx, brokers, d.topic, 1)
		n, err := event.DecodeErasureNotice(recs[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		wantAnon := append(d.keys.Pseudonyms(policy.KindAnonymous, "a-laptop"), d.keys.Pseudonyms(policy.KindAnonymous, "a-phone")...)
		// An alias's previousId may have been a userId: its user pseudonyms
		// too; an identify's anonymousId is one alone.
		wantUsers := slices.Concat(d.keys.Pseudonyms(policy.KindUser, "u-1"), d.keys.Pseudonyms(policy.KindUser, "a-laptop"))
		if n.RequestID != "req-u-1" || n.Destination != d.name || !slices.Equal(n.Users, wantUsers) ||
			!slices.Equal(n.AnonymousIDs, wantAnon) || string(recs[0].Key) != n.Users[0] {
			t.Errorf("%s notice %+v key %s", d.name, n, recs[0].Key)
		}
		for _, raw := range []string{"u-1", "a-phone", "a-laptop"} {
			if strings.Contains(string(recs[0].Value)+string(recs[0].Key), `"`+raw+`"`) {
				t.Errorf("%s notice holds the raw identifier %s: %s", d.name, raw, recs[0].Value)
			}
		}
	}
	if cn, intl := p.clean.Keys().Pseudonyms(policy.KindUser, "u-1"), p.export.Keys().Pseudonyms(policy.KindUser, "u-1"); slices.Equal(cn, intl) {
		t.Error("the export notice uses the in-region pseudonyms")
	}

	// The linked devices joined the suppression list by their pseudonyms
	// (the alias's previousId as both kinds), holding no raw id; their
	// consent records are tombstoned; the links are gone.
	suppressed := map[string]bool{}
	for _, r := range testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Erasures.Name, 5) {
		if rec, err := event.DecodeErasureRecord(r.Value); err == nil && rec.Linked && rec.RequestID == "req-u-1" {
			suppressed[string(r.Key)] = true
		}
		for _, raw := range []string{"u-1", "a-phone", "a-laptop"} {
			if string(r.Key) == raw || strings.Contains(string(r.Value), `"`+raw+`"`) {
				t.Errorf("the suppression list holds the raw identifier %s: %s %s", raw, r.Key, r.Value)
			}
		}
	}
	if !suppressed[pseudonymOf(cfg, policy.KindAnonymous, "a-phone")] || !suppressed[pseudonymOf(cfg, policy.KindAnonymous, "a-laptop")] ||
		!suppressed[pseudonymOf(cfg, policy.KindUser, "a-laptop")] || len(suppressed) != 3 {
		t.Errorf("linked suppression records %v, want a-phone's and a-laptop's (both kinds) pseudonyms", suppressed)
	}
	consentTombstones := map[string]bool{}
	for _, r := range testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Consent.Name, 2) {
		if r.Value == nil {
			consentTombstones[string(r.Key)] = true
		}
	}
	if !consentTombstones["a-phone"] || !consentTombstones["a-laptop"] || len(consentTombstones) != 2 {
		t.Errorf("consent tombstones of %v, want the linked devices a-phone and a-laptop", consentTombstones)
	}
	tombstones := map[string]bool{}
	for _, r := range testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Identities.Name, 5) {
		if r.Value == nil {
			tombstones[string(r.Key)] = true
		}
	}
	if !tombstones["a-phone"] || !tombstones["a-laptop"] || tombstones["a-other"] {
		t.Errorf("identity tombstones %v, want a-phone and a-laptop only", tombstones)
	}
	receipt, err := event.DecodeReceipt(testenv.ReadTopic(t, ctx, brokers, cfg.Topics.Receipts.Name, 1)[0].Value)
	if err != nil || receipt.Stage != event.StageEnricher || receipt.Status != event.StatusNotified ||
		!slices.Equal(receipt.Destinations, []string{"cn", "intl"}) || receipt.LinkedAnonymousIDs != 2 ||
		receipt.Subject != p.clean.Keys().Pseudonyms(policy.KindUser, "u-1")[0] {
		t.Errorf("receipt %+v (%v)", receipt, err)
	}
	dead := testenv.ReadTopic(t, ctx, brokers, cfg.Topics.DLQ.Name, 1)
	if src := dlqtest.Check(t, ctx, brokers, dead[0], []string{"u-bad"}); kafkax.Header(dead[0], kafkax.HeaderReason) != reasonInvalidErasure || string(src.Key) != "u-bad" {
		t.Errorf("dead letter %s headers %+v", dead[0].Value, dead[0].Headers)
	}

	// A device linked to the erased user stays suppressed on its own.
	before := testutil.ToFloat64(p.metrics.dropped.WithLabelValues(string(policy.DropSuppressed)))
	testenv.Produce(t, ctx, brokers, rawEvent(cfg, event.Event{Type: "track", Event: "Viewed", MessageID: "m-5", AnonymousID: "a-phone"}))
	for testutil.ToFloat64(p.metrics.dropped.WithLabelValues(string(policy.DropSuppressed))) == before {
		if ctx.Err() != nil {
			t.Fatal("an event of a device linked to the erased user was not suppressed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := testutil.ToFloat64(p.metrics.erasureKeyMismatches); n != 0 {
		t.Errorf("enricher_erasure_key_mismatches_total = %v, want 0: the collector's key is the enricher's", n)
	}
	if n := testutil.ToFloat64(p.metrics.erasuresNotified); n != 1 {
		t.Errorf("privacy_erasures_notified_total = %v, want 1 (linked records need no notice of their own)", n)
	}

	// A device linked to the erased user by an event received before the
	// erasure but judged after it (an identify still in flight) is erased,
	// not linked: its earlier events go. One that names the erased user
	// only afterwards (a stranger, or a sign-in to a closed account) had
	// no consented event under that user: neither erased nor linked.
	testenv.Produce(t, ctx, brokers,
		rawEvent(cfg, event.Event{Type: "identify", MessageID: "m-7", UserID: "u-1", AnonymousID: "a-stranger"}),
		rawEventAt(cfg, event.Event{Type: "identify", MessageID: "m-6", UserID: "u-1", AnonymousID: "a-tablet"}, beforeErasure))
	var tablet event.ErasureRecord
	for tablet.RequestID == "" {
		for _, r := range testenv.ReadAll(t, ctx, brokers, cfg.Topics.Erasures.Name) {
			if string(r.Key) == pseudonymOf(cfg, policy.KindAnonymous, "a-tablet") {
				tablet, _ = event.DecodeErasureRecord(r.Value)
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no erasure of the device linked to the erased user")
		}
	}
	if tablet.Linked || tablet.Reason != event.ReasonLinkedToErased || tablet.SubjectKind != event.SubjectAnonymousID {
		t.Errorf("erasure of the late device: %+v", tablet)
	}
	var late []event.ErasureNotice
	for _, r := range testenv.ReadTopic(t, ctx, brokers, cfg.Topics.ErasureNotices.Name, 2) {
		if n, err := event.DecodeErasureNotice(r.Value); err == nil && n.RequestID == tablet.RequestID {
			late = append(late, n)
		}
	}
	if len(late) != 1 || !slices.Equal(late[0].AnonymousIDs, p.clean.Keys().Pseudonyms(policy.KindAnonymous, "a-tablet")) {
		t.Errorf("notices of the late device: %+v", late)
	}
	for _, r := range testenv.ReadAll(t, ctx, brokers, cfg.Topics.Identities.Name) {
		if (string(r.Key) == "a-tablet" || string(r.Key) == "a-stranger") && r.Value != nil {
			t.Errorf("%s was linked to the erased user: %s", r.Key, r.Value)
		}
	}
	for _, r := range testenv.ReadAll(t, ctx, brokers, cfg.Topics.Erasures.Name) {
		if string(r.Key) == pseudonymOf(cfg, policy.KindAnonymous, "a-stranger") {
			t.Errorf("a device that named the erased user after its erasure was erased: %s", r.Value)
		}
	}

	// A link judged before the erasure but written after it (its
	// transaction committed late) erases its device when it is read.
	linkAndAwaitErasure(t, ctx, brokers, cfg, "a-watch", "u-1")
}

// linkAndAwaitErasure writes a link of device to user straight to the
// identities topic and waits for the enricher to record the device's own
// erasure (linked_to_erased_user).
func linkAndAwaitErasure(t *testing.T, ctx context.Context, brokers []string, cfg Config, device, user string) {
	t.Helper()
	link, _ := json.Marshal(event.IdentityLink{SchemaVersion: event.SchemaVersion, UserID: user, LinkedAt: time.Now().UTC()})
	testenv.Produce(t, ctx, brokers, &kgo.Record{Topic: cfg.Topics.Identities.Name, Key: []byte(device), Value: link})
	for {
		var rec event.ErasureRecord
		for _, r := range testenv.ReadAll(t, ctx, brokers, cfg.Topics.Erasures.Name) {
			if string(r.Key) == pseudonymOf(cfg, policy.KindAnonymous, device) {
				rec, _ = event.DecodeErasureRecord(r.Value)
			}
		}
		if rec.Reason == event.ReasonLinkedToErased && !rec.Linked {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the link of %s to the erased %s did not erase the device", device, user)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLateLinksAreThoseReadAfterThePass: a link the tail reads after this
// instance passed its user's erasure on is late, its device erased at once;
// one to a user erased but not passed on here (read before the pass, or
// passed by another instance) is unsure, checked again after the grace;
// a device already suppressed, a user not erased and a tombstone are
// neither.
func TestLateLinksAreThoseReadAfterThePass(t *testing.T) {
	p := offlinePipeline(t)
	link := func(device, user string) *kgo.Record {
		v, _ := json.Marshal(event.IdentityLink{SchemaVersion: event.SchemaVersion, UserID: user, LinkedAt: time.Now().UTC()})
		return &kgo.Record{Key: []byte(device), Value: v}
	}
	now := time.Now()
	p.notifier.now = func() time.Time { return now }
	p.store.Suppress(consentstore.KindUser, "u-racing", now) // the store read its erasure; no pass yet
	if _, err := p.notifier.pass("u-passed", event.ErasureRecord{SchemaVersion: event.SchemaVersion, RequestID: "req-u-passed", SubjectKind: event.SubjectUserID}); err != nil {
		t.Fatal(err)
	}
	p.store.Suppress(consentstore.KindUser, "u-passed", now)
	p.store.Suppress(consentstore.KindAnonymous, "d-suppressed", now)
	records := []*kgo.Record{link("d-late", "u-passed"), link("d-racing", "u-racing"), link("d-suppressed", "u-passed"),
		link("d-other", "u-other"), {Key: []byte("d-tombstone")}}
	late, unsure := p.lateLinks(records, now.Add(time.Second))
	if !slices.Equal(late, []linkToErased{{"d-late", "u-passed", true}}) || !slices.Equal(unsure, []linkToErased{{"d-racing", "u-racing", true}}) {
		t.Errorf("late %v, unsure %v; want [d-late], [d-racing]", late, unsure)
	}
	// Once the pass is past keeping, its links are unsure too.
	late, unsure = p.lateLinks(records, now.Add(p.lateLinkGrace()))
	if len(late) != 0 || len(unsure) != 2 {
		t.Errorf("late %v, unsure %v once the pass is past keeping; want none, two", late, unsure)
	}
}

// TestRechecksRunUntilStopped: a recheck runs after its delay; stop drops
// those pending and waits for one running.
func TestRechecksRunUntilStopped(t *testing.T) {
	var r rechecks
	ran := make(chan string, 3)
	r.after(time.Millisecond, func() { ran <- "soon" })
	if got := <-ran; got != "soon" {
		t.Fatalf("ran %s", got)
	}
	release := make(chan struct{})
	r.after(time.Millisecond, func() { ran <- "running"; <-release })
	r.after(time.Hour, func() { ran <- "pending" })
	<-ran // the second is running
	stopped := make(chan struct{})
	go func() { r.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("stop returned while a recheck was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-stopped
	r.after(time.Millisecond, func() { ran <- "after stop" })
	time.Sleep(20 * time.Millisecond)
	if len(ran) != 0 {
		t.Errorf("ran %s", <-ran)
	}
}

// TestLinkToUserErasedElsewhereIsErasedAfterTheGrace: a device linked to a
// user whose erasure no notifier here passed on, and whose device nobody
// suppressed, is erased once the grace is over.
func TestLinkToUserErasedElsewhereIsErasedAfterTheGrace(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	cfg := testConfig(brokers)
	cfg.TransactionTimeout, cfg.Consent.SyncTimeout = time.Second, 500*time.Millisecond // a grace of 2 s
	p := startIsolated(t, ctx, brokers, &cfg)

	// A suppression record without a request: suppressed by the store,
	// never passed on here.
	testenv.Produce(t, ctx, brokers, suppression(cfg, "u-elsewhere", event.ErasureRecord{SchemaVersion: event.SchemaVersion, RequestID: "req-elsewhere",
		Reason: "user_request", Operator: "test", RequestedAt: time.Now().UTC(), SubjectKind: event.SubjectUserID})...)
	for !p.store.Suppressed(consentstore.KindUser, "u-elsewhere") {
		if ctx.Err() != nil {
			t.Fatal("the erasure never reached the store")
		}
		time.Sleep(20 * time.Millisecond)
	}
	linkAndAwaitErasure(t, ctx, brokers, cfg, "a-elsewhere", "u-elsewhere")
}

// TestErasureSuppressesUnderTheEnrichersKeys: a collector whose pseudonym
// key differs from the enricher's (a misconfiguration) writes suppression
// records the enricher cannot match; the notifier's own records, under
// the enricher's keys, suppress the subject all the same. A record under
// a key id the enricher does not hold is counted.
func TestErasureSuppressesUnderTheEnrichersKeys(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	cfg := testConfig(brokers)
	isolate(t, brokers, &cfg)
	reg := prometheus.NewRegistry()
	p, err := New(cfg, reg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}

	collector := cfg
	collector.Pseudonym = Pseudonym{KeyID: cfg.Pseudonym.KeyID, Key: "another-key-0123456789-0123456789-0123456789"}
	records := erasure(collector, "u-mismatch", event.SubjectUserID)
	if string(records[0].Key) == pseudonymOf(cfg, policy.KindUser, "u-mismatch") {
		t.Fatal("the collector's record is keyed as the enricher's: no mismatch to test")
	}
	unknown := suppression(Config{Pseudonym: Pseudonym{KeyID: "gone", Key: "a-key-nobody-holds-0123456789-0123456789"}, Topics: cfg.Topics}, "u-unknown",
		event.ErasureRecord{SchemaVersion: event.SchemaVersion, RequestID: "r", Reason: "user_request", RequestedAt: time.Now().UTC(), SubjectKind: event.SubjectUserID})
	testenv.Produce(t, ctx, brokers, append(records, unknown...)...)
	for !p.store.Suppressed(consentstore.KindUser, "u-mismatch") {
		if ctx.Err() != nil {
			t.Fatal("the subject erased under the collector's mismatched key was never suppressed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := testenv.CounterValue(t, reg, "enricher_consent_records_total", "kind", "erasure_unknown_key"); n < 1 {
		t.Errorf("enricher_consent_records_total{kind=erasure_unknown_key} = %v, want the record under key id gone counted", n)
	}
	if n := testenv.CounterValue(t, reg, "enricher_erasure_key_mismatches_total", "", ""); n != 1 {
		t.Errorf("enricher_erasure_key_mismatches_total = %v, want the collector's request under another key counted", n)
	}
}
