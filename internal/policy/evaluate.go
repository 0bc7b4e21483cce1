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

// Judge decides one event: atEvent is the consent in force at the event's
// time, atReceipt at the time the collector received it. The event is kept
// only for what both allow (Both): a withdrawal counts from when it was
// recorded, so a backdated event cannot slip under it. Consent the event
// carries counts as an update at its time, within what its source may say
// (CarriedUpdate): it is applied to both, and returned so the caller can
// record it.
func (r Rules) Judge(in *Parsed, atEvent, atReceipt Consent, suppressed bool) (d Decision, carried *CarriedUpdate) {
	env := &in.Env
	if prefs := in.CarriedPreferences(); len(prefs) > 0 {
		if ch, ok := r.Categories.FromCategories(prefs); ok {
			u := Carry(ch, env.Signals.ServerSource, env.Event.UserID != "", env.Event.AnonymousID != "")
			atEvent, atReceipt, carried = atEvent.With(u.Effective), atReceipt.With(u.Effective), &u
		}
	}
	// Viper lower-cases map keys, so config names sources in lower case.
	defaults := r.Defaults[strings.ToLower(env.SourceID)]
	return Both(Decide(atEvent, suppressed, env.Signals, defaults), Decide(atReceipt, suppressed, env.Signals, defaults)), carried
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
	// CarriedConsent is the consent the event itself updated.
	CarriedConsent []string `json:"carriedConsent,omitempty"`
	// CarriedRefused are purposes the event granted that its source may
	// not grant (CarriedUpdate.Refused): ignored.
	CarriedRefused []string `json:"carriedRefused,omitempty"`
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
	var h History
	for _, s := range c.Consent {
		h = append(h, Change{At: s.UpdatedAt, Consent: ConsentOf(s)})
	}
	in, err := Parse(c.Envelope)
	if err != nil {
		return Report{}, err
	}
	inForce := h.At(in.At)
	d, carried := r.Judge(in, inForce, h.At(c.Envelope.ReceivedAt), c.Suppressed)
	rep := Report{Kept: d.Drop == "", Dropped: string(d.Drop), ByDefault: d.ByDefault, Destinations: map[string]Outcome{}}
	if carried != nil {
		rep.CarriedConsent = inForce.With(carried.Effective).Purposes.Names()
		rep.CarriedRefused = carried.Refused.Names()
		if len(rep.CarriedRefused) == 0 {
			rep.CarriedRefused = nil
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
			clean, err := profile.Deidentify(in, d)
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
