package pipeline

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// raw is an events.raw record of e from a server or client source of the
// test config ("app": no default grant), received at receivedAt.
func raw(e event.Event, server bool, receivedAt time.Time) *kgo.Record {
	if e.Timestamp == "" {
		e.Timestamp = receivedAt.Format(time.RFC3339Nano)
	}
	v, _ := json.Marshal(event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: e.MessageID, ReceivedAt: receivedAt,
		SourceID: "app", Region: "cn", Signals: event.Signals{ServerSource: server}, Event: e})
	return &kgo.Record{Topic: "raw", Key: []byte(e.PartitionKey()), Value: v}
}

// byTopic sorts output records by topic.
func byTopic(out []*kgo.Record) map[string][]*kgo.Record {
	m := map[string][]*kgo.Record{}
	for _, r := range out {
		m[r.Topic] = append(m[r.Topic], r)
	}
	return m
}

func keys(records []*kgo.Record) []string {
	var ks []string
	for _, r := range records {
		ks = append(ks, string(r.Key))
	}
	return ks
}

var analytics = policy.Consent{Known: true, Purposes: policy.Analytics}

// byMessage maps the messageIds of the clean records of out to them.
func byMessage(t *testing.T, out []*kgo.Record, p *Pipeline) map[string]event.Clean {
	t.Helper()
	m := map[string]event.Clean{}
	for _, r := range byTopic(out)[p.cfg.Topics.Clean.Name] {
		c, err := event.DecodeClean(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		m[c.MessageID] = c
	}
	return m
}

// TestIdentityLinksCannotBePoisoned: links come only from kept events and
// from sources that may assert them (alias: server sources only); a link
// to an erased user erases the device only if it would have stood and its
// event was received before the erasure.
func TestIdentityLinksCannotBePoisoned(t *testing.T) {
	p := offlinePipeline(t)
	now := time.Now().UTC()
	for _, device := range []string{"a-victim", "a-late", "a-early", "a-linked", "u-gone"} {
		p.store.Apply(consentstore.KindAnonymous, device, now.Add(-time.Hour), analytics)
	}
	// A device spelt like a userId erased before.
	p.store.Suppress(consentstore.KindUser, "u-gone", now.Add(-time.Hour))
	p.store.Apply(consentstore.KindUser, "u-backend", now.Add(-time.Hour), analytics)
	p.store.Suppress(consentstore.KindUser, "u-erased", now.Add(-time.Minute))
	link, _ := json.Marshal(event.IdentityLink{SchemaVersion: event.SchemaVersion, UserID: "u-owner", LinkedAt: now, Via: "identify"})
	p.notifier.links.Apply(quiet)([]*kgo.Record{{Key: []byte("a-linked"), Value: link}})
	grant := json.RawMessage(`{"consent":{"categoryPreferences":{"analytics":true}}}`)

	out, _, tally := p.process([]*kgo.Record{
		raw(event.Event{Type: "alias", MessageID: "m-1", PreviousID: "a-victim", UserID: "u-attacker"}, false, now),
		raw(event.Event{Type: "alias", MessageID: "m-2", PreviousID: "a-backend", UserID: "u-backend"}, true, now),
		raw(event.Event{Type: "identify", MessageID: "m-3", AnonymousID: "a-unconsented", UserID: "u-someone"}, false, now),
		// Its own carried grant keeps the event, but does not make it link.
		raw(event.Event{Type: "identify", MessageID: "m-3b", AnonymousID: "a-self-granted", UserID: "u-someone", Context: grant}, false, now),
		// A device linked to another user stays with it, whatever a client
		// says: linked before, or earlier in the batch.
		raw(event.Event{Type: "identify", MessageID: "m-3c", AnonymousID: "a-linked", UserID: "u-attacker"}, false, now),
		raw(event.Event{Type: "identify", MessageID: "m-3d", AnonymousID: "a-victim", UserID: "u-victim"}, false, now),
		raw(event.Event{Type: "identify", MessageID: "m-3e", AnonymousID: "a-victim", UserID: "u-attacker"}, false, now),
		raw(event.Event{Type: "identify", MessageID: "m-4", AnonymousID: "a-victim", UserID: "u-victim"}, false, now),
		// Naming an erased user: after its erasure, nothing; before it,
		// the device goes with it; without consent, nothing either.
		raw(event.Event{Type: "identify", MessageID: "m-5", AnonymousID: "a-late", UserID: "u-erased"}, false, now),
		raw(event.Event{Type: "identify", MessageID: "m-6", AnonymousID: "a-early", UserID: "u-erased"}, false, now.Add(-2*time.Minute)),
		raw(event.Event{Type: "identify", MessageID: "m-7", AnonymousID: "a-unconsented-early", UserID: "u-erased"}, false, now.Add(-2*time.Minute)),
		raw(event.Event{Type: "identify", MessageID: "m-8", AnonymousID: "u-gone", UserID: "u-erased"}, false, now.Add(-2*time.Minute)),
	})
	topics := byTopic(out)
	if got := keys(topics[p.cfg.Topics.Identities.Name]); !slices.Equal(got, []string{"a-backend", "a-victim", "a-victim"}) {
		t.Errorf("links from %v, want the server's alias and the kept identifies (to u-victim) only", got)
	}
	requests := topics[p.cfg.Topics.ErasureRequests.Name]
	if got := keys(requests); !slices.Equal(got, []string{"a-early", "u-gone"}) {
		t.Fatalf("devices erased %v, want those whose consented identify was received before the erasure", got)
	}
	// Suppressed by pseudonym, as devices: the userId spelt like one keeps
	// its own record, keyed apart.
	key := p.clean.Keys().At(now)
	erased := topics[p.cfg.Topics.Erasures.Name]
	if got, want := keys(erased), []string{key.Pseudonym(policy.KindAnonymous, "a-early"), key.Pseudonym(policy.KindAnonymous, "u-gone")}; !slices.Equal(got, want) {
		t.Errorf("suppression records keyed %v, want the devices' pseudonyms %v", got, want)
	}
	for i, r := range slices.Concat(erased, requests) {
		if rec, err := event.DecodeErasureRecord(r.Value); err != nil || rec.SubjectKind != event.SubjectAnonymousID || rec.Reason != event.ReasonLinkedToErased {
			t.Errorf("erasure record %d: %+v (%v), want a device linked to an erased user", i, rec, err)
		}
	}
	if tally.linksRefused[linkClientAlias] != 1 || tally.linksRefused[linkClientRelink] != 2 || tally.linksRefused[linkEventDropped] != 4 || tally.links != 3 {
		t.Errorf("links %d, refused %v; want 3, one client alias, two relinks and four dropped events", tally.links, tally.linksRefused)
	}
	if _, ok := byMessage(t, out, p)["m-3b"]; !ok {
		t.Error("the event that granted itself consent is not kept")
	}
}

// TestMinorFollowsLinks: a device linked to a minor's userId is a minor's,
// whatever its own consent says.
func TestMinorFollowsLinks(t *testing.T) {
	p := offlinePipeline(t)
	now := time.Now().UTC()
	p.store.Apply(consentstore.KindUser, "u-child", now.Add(-2*time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics, Minor: true})
	for _, device := range []string{"a-tablet", "a-phone", "a-laptop"} {
		p.store.Apply(consentstore.KindAnonymous, device, now.Add(-time.Hour), analytics)
	}
	link, _ := json.Marshal(event.IdentityLink{SchemaVersion: event.SchemaVersion, UserID: "u-child", LinkedAt: now})
	p.notifier.links.Apply(quiet)([]*kgo.Record{{Key: []byte("a-tablet"), Value: link}})

	// The phone's identify is a minor's, so dropped, and links nothing:
	// the phone is marked a minor's instead.
	out, _, tally := p.process([]*kgo.Record{
		raw(event.Event{Type: "page", MessageID: "m-1", AnonymousID: "a-tablet"}, false, now),
		raw(event.Event{Type: "page", MessageID: "m-2", AnonymousID: "a-laptop"}, false, now),
		raw(event.Event{Type: "identify", MessageID: "m-3", AnonymousID: "a-phone", UserID: "u-child"}, false, now),
		raw(event.Event{Type: "page", MessageID: "m-4", AnonymousID: "a-phone"}, false, now),
	})
	if tally.dropped[string(policy.DropMinor)] != 3 || tally.clean != 1 || tally.links != 0 {
		t.Errorf("dropped %v, kept %d, %d links; want the tablet's and the phone's events dropped as a minor's, the laptop's kept", tally.dropped, tally.clean, tally.links)
	}
	marked := byTopic(out)[p.cfg.Topics.Consent.Name]
	if st, err := event.DecodeConsentState(marked[0].Value); len(marked) != 1 || err != nil || st.AnonymousID != "a-phone" || !st.Minor || !st.Purposes["analytics"] {
		t.Errorf("consent records %v, want the phone marked a minor's, its consent kept", keys(marked))
	}
}

// TestMinorIdentifyMarksItsDeviceWhateverDropsIt: a minor with no
// purposes granted, or with consent recorded after the identify's time,
// has its identify dropped as no_consent: its device is marked all the
// same.
func TestMinorIdentifyMarksItsDeviceWhateverDropsIt(t *testing.T) {
	p := offlinePipeline(t)
	now := time.Now().UTC()
	p.store.Apply(consentstore.KindUser, "u-child", now.Add(-time.Hour), policy.Consent{Known: true, Minor: true})
	p.store.Apply(consentstore.KindAnonymous, "a-pad", now.Add(-time.Hour), analytics)
	out, _, tally := p.process([]*kgo.Record{
		raw(event.Event{Type: "identify", MessageID: "m-1", AnonymousID: "a-pad", UserID: "u-child"}, false, now),
		raw(event.Event{Type: "page", MessageID: "m-2", AnonymousID: "a-pad"}, false, now),
	})
	if tally.clean != 0 || tally.dropped[string(policy.DropMinor)] != 1 || len(byTopic(out)[p.cfg.Topics.Consent.Name]) != 1 {
		t.Errorf("kept %d, dropped %v, %d consent records; want the pad marked a minor's and its page dropped as one", tally.clean, tally.dropped,
			len(byTopic(out)[p.cfg.Topics.Consent.Name]))
	}
}

// TestAnyEventOfAMinorMarksItsDevice: not only an identify: a track of a
// minor's userId from a device marks it too.
func TestAnyEventOfAMinorMarksItsDevice(t *testing.T) {
	p := offlinePipeline(t)
	now := time.Now().UTC()
	p.store.Apply(consentstore.KindUser, "u-child", now.Add(-time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics, Minor: true})
	p.store.Apply(consentstore.KindAnonymous, "a-pad", now.Add(-time.Hour), analytics)
	_, _, tally := p.process([]*kgo.Record{
		raw(event.Event{Type: "track", Event: "E", MessageID: "m-1", AnonymousID: "a-pad", UserID: "u-child"}, false, now),
		raw(event.Event{Type: "page", MessageID: "m-2", AnonymousID: "a-pad"}, false, now),
	})
	if tally.clean != 0 || tally.dropped[string(policy.DropMinor)] != 2 || tally.carriedWritten != 1 {
		t.Errorf("kept %d, dropped %v, %d records written; want the pad marked a minor's and both events dropped as one", tally.clean, tally.dropped, tally.carriedWritten)
	}
}

// TestLinkedUserWithdrawalReachesItsDevices: a device linked to a userId
// is judged within what that userId's consent allows.
func TestLinkedUserWithdrawalReachesItsDevices(t *testing.T) {
	p := offlinePipeline(t)
	now := time.Now().UTC()
	p.store.Apply(consentstore.KindAnonymous, "a-phone", now.Add(-2*time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics | policy.Marketing})
	p.store.Apply(consentstore.KindUser, "u-1", now.Add(-time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics})
	link, _ := json.Marshal(event.IdentityLink{SchemaVersion: event.SchemaVersion, UserID: "u-1", LinkedAt: now, Via: "identify"})
	p.notifier.links.Apply(quiet)([]*kgo.Record{{Key: []byte("a-phone"), Value: link}})
	out, _, _ := p.process([]*kgo.Record{raw(event.Event{Type: "page", MessageID: "m-1", AnonymousID: "a-phone"}, false, now)})
	if c, ok := byMessage(t, out, p)["m-1"]; !ok || !slices.Equal(c.Purposes, []string{"analytics"}) {
		t.Errorf("the linked phone's event: %+v (kept %v), want kept for analytics alone", c.Purposes, ok)
	}
}

// TestCarriedConsentIsWrittenWithinWhatItsSourceMaySay: a client's event
// withdraws for its userId and grants only for its own anonymousId; a
// grant for a userId with no device is ignored and counted. Each change
// is written to privacy.consent, whole.
func TestCarriedConsentIsWrittenWithinWhatItsSourceMaySay(t *testing.T) {
	p := offlinePipeline(t)
	now := time.Now().UTC()
	p.store.Apply(consentstore.KindUser, "u-1", now.Add(-time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics | policy.Marketing, Minor: true, GuardianConsent: true})
	prefs := func(m map[string]bool) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"consent": map[string]any{"categoryPreferences": m}})
		return b
	}
	// u-3's backend recorded consent stamped after the event's receipt: a
	// record written now must not be stamped before it, or compaction,
	// which keeps the last written, would take it back.
	p.store.Apply(consentstore.KindUser, "u-3", now.Add(5*time.Minute), policy.Consent{Known: true, Purposes: policy.Analytics, Minor: true})
	out, _, tally := p.process([]*kgo.Record{
		raw(event.Event{Type: "track", Event: "E", MessageID: "m-1", UserID: "u-1", AnonymousID: "a-1",
			Context: prefs(map[string]bool{"marketing": false, "personalization": true})}, false, now),
		raw(event.Event{Type: "track", Event: "E", MessageID: "m-2", UserID: "u-2",
			Context: prefs(map[string]bool{"analytics": true})}, false, now),
		raw(event.Event{Type: "track", Event: "E", MessageID: "m-3", UserID: "u-3",
			Context: prefs(map[string]bool{"marketing": true})}, true, now),
	})
	states := map[string]event.ConsentState{}
	for _, r := range byTopic(out)[p.cfg.Topics.Consent.Name] {
		st, err := event.DecodeConsentState(r.Value)
		if err != nil || st.Subject != string(r.Key) || st.Authority != event.AuthorityEvent {
			t.Fatalf("consent record %s: %+v (%v)", r.Key, st, err)
		}
		states[st.Subject] = st
	}
	if len(states) != 2 {
		t.Fatalf("consent records for %v, want u-1 and a-1", slices.Collect(func(yield func(string) bool) {
			for k := range states {
				yield(k)
			}
		}))
	}
	if u := states["u-1"]; u.Purposes["marketing"] || u.Purposes["personalization"] || !u.Purposes["analytics"] || !u.Minor || !u.GuardianConsent {
		t.Errorf("u-1 %+v: want marketing withdrawn, personalization not granted, the rest kept", u)
	}
	if a := states["a-1"]; !a.Purposes["personalization"] || a.Purposes["marketing"] || a.AnonymousID != "a-1" {
		t.Errorf("a-1 %+v: want personalization granted on the device", a)
	}
	if tally.carriedRefused != 1 || tally.carriedWritten != 2 || tally.dropped[string(policy.DropNoConsent)] != 1 {
		t.Errorf("carried refused %d, written %d, dropped %v; want u-2's grant refused and its event dropped", tally.carriedRefused, tally.carriedWritten, tally.dropped)
	}

	// A device spelt like u-1, whose consent is recorded: no record could
	// be written for it under the key u-1's record has, so it gets no
	// consent at all (a restart would know none), and its grant is refused.
	out2, _, tally2 := p.process([]*kgo.Record{raw(event.Event{Type: "page", MessageID: "m-4", AnonymousID: "u-1",
		Context: prefs(map[string]bool{"analytics": true})}, false, now)})
	if got := keys(byTopic(out2)[p.cfg.Topics.Consent.Name]); len(got) != 0 {
		t.Errorf("consent records %v for a device spelt like a user with consent, want none", got)
	}
	if _, ok := byMessage(t, out2, p)["m-4"]; ok || tally2.carriedRefused != 1 {
		t.Errorf("the device's event kept %v, grants refused %d; want dropped, its grant refused", ok, tally2.carriedRefused)
	}

	// Had the batch aborted, its records are written by the next one.
	p.keepUnwritten(out)
	if got := keys(p.unwritten); !slices.Equal(got, []string{"u-1", "a-1"}) {
		t.Errorf("kept for the next transaction %v, want the consent records", got)
	}
	for _, r := range p.unwritten {
		if slices.Contains(out, r) {
			t.Error("a record produced once is kept, not a copy")
		}
	}
}
