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

// TestNewestOfUserAndAnonymousId: consent recorded under a userId and under
// its anonymousId concern one person; the most recent change governs.
func TestNewestOfUserAndAnonymousId(t *testing.T) {
	s := New(16)
	s.Apply("user", at(0), policy.Consent{Known: true, Purposes: policy.Analytics})
	s.Apply("anon", at(time.Hour), policy.Consent{Known: true})
	if got := s.Newest(at(30*time.Minute), "user", "anon"); got.Purposes != policy.Analytics {
		t.Errorf("before the anonymous withdrawal: %+v, want analytics", got)
	}
	if got := s.Newest(at(2*time.Hour), "user", "anon"); !got.Known || got.Purposes != 0 {
		t.Errorf("after the anonymous withdrawal: %+v, want known, nothing granted", got)
	}
	if got := s.Newest(at(2*time.Hour), "", "nobody"); got.Known {
		t.Errorf("unknown subjects: %+v", got)
	}
}
