package pipeline

// Judging an event by consent, and the consent it carries written back to
// privacy.consent.

import (
	"encoding/json"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// judge applies the consent rules to one event, by the consent in force
// at its time and at its receipt. Consent the event carries updates the
// store first, so it counts for this event and the subject's next ones,
// and is written to privacy.consent with the batch (it.consent), so a
// restart, a rebalance or another instance sees it too.
func (p *Pipeline) judge(it *item) policy.Decision {
	in, ev := it.in, &it.in.Env.Event
	suppressed := p.store.SuppressedSubject(it.user) || p.store.SuppressedSubject(it.anon)
	// A minor's linked devices are a minor's.
	var linked consentstore.Subject
	if ev.AnonymousID != "" {
		linked = p.store.Subject(consentstore.KindUser, p.notifier.links.Owner(ev.AnonymousID))
	}
	judge := func(suppressed bool) policy.Decision {
		return p.rules.Judge(in, p.store.InForce(in.At, it.user, it.anon, linked), p.store.InForce(in.Env.ReceivedAt, it.user, it.anon, linked), suppressed)
	}
	if _, _, ok := ev.Link(); ok {
		it.linkStands = judge(false).Drop == ""
	}
	if carried := p.rules.Carried(in); carried != nil && !suppressed {
		var deviceRefused bool
		it.consent, deviceRefused = p.recordCarried(in, carried)
		it.carriedRefused = carried.Refused != 0 || deviceRefused
	}
	d := judge(suppressed)
	// A kept event is no minor's (InForce makes it one): only a dropped
	// one costs the lookups.
	if d.Drop != "" && !suppressed && ev.AnonymousID != "" && p.unguardedMinor(it.user, in) {
		// No link is written from a minor's event (it is never kept): the
		// device of any event of a minor's is marked a minor's instead, so
		// its anonymous events are a minor's too, whatever else dropped
		// this one.
		it.consent = append(it.consent, p.markMinorDevice(in)...)
	}
	return d
}

// recordCarried applies consent carried in an event to the store, under
// the identifiers its source may speak for, and returns the
// privacy.consent records of those whose consent it changed, and whether
// the device's change was refused (consentstore's KeyTaken).
func (p *Pipeline) recordCarried(in *policy.Parsed, u *policy.CarriedUpdate) (out []*kgo.Record, deviceRefused bool) {
	env := &in.Env
	at := policy.CarriedAt(in)
	for _, c := range [2]struct {
		id   string
		kind consentstore.Kind
		ch   policy.Carried
	}{{env.Event.UserID, consentstore.KindUser, u.User}, {env.Event.AnonymousID, consentstore.KindAnonymous, u.Anonymous}} {
		if c.id == "" || c.ch.Named == 0 {
			continue
		}
		if c.kind == consentstore.KindAnonymous && p.store.KeyTaken(c.id) {
			// Unwritable, so not applied either: what a restart would not
			// know must not count now. The device has no consent of its own.
			deviceRefused = true
			continue
		}
		asOf := p.recordTime(c.kind, c.id, env.ReceivedAt)
		before := p.store.At(c.kind, c.id, asOf)
		if c.kind == consentstore.KindUser {
			if c.ch = u.ForUser(p.store.At(c.kind, c.id, at).Known); c.ch.Named == 0 {
				continue
			}
		}
		p.store.ApplyCarried(c.kind, c.id, at, c.ch)
		if after := p.store.At(c.kind, c.id, asOf); after != before {
			out = append(out, p.consentRecord(c.id, c.kind, after, asOf, env))
		}
	}
	return out, deviceRefused
}

// unguardedMinor reports whether the (hashed) userId's consent says minor
// without guardian consent at the event's time or at its receipt.
func (p *Pipeline) unguardedMinor(user consentstore.Subject, in *policy.Parsed) bool {
	for _, t := range [2]time.Time{in.At, in.Env.ReceivedAt} {
		if c := p.store.InForce(t, user, consentstore.Subject{}, consentstore.Subject{}); c.Known && c.Minor && !c.GuardianConsent {
			return true
		}
	}
	return false
}

// markMinorDevice records that the device of a minor's identify is a
// minor's (without guardian consent: the minor's event was dropped for
// the lack of it), unless the store says so already.
func (p *Pipeline) markMinorDevice(in *policy.Parsed) []*kgo.Record {
	env := &in.Env
	device := env.Event.AnonymousID
	if p.store.KeyTaken(device) {
		return nil // it has no consent of its own to be kept by (recordCarried)
	}
	asOf := p.recordTime(consentstore.KindAnonymous, device, env.ReceivedAt)
	c := p.store.At(consentstore.KindAnonymous, device, asOf)
	if c.Known && c.Minor && !c.GuardianConsent {
		return nil
	}
	c.Known, c.Minor, c.GuardianConsent = true, true, false
	p.store.Apply(consentstore.KindAnonymous, device, asOf, c)
	return []*kgo.Record{p.consentRecord(device, consentstore.KindAnonymous, c, asOf, env)}
}

// recordTime is when a privacy.consent record the enricher writes for a
// subject takes effect: the event's receipt, or the subject's latest
// change if later. Such a record states the whole consent in force then,
// and compaction keeps only the latest record written, so it must not
// predate (and so take back) a change already recorded.
func (p *Pipeline) recordTime(kind consentstore.Kind, id string, receivedAt time.Time) time.Time {
	if _, latest := p.store.Latest(kind, id); latest.After(receivedAt) {
		return latest
	}
	return receivedAt
}

// consentRecord is the privacy.consent record of consent c of subject id
// (an identifier of kind) from asOf on, learnt from an event of env.
func (p *Pipeline) consentRecord(id string, kind consentstore.Kind, c policy.Consent, asOf time.Time, env *event.Envelope) *kgo.Record {
	st := event.ConsentState{SchemaVersion: event.SchemaVersion, Subject: id, Purposes: make(map[string]bool, len(event.Purposes)),
		CrossBorder: c.CrossBorder, Minor: c.Minor, GuardianConsent: c.GuardianConsent,
		UpdatedAt: asOf.UTC(), ReceivedAt: env.ReceivedAt.UTC(), SourceID: env.SourceID, Region: env.Region, Authority: event.AuthorityEvent}
	if kind == consentstore.KindUser {
		st.UserID = id
	} else {
		st.AnonymousID = id
	}
	for i, name := range event.Purposes {
		st.Purposes[name] = c.Purposes&(1<<i) != 0
	}
	value, _ := json.Marshal(st)
	return &kgo.Record{Topic: p.cfg.Topics.Consent.Name, Key: []byte(id), Value: value}
}
