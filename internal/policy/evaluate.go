package policy

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/consentflow/consentflow/internal/event"
)

// Rules are the consent settings of a deployment.
type Rules struct {
	// Defaults grants purposes to a source's events when the subject's
	// consent is unknown (a first-party server with a legal basis).
	Defaults map[string]Purposes
	// Categories maps event-carried consent categories to purposes.
	Categories CategoryMap
}

// Carried reads the consent an event carries, as its source may say it
// (Carry), or nil when it names no known category. It counts as an update
// at the event's time, no later than its receipt: consent is not given
// after it was received.
func (r Rules) Carried(in *Parsed) *CarriedUpdate {
	prefs := in.CarriedPreferences()
	if len(prefs) == 0 {
		return nil
	}
	ch, ok := r.Categories.FromCategories(prefs)
	if !ok {
		return nil
	}
	ev := &in.Env.Event
	u := Carry(ch, in.Env.Signals.ServerSource, ev.UserID != "", ev.AnonymousID != "")
	return &u
}

// CarriedAt is when consent carried in an event counts from: its time, no
// later than its receipt.
func CarriedAt(in *Parsed) time.Time {
	if in.At.After(in.Env.ReceivedAt) {
		return in.Env.ReceivedAt
	}
	return in.At
}

// Judge decides one event: atEvent is the consent in force at the event's
// time, atReceipt at the time the collector received it (InForce, with
// consent the event carries applied). The event is kept only for what
// both allow (Both): a withdrawal counts from when it was recorded, so a
// backdated event cannot slip under it.
func (r Rules) Judge(in *Parsed, atEvent, atReceipt Consent, suppressed bool) Decision {
	// Viper lower-cases map keys, so config names sources in lower case.
	defaults := r.Defaults[strings.ToLower(in.Env.SourceID)]
	return Both(Decide(atEvent, suppressed, in.Env.Signals, defaults), Decide(atReceipt, suppressed, in.Env.Signals, defaults))
}

// InForce combines what is known of an event's person at one time: the
// consent in force under its userId, under its anonymousId, and under the
// userId its device is linked to. The userId's consent, when known,
// governs: the device's is a client's to set, and a client may not grant
// for a userId (its withdrawals reach the userId's own consent, Carry).
// Without it the anonymousId's governs, within what the linked userId's
// allows when known: the person's withdrawal reaches their devices.
// Minor is sticky across identities: if any says minor without guardian
// consent, so does the result.
func InForce(user, anon, linked Consent) Consent {
	c := anon
	switch {
	case user.Known:
		c = user
	case linked.Known:
		c.Purposes &= linked.Purposes
		c.CrossBorder = c.CrossBorder && linked.CrossBorder
	}
	for _, m := range [3]Consent{user, anon, linked} {
		if m.Known && m.Minor && !m.GuardianConsent {
			c.Known, c.Minor, c.GuardianConsent = true, true, false
		}
	}
	return c
}

// Change is a subject's consent from a moment on.
type Change struct {
	At      time.Time
	Consent Consent
}

// History is a subject's consent changes, in any order.
type History []Change

// At returns the consent in force at t: the latest change not after t, or
// unknown consent when every change is later (fail closed).
func (h History) At(t time.Time) Consent {
	var best *Change
	for i := range h {
		if !h[i].At.After(t) && (best == nil || !h[i].At.Before(best.At)) {
			best = &h[i]
		}
	}
	if best == nil {
		return Consent{}
	}
	return best.Consent
}

// withCarried is h with consent carried in an event at at: the consent in
// force then, changed where the event names.
func (h History) withCarried(at time.Time, ch Carried) History {
	if ch.Named == 0 {
		return h
	}
	return append(slices.Clone(h), Change{At: at, Consent: h.At(at).With(ch)})
}

// Case is one event and what is known of its subject, as the policy check
// command and the golden tests read it.
type Case struct {
	Envelope event.Envelope `json:"envelope"`
	// Consent lists privacy.consent records of the subject, in any order.
	Consent    []event.ConsentState `json:"consent,omitempty"`
	Suppressed bool                 `json:"suppressed,omitempty"`
}

