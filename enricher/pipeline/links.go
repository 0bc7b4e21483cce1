package pipeline

// Identity links: the link record of an identify or alias, and the
// erasure of devices linked to users erased before their link was written.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// linkRecord is the privacy.identities record of an identify or alias
// event (or the records of a device erasure), or nil and why not. A link must not be poisoned: it comes only
// from an event that was kept (whatever purpose kept it: links serve
// erasure and export), and would have been without the consent it
// carries itself, and from a source that may assert it
// (policy.MayLink); a client may not move a device already linked to
// another user. A link to an erased userId becomes an erasure of the
// device instead, so the device's earlier events go too, and the link
// (the userId) is never written; but only when the link would have
// stood, from an event received before the erasure was asked for: an
// event naming an erased userId must not erase a device that never had a
// consented event under it.
func (p *Pipeline) linkRecord(it *item) ([]*kgo.Record, string) {
	env := &it.in.Env
	from, user, ok := env.Event.Link()
	aliased := env.Event.Type == "alias"
	switch {
	case !ok:
		return nil, ""
	case !policy.MayLink(env.Event.Type, env.Signals.ServerSource):
		return nil, linkClientAlias
	case it.d.Drop == policy.DropSuppressed:
		if !it.linkStands || p.store.Suppressed(consentstore.KindAnonymous, from) || !p.store.Suppressed(consentstore.KindUser, user) ||
			p.store.SuppressedBefore(consentstore.KindUser, user, env.ReceivedAt) {
			return nil, linkEventDropped
		}
		return p.deviceErasure(from, aliased), ""
	case it.d.Drop != "" || !it.linkStands:
		return nil, linkEventDropped
	case !mayLink(it, user):
		return nil, linkClientRelink
	}
	via := "identify"
	if aliased {
		via = "alias"
	}
	value, _ := json.Marshal(event.IdentityLink{SchemaVersion: event.SchemaVersion, UserID: user, LinkedAt: env.ReceivedAt, Via: via})
	return []*kgo.Record{{Topic: p.cfg.Topics.Identities.Name, Key: []byte(from), Value: value}}, ""
}

// mayLink reports whether an identify or alias that may assert a link may
// link its device to user: a client may not move a device already linked
// to another user.
func mayLink(it *item, user string) bool {
	env := &it.in.Env
	return policy.MayLink(env.Event.Type, env.Signals.ServerSource) &&
		(it.linkOwner == "" || it.linkOwner == user || env.Signals.ServerSource)
}

// deviceErasure is the erasure of a device linked to an erased userId: its
// suppression records and the request the notifier passes on. An alias's
// previousId (aliased) is erased as a userId too.
func (p *Pipeline) deviceErasure(from string, aliased bool) []*kgo.Record {
	rec := event.ErasureRecord{SchemaVersion: event.SchemaVersion, RequestID: "linked-" + newRequestID(),
		Reason: event.ReasonLinkedToErased, Operator: stage, RequestedAt: time.Now().UTC(), SubjectKind: event.SubjectAnonymousID}
	if aliased {
		rec.SubjectKind = event.SubjectPreviousID // it may be a userId
	}
	value, _ := json.Marshal(rec)
	return append(p.store.SuppressionRecords(p.cfg.Topics.Erasures.Name, from, rec),
		&kgo.Record{Topic: p.cfg.Topics.ErasureRequests.Name, Key: []byte(from), Value: value})
}

// eraseLateLinks erases the devices of links written after the notifier
// looked at their userId's links: links judged before the erasure and
// committed after. Those are the links the tail reads after this instance
// passed the erasure on (the notifier waits for the tail to settle before
// it looks, so a link read before then is in the notice already): their
// devices are erased at once.
//
// A link to a user whose erasure this instance has not passed on (read
// before its own notifier looked, or passed on by another instance) is
// checked again after a grace: by then the notifier that passed the
// erasure has suppressed the device, or it never will (it crashed in
// between), and the device is erased here. Erasing it at once would erase
// most such devices twice, under a second request.
func (p *Pipeline) eraseLateLinks(records []*kgo.Record) {
	late, unsure := p.lateLinks(records, time.Now())
	p.eraseDevices(late)
	for _, l := range unsure {
		p.rechecks.after(p.lateLinkGrace(), func() {
			if p.store.Suppressed(consentstore.KindUser, l.user) && !p.store.Suppressed(consentstore.KindAnonymous, l.device) {
				p.eraseDevices([]linkToErased{l})
			}
		})
	}
}

// linkToErased is an identity link whose userId is erased.
type linkToErased struct {
	device, user string
	aliased      bool // the device is an alias's previousId
}

// lateLinks sorts the links among records, read at now, whose userId is
// erased and whose device is not: late ones, to a user this instance
// passed on, and unsure ones.
func (p *Pipeline) lateLinks(records []*kgo.Record, now time.Time) (late, unsure []linkToErased) {
	for _, r := range records {
		if r.Value == nil {
			continue
		}
		link, err := event.DecodeIdentityLink(r.Value)
		l := linkToErased{device: string(r.Key), user: link.UserID, aliased: link.Aliased()}
		switch {
		case err != nil || p.store.Suppressed(consentstore.KindAnonymous, l.device):
		case p.notifier.passed.has(p.store.Subject(consentstore.KindUser, l.user), now):
			late = append(late, l)
		case p.store.Suppressed(consentstore.KindUser, l.user):
			unsure = append(unsure, l)
		}
	}
	return late, unsure
}

// lateLinkGrace is how long an unsure link waits: as long as a passed
// erasure is remembered, the time a notifier takes being far below it.
func (p *Pipeline) lateLinkGrace() time.Duration { return p.notifier.passed.keep }

// eraseDevices records erasures of devices linked to erased users.
func (p *Pipeline) eraseDevices(links []linkToErased) {
	if len(links) == 0 {
		return
	}
	var out []*kgo.Record
	for _, l := range links {
		out = append(out, p.deviceErasure(l.device, l.aliased)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.TransactionTimeout)
	defer cancel()
	if err := p.notifier.client.ProduceSync(ctx, out...).FirstErr(); err != nil {
		p.log.Error("devices linked to erased users not erased; erase them through the privacy API", "devices", len(links), "err", err)
	}
}

// newRequestID is a random id for an erasure the enricher records itself.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return hex.EncodeToString(b[:])
}
