package policy

import (
	"fmt"

	"github.com/consentflow/consentflow/internal/event"
)

// Who may say what. A source is a client or a server: a client's write key
// ships in web pages and apps, so anyone who reads the page may use it; a
// server's is a secret of a first-party backend. The rules:
//
//   - a server source may record any consent for any subject;
//   - a client source may record consent for the device it sends events
//     as (an anonymousId): grant or withdraw purposes, set minor, withdraw
//     cross-border transfer or guardian consent;
//   - anyone may withdraw: a client may record, for a userId too, any
//     state that grants nothing the subject's consent in force does not;
//   - a client may grant a userId's purposes, cross-border transfer or
//     guardian consent, or clear minor, only with a consent token that the
//     first party's backend signed for that subject and that vouches for
//     exactly that (Voucher);
//   - minor is sticky: an update that leaves it out keeps the previous
//     value.
//
// The same rules govern consent carried in events (Carry).

// ConsentWrite is a consent update as a source asks for it.
type ConsentWrite struct {
	// UserID, else AnonymousID, is the subject the update is for.
	UserID, AnonymousID string
	Purposes            Purposes
	CrossBorder         bool
	// Minor nil keeps the subject's previous value.
	Minor           *bool
	GuardianConsent bool
}

// Voucher is what a verified consent token vouches for: a subject (its
// userId, its anonymousId or both; an empty one is not bound) and the
// grants the backend stands behind.
type Voucher struct {
	UserID, AnonymousID string
	Purposes            Purposes
	CrossBorder         bool
	GuardianConsent     bool
	// Minor false vouches the subject is no minor (it may clear the flag);
	// nil says nothing.
	Minor *bool
	// Stale is true for a token issued before the subject's consent last
	// changed: it vouches for nothing, so a withdrawal recorded since
	// cannot be undone by replaying it.
	Stale bool
}

// RefusalReason is why a consent write was refused, as metrics label it.
type RefusalReason string

// The reasons a consent write is refused.
const (
	// RefusedUserGrant: a client granted a userId's purpose.
	RefusedUserGrant RefusalReason = "user_grant"
	// RefusedCrossBorder: a client granted cross-border transfer.
	RefusedCrossBorder RefusalReason = "cross_border"
	// RefusedGuardianConsent: a client set guardian consent.
	RefusedGuardianConsent RefusalReason = "guardian_consent"
	// RefusedMinorCleared: a client cleared minor.
	RefusedMinorCleared RefusalReason = "minor_cleared"
	// RefusedTokenSubject: the consent token is for another subject.
	RefusedTokenSubject RefusalReason = "token_subject"
)

// RefusalReasons lists every RefusalReason, for metrics.
var RefusalReasons = []RefusalReason{RefusedUserGrant, RefusedCrossBorder, RefusedGuardianConsent, RefusedMinorCleared, RefusedTokenSubject}

// Refusal is a consent write its source may not make: Field names the
// update's field (as in the request body), Reason the rule.
type Refusal struct {
	Field  string
	Reason RefusalReason
	Msg    string
}

func (r *Refusal) Error() string { return r.Field + ": " + r.Msg }

// howToGrant ends every refusal of a grant: what would have been allowed.
const howToGrant = "send it from a server source, or with a consent token the backend signed for this subject"

// AuthorizeConsent decides whether a source may write w: server says it
// is a server source's, v is what a verified consent token vouches for
// (nil: none), prev the subject's consent in force now. It returns the
// consent the record is to state (w, with minor kept from prev when w
// leaves it out), or a *Refusal naming the first field the source may not
// set.
func AuthorizeConsent(w ConsentWrite, server bool, v *Voucher, prev Consent) (Consent, error) {
	c := Consent{Known: true, Purposes: w.Purposes, CrossBorder: w.CrossBorder, Minor: prev.Minor, GuardianConsent: w.GuardianConsent}
	if w.Minor != nil {
		c.Minor = *w.Minor
	}
	if server {
		return c, nil
	}
	how := howToGrant
	if v != nil {
		if err := v.covers(w); err != nil {
			return Consent{}, err
		}
	}
	switch {
	case v == nil:
		v = &Voucher{}
	case v.Stale:
		v, how = &Voucher{}, "the consent token was issued before the subject's consent last changed: ask the backend for a new one"
	}
	if newly := c.Purposes &^ prev.Purposes &^ v.Purposes; w.UserID != "" && newly != 0 {
		name := newly.Names()[0]
		return Consent{}, &Refusal{Field: "purposes." + name, Reason: RefusedUserGrant,
			Msg: fmt.Sprintf("a client source may grant purposes only for its own anonymousId, not %s for a userId: %s", name, how)}
	}
	if c.CrossBorder && !prev.CrossBorder && !v.CrossBorder {
		return Consent{}, &Refusal{Field: "crossBorder", Reason: RefusedCrossBorder,
			Msg: "a client source may not grant cross-border transfer: " + how}
	}
	if c.GuardianConsent && !prev.GuardianConsent && !v.GuardianConsent {
		return Consent{}, &Refusal{Field: "guardianConsent", Reason: RefusedGuardianConsent,
			Msg: "a client source may not give guardian consent: " + how}
	}
	if prev.Minor && !c.Minor && (v.Minor == nil || *v.Minor) {
		return Consent{}, &Refusal{Field: "minor", Reason: RefusedMinorCleared,
			Msg: "a client source may not clear minor (leave it out to keep it): " + how}
	}
	return c, nil
}

// covers checks that v is for w's subject: a token names the identifiers
// it binds, and a grant for a userId needs a token that names it.
func (v *Voucher) covers(w ConsentWrite) error {
	switch {
	case v.UserID != "" && v.UserID != w.UserID:
		return &Refusal{Field: "consentToken", Reason: RefusedTokenSubject, Msg: "the token is for another userId than the update's"}
	case v.AnonymousID != "" && v.AnonymousID != w.AnonymousID:
		return &Refusal{Field: "consentToken", Reason: RefusedTokenSubject, Msg: "the token is for another anonymousId than the update's"}
	case w.UserID != "" && v.UserID == "":
		return &Refusal{Field: "consentToken", Reason: RefusedTokenSubject, Msg: "the token names no userId, and the update is for one"}
	}
	return nil
}

// WriteOf is the consent write a POST /v1/consent body asks for.
func WriteOf(u event.ConsentUpdate) ConsentWrite {
	return ConsentWrite{UserID: u.UserID, AnonymousID: u.AnonymousID, Purposes: PurposesOf(u.Purposes),
		CrossBorder: u.CrossBorder, Minor: u.Minor, GuardianConsent: u.GuardianConsent}
}

// MayLink reports whether an event of type eventType (identify or alias)
// from a server or client source may assert an identity link. An identify
// links the anonymousId it is sent as to its userId: a client speaks for
// its own device. An alias links any previousId to any userId, so a client
// could tie a stranger's data to itself: only a server source may.
func MayLink(eventType string, server bool) bool {
	return server || eventType != "alias"
}
