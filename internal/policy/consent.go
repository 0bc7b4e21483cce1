package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/consentflow/consentflow/internal/event"
)

// Purposes is a set of the purposes of event.Purposes, one bit each, so a
// consent state fits in a few bytes in the enricher's store.
type Purposes uint8

// The purposes, in the order of event.Purposes.
const (
	Analytics Purposes = 1 << iota
	Personalization
	Marketing
	ThirdPartySharing

	// trackingPurposes are what DNT withdraws: the policy respects Do Not
	// Track for everything that follows a person around.
	trackingPurposes = Analytics | Personalization | Marketing
	// gpcPurposes are what Sec-GPC withdraws: Global Privacy Control is
	// "do not sell or share", so sharing with third parties goes too (and
	// so does transfer abroad, Decide).
	gpcPurposes = trackingPurposes | ThirdPartySharing
)

// ParsePurpose returns the purpose named as in event.Purposes.
func ParsePurpose(name string) (Purposes, error) {
	i := slices.Index(event.Purposes, name)
	if i < 0 {
		return 0, fmt.Errorf("unknown purpose %q (want %s)", name, strings.Join(event.Purposes, ", "))
	}
	return 1 << i, nil
}

// ParsePurposes returns the set of the named purposes.
func ParsePurposes(names []string) (Purposes, error) {
	var set Purposes
	for _, n := range names {
		p, err := ParsePurpose(n)
		if err != nil {
			return 0, err
		}
		set |= p
	}
	return set, nil
}

// PurposesOf returns the set of purposes granted in m (as in
// event.ConsentState); unknown names are ignored.
func PurposesOf(m map[string]bool) Purposes {
	var set Purposes
	for i, name := range event.Purposes {
		if m[name] {
			set |= 1 << i
		}
	}
	return set
}

// Names lists the purposes of the set in the order of event.Purposes;
// never nil, so an empty set encodes as []. The slice is shared: its
// elements must not change (appending to it copies).
func (p Purposes) Names() []string {
	if int(p) < len(purposeNames) {
		return slices.Clip(purposeNames[p])
	}
	return namesOf(p)
}

// purposeNames are the names of every set of the four purposes (a fifth
// would be named by namesOf): an event kept is an event whose purposes are
// named, and a new slice for each was an allocation per event.
var purposeNames = func() (t [1 << 4][]string) {
	for p := range t {
		t[p] = namesOf(Purposes(p))
	}
	return t
}()

