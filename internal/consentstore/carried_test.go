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
		"grant":      func(s *Store) { s.Apply(KindUser, "u", at(0), grant) },
		"carried":    func(s *Store) { s.ApplyCarried(KindUser, "u", at(10*time.Minute), carried) },
		"withdrawal": func(s *Store) { s.Apply(KindUser, "u", at(5*time.Minute), withdrawal) },
	}
	for _, order := range [][]string{{"grant", "carried", "withdrawal"}, {"withdrawal", "carried", "grant"}, {"carried", "grant", "withdrawal"}} {
		s := New(16, testKeys)
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
			if got := s.At(KindUser, "u", at(c.at)); got != c.want {
				t.Errorf("order %v, at +%v: %+v, want %+v", order, c.at, got, c.want)
			}
		}
	}
}

func TestCarriedConsentWithoutARecord(t *testing.T) {
	s := New(16, testKeys)
	s.ApplyCarried(KindUser, "u", at(0), policy.Carried{Named: policy.Analytics | policy.Marketing, Granted: policy.Analytics})
	if got := s.At(KindUser, "u", at(-time.Second)); got.Known {
		t.Errorf("before the event: %+v, want unknown", got)
	}
	if got := s.At(KindUser, "u", at(time.Second)); got != (policy.Consent{Known: true, Purposes: policy.Analytics}) {
		t.Errorf("after the event: %+v, want analytics only, nothing else granted", got)
	}
}

// TestInForceOfUserAndAnonymousId: consent recorded under a userId and
// under its anonymousId concern one person. The userId's governs when
// known, whatever the device says since; without it, the device's. A
// userId and an anonymousId spelt alike are two subjects.
func TestInForceOfUserAndAnonymousId(t *testing.T) {
	s := New(16, testKeys)
	user, anon, none := s.Subject(KindUser, "u"), s.Subject(KindAnonymous, "a"), Subject{}
	s.Apply(KindAnonymous, "a", at(0), policy.Consent{Known: true, Purposes: policy.Analytics | policy.Marketing, CrossBorder: true})
	if got := s.InForce(at(time.Minute), user, anon, none); got.Purposes != policy.Analytics|policy.Marketing || !got.CrossBorder {
		t.Errorf("before the userId's: %+v, want the device's", got)
	}
	s.Apply(KindUser, "u", at(time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics})
	s.ApplyCarried(KindAnonymous, "a", at(3*time.Hour), policy.Carried{Named: policy.Personalization, Granted: policy.Personalization})
	if got := s.InForce(at(3*time.Hour), user, anon, none); got.Purposes != policy.Analytics || got.CrossBorder {
		t.Errorf("after the userId's, and a later grant on the device: %+v, want the userId's analytics alone", got)
	}
	if got := s.InForce(at(3*time.Hour), s.Subject(KindUser, "a"), s.Subject(KindAnonymous, "u"), none); got.Known {
		t.Errorf("the ids as the other kind: %+v, want nothing known", got)
	}
}

// TestMinorIsStickyAcrossIdentities: a minor without guardian consent
// under the userId, the anonymousId or the userId the device is linked to
// makes the event a minor's, whichever record is newest.
func TestMinorIsStickyAcrossIdentities(t *testing.T) {
	kinds := map[string]Kind{"user": KindUser, "anon": KindAnonymous, "linked": KindUser}
	for _, minorAs := range []string{"user", "anon", "linked"} {
		t.Run(minorAs, func(t *testing.T) {
			s := New(16, testKeys)
			user, anon, linked := s.Subject(KindUser, "user"), s.Subject(KindAnonymous, "anon"), s.Subject(KindUser, "linked")
			// The others' records are newer, and say nothing of a minor.
			for id, kind := range kinds {
				if id != minorAs {
					s.Apply(kind, id, at(2*time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics})
				}
			}
			s.Apply(kinds[minorAs], minorAs, at(time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics, Minor: true})
			if got := s.InForce(at(3*time.Hour), user, anon, linked); !got.Minor || got.GuardianConsent {
				t.Errorf("%+v, want a minor's", got)
			}
			s.Apply(kinds[minorAs], minorAs, at(90*time.Minute), policy.Consent{Known: true, Purposes: policy.Analytics, Minor: true, GuardianConsent: true})
			if got := s.InForce(at(3*time.Hour), user, anon, linked); got.Minor && !got.GuardianConsent {
				t.Errorf("%+v, want the guardian's consent to count", got)
			}
		})
	}
	s := New(16, testKeys)
	s.Apply(KindUser, "linked", at(0), policy.Consent{Known: true, Minor: true})
	if got := s.InForce(at(time.Hour), s.Subject(KindUser, "user"), Subject{}, s.Subject(KindUser, "linked")); !got.Known || !got.Minor {
		t.Errorf("only the linked user known, a minor: %+v, want known and a minor", got)
	}
}

// TestCarriedFloodKeepsTheRecordBeneath: an SDK repeats its consent on
// every event, or toggles it; however many such changes come, the full
// record beneath them (and its minor flag) stays in force, and repeats
// take no room.
func TestCarriedFloodKeepsTheRecordBeneath(t *testing.T) {
	s := New(4, testKeys)
	s.Apply(KindUser, "child", at(0), policy.Consent{Known: true, Purposes: policy.Analytics, Minor: true})
	for i := range 20 {
		s.ApplyCarried(KindUser, "child", at(time.Duration(2*i+1)*time.Minute), policy.Carried{Named: policy.Marketing})
		if got := len(s.older[s.key(KindUser, "child")]); got != 0 && i == 0 {
			t.Fatalf("a carried change that changes nothing took room: %d older changes", got)
		}
	}
	for i := range 20 {
		var granted policy.Purposes
		if i%2 == 0 {
			granted = policy.Personalization
		}
		s.ApplyCarried(KindUser, "child", at(time.Duration(2*i+2)*time.Minute), policy.Carried{Named: policy.Personalization, Granted: granted})
	}
	got := s.At(KindUser, "child", at(time.Hour))
	if !got.Known || !got.Minor || got.Purposes&policy.Analytics == 0 || got.Purposes&policy.Personalization != 0 {
		t.Errorf("after the flood: %+v, want still a minor, analytics granted, personalization last withdrawn", got)
	}
	if n := len(s.older[s.key(KindUser, "child")]); n > 3 {
		t.Errorf("%d older changes kept, want at most 3", n)
	}
}
