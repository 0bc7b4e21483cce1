package consentstore

import (
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/policy"
)

// TestCarriedConsentChangesOnlyWhatItNames: consent carried in an event
// updates the purposes it names on top of the full record in force, so a
// full record stamped earlier but recorded later (a withdrawal that
// arrived late) still governs the rest, whatever order they arrive in.
func TestCarriedConsentChangesOnlyWhatItNames(t *testing.T) {
	grant := policy.Consent{Known: true, Purposes: policy.Analytics | policy.Marketing, CrossBorder: true}
	withdrawal := policy.Consent{Known: true, Purposes: policy.Analytics}
	carried := policy.Carried{Named: policy.Analytics | policy.Personalization, Granted: policy.Analytics}
	apply := map[string]func(s *Store){
		"grant":      func(s *Store) { s.Apply("u", at(0), grant) },
		"carried":    func(s *Store) { s.ApplyCarried("u", at(10*time.Minute), carried) },
		"withdrawal": func(s *Store) { s.Apply("u", at(5*time.Minute), withdrawal) },
	}
	for _, order := range [][]string{{"grant", "carried", "withdrawal"}, {"withdrawal", "carried", "grant"}, {"carried", "grant", "withdrawal"}} {
		s := New(16)
		for _, name := range order {
			apply[name](s)
		}
		for _, c := range []struct {
			at   time.Duration
			want policy.Consent
		}{
			{time.Minute, grant},
			{7 * time.Minute, withdrawal},
			// The late withdrawal removed marketing and cross-border; the
			// event at 10 min named analytics and personalization only.
			{25 * time.Minute, policy.Consent{Known: true, Purposes: policy.Analytics}},
		} {
			if got := s.At("u", at(c.at)); got != c.want {
				t.Errorf("order %v, at +%v: %+v, want %+v", order, c.at, got, c.want)
			}
		}
	}
}

func TestCarriedConsentWithoutARecord(t *testing.T) {
	s := New(16)
	s.ApplyCarried("u", at(0), policy.Carried{Named: policy.Analytics | policy.Marketing, Granted: policy.Analytics})
	if got := s.At("u", at(-time.Second)); got.Known {
		t.Errorf("before the event: %+v, want unknown", got)
	}
	if got := s.At("u", at(time.Second)); got != (policy.Consent{Known: true, Purposes: policy.Analytics}) {
		t.Errorf("after the event: %+v, want analytics only, nothing else granted", got)
	}
}

// TestInForceOfUserAndAnonymousId: consent recorded under a userId and
// under its anonymousId concern one person; the most recent change
// governs, the anonymousId's on a tie.
func TestInForceOfUserAndAnonymousId(t *testing.T) {
	s := New(16)
	user, anon, none := s.Subject("user"), s.Subject("anon"), Subject{}
	s.Apply("user", at(0), policy.Consent{Known: true, Purposes: policy.Analytics})
	s.Apply("anon", at(time.Hour), policy.Consent{Known: true})
	if got := s.InForce(at(30*time.Minute), user, anon, none); got.Purposes != policy.Analytics {
		t.Errorf("before the anonymous withdrawal: %+v, want analytics", got)
	}
	if got := s.InForce(at(2*time.Hour), user, anon, none); !got.Known || got.Purposes != 0 {
		t.Errorf("after the anonymous withdrawal: %+v, want known, nothing granted", got)
	}
	if got := s.InForce(at(2*time.Hour), none, s.Subject("nobody"), none); got.Known {
		t.Errorf("unknown subjects: %+v", got)
	}
	// A client's carried consent: withdrawals under the userId, the whole
	// change under the anonymousId, at the same time.
	s.ApplyCarried("user", at(3*time.Hour), policy.Carried{Named: policy.Marketing})
	s.ApplyCarried("anon", at(3*time.Hour), policy.Carried{Named: policy.Marketing | policy.Personalization, Granted: policy.Personalization})
	if got := s.InForce(at(4*time.Hour), user, anon, none); got.Purposes != policy.Personalization {
		t.Errorf("after a tie: %+v, want the anonymousId's personalization", got)
	}
}

// TestMinorIsStickyAcrossIdentities: a minor without guardian consent
// under the userId, the anonymousId or the userId the device is linked to
// makes the event a minor's, whichever record is newest.
func TestMinorIsStickyAcrossIdentities(t *testing.T) {
	for _, minorAs := range []string{"user", "anon", "linked"} {
		t.Run(minorAs, func(t *testing.T) {
			s := New(16)
			user, anon, linked := s.Subject("user"), s.Subject("anon"), s.Subject("linked")
			// The others' records are newer, and say nothing of a minor.
			for _, id := range []string{"user", "anon", "linked"} {
				if id != minorAs {
					s.Apply(id, at(2*time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics})
				}
			}
			s.Apply(minorAs, at(time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics, Minor: true})
			if got := s.InForce(at(3*time.Hour), user, anon, linked); !got.Minor || got.GuardianConsent {
				t.Errorf("%+v, want a minor's", got)
			}
			s.Apply(minorAs, at(90*time.Minute), policy.Consent{Known: true, Purposes: policy.Analytics, Minor: true, GuardianConsent: true})
			if got := s.InForce(at(3*time.Hour), user, anon, linked); got.Minor && !got.GuardianConsent {
				t.Errorf("%+v, want the guardian's consent to count", got)
			}
		})
	}
	s := New(16)
	s.Apply("linked", at(0), policy.Consent{Known: true, Minor: true})
	if got := s.InForce(at(time.Hour), s.Subject("user"), Subject{}, s.Subject("linked")); !got.Known || !got.Minor {
		t.Errorf("only the linked user known, a minor: %+v, want known and a minor", got)
	}
}