func namesOf(p Purposes) []string {
	names := []string{}
	for i, name := range event.Purposes {
		if p&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	return names
}

// Consent is a subject's consent in force at one moment.
type Consent struct {
	// Known is false when nothing is known of the subject at that moment:
	// no optional purpose then (fail closed).
	Known           bool
	Purposes        Purposes
	CrossBorder     bool
	Minor           bool
	GuardianConsent bool
}

// ConsentOf is the Consent a privacy.consent record states.
func ConsentOf(s event.ConsentState) Consent {
	return Consent{Known: true, Purposes: PurposesOf(s.Purposes), CrossBorder: s.CrossBorder,
		Minor: s.Minor, GuardianConsent: s.GuardianConsent}
}

// CategoryMap maps consent categories of Segment's
// context.consent.categoryPreferences (lower-cased) to our purposes.
type CategoryMap map[string]Purposes

// Carried is consent carried in an event: the purposes its categories name,
// and of those the ones granted. It changes only what it names, so a full
// consent record stamped earlier but recorded later still governs the
// rest.
type Carried struct {
	Named, Granted Purposes
}

// With is c updated by what an event carried.
func (c Consent) With(ch Carried) Consent {
	c.Known = true
	c.Purposes = c.Purposes&^ch.Named | ch.Granted&ch.Named
	return c
}

// CarriedUpdate is consent carried in an event, as its source may say it
// (Carry): the change under each of its identifiers, which counts for it
// and for the subject's later events (InForce combines them).
type CarriedUpdate struct {
	// User changes the userId's consent, Anonymous the anonymousId's;
	// Named == 0 changes nothing.
	User, Anonymous Carried
	// Refused are purposes a client source granted for a userId with no
	// anonymousId of its own to record them under: ignored, and counted.
	Refused Purposes
}

// Carry applies the rules of who may say what to consent carried in an
// event. A server source's change is the subject's (its userId, else its
// anonymousId). A client source's key is public, so it speaks for the
// device it sends events as: the whole change is recorded under its
// anonymousId, and only withdrawals under its userId (anyone may
// withdraw); its grants with a userId and no anonymousId are refused.
func Carry(ch Carried, server, hasUser, hasAnonymous bool) CarriedUpdate {
	switch {
	case server && hasUser:
		return CarriedUpdate{User: ch}
	case server || !hasUser:
		return CarriedUpdate{Anonymous: ch}
	}
	withdrawn := Carried{Named: ch.Named &^ ch.Granted}
	if hasAnonymous {
		return CarriedUpdate{User: withdrawn, Anonymous: ch}
	}
	return CarriedUpdate{User: withdrawn, Refused: ch.Named & ch.Granted}
}

// ForUser is the change to record under the userId, whose consent is
// known or not: one that only withdraws leaves a userId without consent
// as it is (there is nothing to withdraw), so the device's consent goes on
// judging the events it sends as that user.
func (u CarriedUpdate) ForUser(known bool) Carried {
	if !known && u.User.Granted&u.User.Named == 0 {
		return Carried{}
	}
	return u.User
}

// FromCategories reads consent carried in an event. A purpose is granted
// when every mapped category the event names grants it, withdrawn when one
// refuses it, and untouched when the event names none of its categories.
// Categories the map does not know are ignored: guessing would grant by
// accident. ok is false when the event names no known category.
func (m CategoryMap) FromCategories(prefs map[string]bool) (ch Carried, ok bool) {
	var refused Purposes
	for category, granted := range prefs {
		p := m[strings.ToLower(category)]
		ch.Named |= p
		if !granted {
			refused |= p
		}
	}
	ch.Granted = ch.Named &^ refused
	return ch, ch.Named != 0
}

// DropReason says why an event is not kept; "" means it is kept.
type DropReason string

// The reasons an event is dropped whole, as metrics label them.
const (
	DropNoConsent  DropReason = "no_consent"
	DropDNT        DropReason = "dnt"
	DropGPC        DropReason = "gpc"
	DropMinor      DropReason = "minor"
	DropSuppressed DropReason = "suppressed"
)

// Decision is what the consent rules make of one event.
type Decision struct {
	// Drop is why the event is dropped whole, or "" when it is kept.
	Drop DropReason
	// Purposes the event is kept for; it travels with the event.
	Purposes Purposes
	// Export allows a de-identified copy to leave the home region.
	Export bool
	// ByDefault is true when the purposes are the source's default
	// grant, not the subject's consent.
	ByDefault bool
}

// Decide applies the consent rules (README, Decisions) to one event: c is the
// consent in force (Both combines the decisions at the event's time and at
// its receipt), defaults what config grants the event's source when no
// consent is known.
func Decide(c Consent, suppressed bool, s event.Signals, defaults Purposes) Decision {
	switch {
	case suppressed:
		return Decision{Drop: DropSuppressed}
	case c.Known && c.Purposes == 0:
		// Before minor: a subject whose record could not be read is known
		// to grant nothing, and marked a minor only to keep the flag.
		return Decision{Drop: DropNoConsent}
	case c.Known && c.Minor && !c.GuardianConsent:
		return Decision{Drop: DropMinor}
	}
	d := Decision{Purposes: c.Purposes, Export: c.Known && c.CrossBorder}
	if !c.Known {
		d.Purposes, d.ByDefault = defaults, defaults != 0
	}
	if d.Purposes == 0 {
		return Decision{Drop: DropNoConsent}
	}
	if s.DNT {
		d.Purposes &^= trackingPurposes
	}
	if s.GPC {
		d.Purposes &^= gpcPurposes
		d.Export = false
	}
	if d.Purposes == 0 {
		if s.DNT {
			return Decision{Drop: DropDNT}
		}
		return Decision{Drop: DropGPC}
	}
	return d
}

// Both is what two decisions of one event allow together: the one at the
// event's own time and the one at its receipt. A withdrawal counts from
// when it was recorded, so an event stamped before it but received after
// is kept for neither what the withdrawal took back nor anything else the
// two disagree on.
func Both(atEvent, atReceipt Decision) Decision {
	switch {
	case atEvent.Drop != "":
		return atEvent
	case atReceipt.Drop != "":
		return atReceipt
	}
	d := Decision{Purposes: atEvent.Purposes & atReceipt.Purposes, Export: atEvent.Export && atReceipt.Export,
		ByDefault: atEvent.ByDefault || atReceipt.ByDefault}
	if d.Purposes == 0 {
		return Decision{Drop: DropNoConsent}
	}
	return d
}