// Report is what happens to a Case at every destination.
type Report struct {
	Kept      bool     `json:"kept"`
	Dropped   string   `json:"dropped,omitempty"`
	Purposes  []string `json:"purposes,omitempty"`
	ByDefault bool     `json:"byDefault,omitempty"`
	// CarriedConsent is the purposes in force at the event's time once the
	// consent it carries is applied.
	CarriedConsent []string `json:"carriedConsent,omitempty"`
	// CarriedRefused are purposes the event granted that its source may
	// not grant (CarriedUpdate.Refused): ignored.
	CarriedRefused []string `json:"carriedRefused,omitempty"`
	// Violations are the event's departures from the catalogue: what was
	// removed or not declared, by path, never a value.
	Violations []Violation `json:"violations,omitempty"`
	// Destinations holds, by destination name, the output event or why
	// there is none.
	Destinations map[string]Outcome `json:"destinations"`
}

// Outcome is one destination's result.
type Outcome struct {
	Event   json.RawMessage `json:"event,omitempty"`
	Skipped string          `json:"skipped,omitempty"`
}

// EventTime is the time an event is judged at: its clock-corrected
// timestamp, else when it was received.
func EventTime(env event.Envelope) time.Time {
	if ts, err := event.ParseTime(env.Event.Timestamp); err == nil && !ts.IsZero() {
		return ts
	}
	return env.ReceivedAt
}

// Evaluate judges a case and de-identifies it for the in-region
// destination and every export destination, as the enricher would.
func Evaluate(c Case, r Rules, inRegion string, profile *Profile, exports map[string]*Profile) (Report, error) {
	in, err := Parse(c.Envelope)
	if err != nil {
		return Report{}, err
	}
	// Records name their identifier: the userId's, else the anonymousId's.
	var users, anons History
	for _, s := range c.Consent {
		change := Change{At: s.UpdatedAt, Consent: ConsentOf(s)}
		if s.UserID != "" && s.UserID == s.Subject {
			users = append(users, change)
		} else {
			anons = append(anons, change)
		}
	}
	carried := r.Carried(in)
	if carried != nil && !c.Suppressed {
		at := CarriedAt(in)
		users, anons = users.withCarried(at, carried.ForUser(users.At(at).Known)), anons.withCarried(at, carried.Anonymous)
	}
	inForce := func(t time.Time) Consent { return InForce(users.At(t), anons.At(t), Consent{}) }
	d := r.Judge(in, inForce(in.At), inForce(c.Envelope.ReceivedAt), c.Suppressed)
	rep := Report{Kept: d.Drop == "", Dropped: string(d.Drop), ByDefault: d.ByDefault, Destinations: map[string]Outcome{}}
	if carried != nil {
		rep.CarriedConsent = inForce(in.At).Purposes.Names()
		if carried.Refused != 0 {
			rep.CarriedRefused = carried.Refused.Names()
		}
	}
	names := []string{inRegion}
	for name := range exports {
		names = append(names, name)
	}
	slices.Sort(names[1:])
	for _, name := range names {
		if !rep.Kept {
			rep.Destinations[name] = Outcome{Skipped: "dropped: " + rep.Dropped}
			continue
		}
		if name == inRegion {
			clean, _, err := profile.deidentify(in, d, nil, &passReport{violations: &rep.Violations})
			if err != nil {
				return Report{}, err
			}
			b, err := json.Marshal(clean)
			if err != nil {
				return Report{}, err
			}
			rep.Destinations[name] = Outcome{Event: b}
			continue
		}
		if !d.Export {
			rep.Destinations[name] = Outcome{Skipped: "no cross-border consent"}
			continue
		}
		x, err := Export(in, d, exports[name])
		switch {
		case errors.Is(err, ErrGateRefused):
			rep.Destinations[name] = Outcome{Skipped: err.Error()}
		case err != nil:
			return Report{}, err
		default:
			rep.Destinations[name] = Outcome{Event: x.Value()}
		}
	}
	if rep.Kept {
		rep.Purposes = d.Purposes.Names()
	}
	return rep, nil
}
