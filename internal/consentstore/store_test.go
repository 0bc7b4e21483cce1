package consentstore

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

func consent(p policy.Purposes) policy.Consent { return policy.Consent{Known: true, Purposes: p} }

// history is three changes of one subject, oldest first.
var history = []struct {
	at time.Time
	c  policy.Consent
}{
	{at(0), consent(policy.Analytics)},
	{at(time.Hour), policy.Consent{Known: true, Purposes: policy.Analytics | policy.Marketing, CrossBorder: true}},
	{at(2 * time.Hour), policy.Consent{Known: true, Purposes: 0, Minor: true}},
}

// probes are query times around every change of history, with the consent
// in force at each.
var probes = []struct {
	name string
	at   time.Time
	want policy.Consent
}{
	{"long before the first change", at(-24 * time.Hour), policy.Consent{}},
	{"1ms before the first change", at(-time.Millisecond), policy.Consent{}},
	{"1ns before the first change", at(-time.Nanosecond), policy.Consent{}},
	{"at the first change", at(0), history[0].c},
	{"sub-millisecond after the first", at(500 * time.Microsecond), history[0].c},
	{"between first and second", at(30 * time.Minute), history[0].c},
	{"1ms before the second", at(time.Hour - time.Millisecond), history[0].c},
	{"at the second change", at(time.Hour), history[1].c},
	{"between second and third", at(90 * time.Minute), history[1].c},
	{"at the third change", at(2 * time.Hour), history[2].c},
	{"long after the last change", at(24 * 365 * time.Hour), history[2].c},
}

func checkProbes(t *testing.T, s *Store, subject string) {
	t.Helper()
	for _, p := range probes {
		if got := s.At(KindUser, subject, p.at); got != p.want {
			t.Errorf("At(%q, %s): got %+v, want %+v", subject, p.name, got, p.want)
		}
	}
}

func TestAtFollowsHistory(t *testing.T) {
	s := New(8, testKeys)
	for _, h := range history {
		s.Apply(KindUser, "alice", h.at, h.c)
	}
	checkProbes(t, s, "alice")
	if got := s.At(KindUser, "bob", at(0)); got.Known {
		t.Errorf("a subject never applied: got %+v, want unknown", got)
	}
	if got := s.At(KindUser, "", at(0)); got.Known {
		t.Errorf("the empty subject: got %+v, want unknown", got)
	}
	if subjects, suppressed := s.Size(); subjects != 1 || suppressed != 0 {
		t.Errorf("Size: got %d, %d, want 1, 0", subjects, suppressed)
	}
}

// TestEventBeforeEarliestChangeIsUnknown: the store knows nothing of what a
// subject had agreed to before its earliest change, so it fails closed.
func TestEventBeforeEarliestChangeIsUnknown(t *testing.T) {
	s := New(4, testKeys)
	s.Apply(KindUser, "alice", at(0), consent(policy.Analytics|policy.Personalization|policy.Marketing|policy.ThirdPartySharing))
	if got := s.At(KindUser, "alice", at(-time.Millisecond)); got != (policy.Consent{}) {
		t.Errorf("before the earliest change: got %+v, want the zero Consent", got)
	}
	if got := s.At(KindUser, "alice", time.Unix(0, 0)); got.Known {
		t.Errorf("at 1970: got %+v, want unknown", got)
	}
	if got := s.At(KindUser, "alice", time.Time{}); got.Known {
		t.Errorf("at the zero time: got %+v, want unknown", got)
	}
}

func TestOutOfOrderApplyGivesTheSameAnswers(t *testing.T) {
	for _, order := range permutations(len(history)) {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			s := New(8, testKeys)
			for _, i := range order {
				s.Apply(KindUser, "alice", history[i].at, history[i].c)
			}
			checkProbes(t, s, "alice")
		})
	}
}

func TestReapplyIsIdempotent(t *testing.T) {
	// A history bound that holds exactly the three changes: if a replay
	// added a duplicate, the oldest change would be pushed out.
	s := New(len(history), testKeys)
	for range 3 {
		for _, h := range history {
			s.Apply(KindUser, "alice", h.at, h.c)
		}
		// Replay in reverse too, as a rebuild after a reset might.
		for i := len(history) - 1; i >= 0; i-- {
			s.Apply(KindUser, "alice", history[i].at, history[i].c)
		}
	}
	checkProbes(t, s, "alice")
	if got := len(s.older[s.key(KindUser, "alice")]); got != len(history)-1 {
		t.Errorf("older changes kept: got %d, want %d", got, len(history)-1)
	}
	if subjects, _ := s.Size(); subjects != 1 {
		t.Errorf("Size: got %d subjects, want 1", subjects)
	}
}

// TestSameTimeLastWriteWins: two different changes at the same millisecond
// cannot both be in force; the one applied last (the later record of the
// partition) replaces the other, as latest and as history alike.
func TestSameTimeLastWriteWins(t *testing.T) {
	s := New(4, testKeys)
	s.Apply(KindUser, "alice", at(0), consent(policy.Analytics))
	s.Apply(KindUser, "alice", at(0), consent(policy.Marketing))
	if got := s.At(KindUser, "alice", at(0)); got != consent(policy.Marketing) {
		t.Errorf("latest replaced: got %+v", got)
	}
	s.Apply(KindUser, "alice", at(time.Hour), consent(policy.Personalization))
	s.Apply(KindUser, "alice", at(0), consent(policy.ThirdPartySharing))
	if got := s.At(KindUser, "alice", at(time.Minute)); got != consent(policy.ThirdPartySharing) {
		t.Errorf("history replaced: got %+v", got)
	}
	if got := s.At(KindUser, "alice", at(time.Hour)); got != consent(policy.Personalization) {
		t.Errorf("latest kept: got %+v", got)
	}
}

func TestHistoryBoundKeepsTheNewest(t *testing.T) {
	const n = 6
	changes := make([]policy.Consent, n)
	for i := range changes {
		// Distinct consents: purposes 1..6.
		changes[i] = consent(policy.Purposes(i + 1))
	}
	for _, tc := range []struct {
		name  string
		order []int
	}{
		{"in order", []int{0, 1, 2, 3, 4, 5}},
		{"reversed", []int{5, 4, 3, 2, 1, 0}},
		{"shuffled", []int{3, 0, 5, 1, 4, 2}},
	} {
		for _, limit := range []int{1, 2, 3, n, n + 2} {
			t.Run(fmt.Sprintf("%s/limit %d", tc.name, limit), func(t *testing.T) {
				s := New(limit, testKeys)
				for _, i := range tc.order {
					s.Apply(KindUser, "alice", at(time.Duration(i)*time.Hour), changes[i])
				}
				oldestKept := max(n-limit, 0)
				for i := range n {
					got := s.At(KindUser, "alice", at(time.Duration(i)*time.Hour+time.Minute))
					want := policy.Consent{}
					if i >= oldestKept {
						want = changes[i]
					}
					if got != want {
						t.Errorf("during change %d: got %+v, want %+v", i, got, want)
					}
				}
				if got := len(s.older[s.key(KindUser, "alice")]); got > max(limit-1, 0) {
					t.Errorf("older changes kept: %d, over the bound %d", got, limit-1)
				}
			})
		}
	}
	// A limit under 1 means 1: the latest change only.
	s := New(0, testKeys)
	s.Apply(KindUser, "alice", at(0), changes[0])
	s.Apply(KindUser, "alice", at(time.Hour), changes[1])
	if got := s.At(KindUser, "alice", at(time.Minute)); got.Known {
		t.Errorf("New(0, testKeys), before the latest change: got %+v, want unknown", got)
	}
	if got := s.At(KindUser, "alice", at(time.Hour)); got != changes[1] {
		t.Errorf("New(0, testKeys), latest: got %+v", got)
	}
}

func TestPackRoundTripsEveryConsent(t *testing.T) {
	s := New(2, testKeys)
	for p := range policy.Purposes(16) {
		for flags := range 8 {
			c := policy.Consent{Known: true, Purposes: p,
				CrossBorder: flags&1 != 0, Minor: flags&2 != 0, GuardianConsent: flags&4 != 0}
			subject := fmt.Sprintf("s-%d-%d", p, flags)
			when := time.Date(2099, 12, 31, 23, 59, 59, 999e6, time.UTC)
			s.Apply(KindUser, subject, when, c)
			if got := s.At(KindUser, subject, when); got != c {
				t.Errorf("%s: got %+v, want %+v", subject, got, c)
			}
		}
	}
	// Known is not stored: a consent applied is known, whatever Known said.
	s.Apply(KindUser, "unknown-flag", at(0), policy.Consent{Purposes: policy.Analytics})
	if got := s.At(KindUser, "unknown-flag", at(0)); got != consent(policy.Analytics) {
		t.Errorf("applied with Known false: got %+v", got)
	}
}

func TestForget(t *testing.T) {
	s := New(4, testKeys)
	for _, h := range history {
		s.Apply(KindUser, "alice", h.at, h.c)
	}
	s.Apply(KindUser, "bob", at(0), consent(policy.Analytics))
	s.Forget("alice")
	for _, p := range probes {
		if got := s.At(KindUser, "alice", p.at); got.Known {
			t.Errorf("forgotten, %s: got %+v, want unknown", p.name, got)
		}
	}
	if len(s.older) != 0 {
		t.Errorf("forgotten subject's history kept: %d subjects in older", len(s.older))
	}
	if got := s.At(KindUser, "bob", at(0)); got != consent(policy.Analytics) {
		t.Errorf("another subject: got %+v", got)
	}
	if subjects, suppressed := s.Size(); subjects != 1 || suppressed != 0 {
		t.Errorf("Size: got %d, %d, want 1, 0", subjects, suppressed)
	}
	s.Forget("alice")  // twice
	s.Forget("nobody") // never known
	// A subject that consents again after a tombstone starts afresh.
	s.Apply(KindUser, "alice", at(3*time.Hour), consent(policy.Marketing))
	if got := s.At(KindUser, "alice", at(2*time.Hour)); got.Known {
		t.Errorf("before the new consent: got %+v, want unknown", got)
	}
	if got := s.At(KindUser, "alice", at(3*time.Hour)); got != consent(policy.Marketing) {
		t.Errorf("new consent: got %+v", got)
	}
	if subjects, _ := s.Size(); subjects != 2 {
		t.Errorf("Size: got %d subjects, want 2", subjects)
	}
}

func TestSuppress(t *testing.T) {
	s := New(4, testKeys)
	for _, h := range history {
		s.Apply(KindUser, "alice", h.at, h.c)
	}
	s.Apply(KindUser, "bob", at(0), consent(policy.Analytics))
	if s.Suppressed(KindUser, "alice") || s.Suppressed(KindUser, "bob") || s.Suppressed(KindUser, "") {
		t.Fatal("suppressed before any erasure")
	}

	s.Suppress(KindUser, "alice", at(time.Hour))
	s.Suppress(KindUser, "carol", time.Time{}) // erased without ever consenting, at a time unknown
	if !s.Suppressed(KindUser, "alice") || !s.Suppressed(KindUser, "carol") {
		t.Error("erased subjects not suppressed")
	}
	if s.Suppressed(KindUser, "bob") || s.Suppressed(KindUser, "Alice") || s.Suppressed(KindUser, "") {
		t.Error("a subject never erased is suppressed")
	}
	if got := s.At(KindUser, "alice", at(2*time.Hour)); got.Known {
		t.Errorf("erased subject's consent kept: %+v", got)
	}
	if subjects, suppressed := s.Size(); subjects != 1 || suppressed != 2 {
		t.Errorf("Size: got %d, %d, want 1, 2", subjects, suppressed)
	}

	// For good: neither a later consent record nor a tombstone undoes it,
	// and an erasure read before the subject's consent (the topics are
	// read independently) leaves the same state as after it.
	s.Apply(KindUser, "alice", at(3*time.Hour), consent(policy.Analytics))
	s.Apply(KindUser, "carol", at(0), consent(policy.Analytics))
	s.Forget("alice")
	s.Suppress(KindUser, "alice", at(4*time.Hour)) // twice: the first erasure's time stands
	if !s.Suppressed(KindUser, "alice") || !s.Suppressed(KindUser, "carol") {
		t.Error("suppression undone")
	}
	if s.SuppressedBefore(KindUser, "alice", at(time.Hour-time.Millisecond)) || !s.SuppressedBefore(KindUser, "alice", at(time.Hour)) ||
		!s.SuppressedBefore(KindUser, "carol", at(0)) || s.SuppressedBefore(KindUser, "bob", at(5*time.Hour)) {
		t.Error("SuppressedBefore does not tell links made before an erasure from later ones")
	}
	for _, subject := range []string{"alice", "carol"} {
		if got := s.At(KindUser, subject, at(3*time.Hour)); got.Known {
			t.Errorf("consent applied after erasure of %s: %+v", subject, got)
		}
	}
	// carol's record is held (the list is keyed by pseudonyms, which a
	// consent record's raw id is not checked against on arrival), never
	// answered.
	if subjects, suppressed := s.Size(); subjects != 2 || suppressed != 2 {
		t.Errorf("Size: got %d, %d, want 2, 2", subjects, suppressed)
	}
}

// TestSuppressionRecords: the suppression list is keyed by pseudonyms
// under the key in service, one record per kind erased, and holds no raw
// id; the store honours records under every key of its keyring (a
// retired key's after a rotation), records keyed by a raw id as before
// pseudonyms, and reports one under a key it does not hold.
func TestSuppressionRecords(t *testing.T) {
	old, err := policy.NewKeyring(policy.Key{ID: "t0", Secret: []byte("consentstore-old-key-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := policy.NewKeyring(policy.Key{ID: "t1", Secret: []byte("consentstore-test-key-0123456789abcdef")},
		policy.Key{ID: "t0", Secret: []byte("consentstore-old-key-0123456789abcdef"), Retired: true})
	if err != nil {
		t.Fatal(err)
	}
	requested := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	rec := event.ErasureRecord{SchemaVersion: event.SchemaVersion, RequestID: "r1", Reason: "user_request", RequestedAt: requested, SubjectKind: event.SubjectPreviousID}
	// Written before the rotation, under t0: an alias's previousId, both kinds.
	before := New(2, old).SuppressionRecords("privacy.erasures", "previous-id-raw", rec)
	if len(before) != 2 {
		t.Fatalf("SuppressionRecords: %d records, want one per kind", len(before))
	}
	rec.SubjectKind = event.SubjectUserID
	after := New(2, rotated).SuppressionRecords("privacy.erasures", "user-raw", rec)
	if len(after) != 1 {
		t.Fatalf("SuppressionRecords: %d records, want 1", len(after))
	}
	s := New(2, rotated)
	for _, r := range slices.Concat(before, after) {
		if strings.Contains(string(r.Key)+string(r.Value), "-raw") {
			t.Errorf("suppression record holds a raw id: %s %s", r.Key, r.Value)
		}
		got, err := event.DecodeErasureRecord(r.Value)
		if err != nil || got.SubjectKind == event.SubjectPreviousID {
			t.Errorf("record %s: %+v, %v (want one kind per record)", r.Value, got, err)
		}
		if !s.SuppressRecord(string(r.Key), got) {
			t.Errorf("record under a key of the keyring not applied: %s", r.Key)
		}
	}
	if !s.Suppressed(KindUser, "previous-id-raw") || !s.Suppressed(KindAnonymous, "previous-id-raw") || !s.Suppressed(KindUser, "user-raw") {
		t.Error("erased subjects not suppressed")
	}
	if s.Suppressed(KindAnonymous, "user-raw") || s.Suppressed(KindUser, "someone-else") {
		t.Error("a subject never erased is suppressed")
	}
	if !s.SuppressedBefore(KindUser, "user-raw", requested) || s.SuppressedBefore(KindUser, "user-raw", requested.Add(-time.Millisecond)) {
		t.Error("the erasure's time is lost")
	}
	// A subject hashed before a key was listed is still found.
	early := New(2, rotated)
	sub := early.Subject(KindUser, "user-raw")
	early.SuppressRecord(string(after[0].Key), rec)
	if !early.SuppressedSubject(sub) {
		t.Error("a subject hashed before its key was listed is not suppressed")
	}
	// A record keyed by the raw id, as before pseudonyms.
	legacy := New(2, rotated)
	legacy.SuppressRecord("legacy-raw", event.ErasureRecord{SubjectKind: event.SubjectAnonymousID, RequestedAt: requested})
	if !legacy.Suppressed(KindAnonymous, "legacy-raw") || legacy.Suppressed(KindUser, "legacy-raw") {
		t.Error("a record keyed by a raw id does not suppress its kind")
	}
	// Under a key the store does not hold.
	if New(2, testKeys).SuppressRecord(string(before[0].Key), rec) {
		t.Error("a pseudonym under an unknown key was reported applied")
	}
}

func TestSize(t *testing.T) {
	s := New(3, testKeys)
	if subjects, suppressed := s.Size(); subjects != 0 || suppressed != 0 {
		t.Fatalf("empty store: got %d, %d", subjects, suppressed)
	}
	for i := range 1000 {
		subject := fmt.Sprintf("user-%04d", i)
		s.Apply(KindUser, subject, at(0), consent(policy.Analytics))
		if i%10 == 0 { // history does not count as subjects
			s.Apply(KindUser, subject, at(time.Hour), consent(policy.Marketing))
		}
	}
	for i := range 100 {
		s.Forget(fmt.Sprintf("user-%04d", i))
	}
	for i := 100; i < 150; i++ {
		s.Suppress(KindUser, fmt.Sprintf("user-%04d", i), at(0))
	}
	s.Suppress(KindUser, "never-consented", time.Time{})
	if subjects, suppressed := s.Size(); subjects != 850 || suppressed != 51 {
		t.Errorf("Size: got %d, %d, want 850, 51", subjects, suppressed)
	}
}

// TestSubjectsAreNotConfused: every subject answers with its own consent
// (the hashed keys keep similar ids apart).
func TestSubjectsAreNotConfused(t *testing.T) {
	s := New(2, testKeys)
	const n = 50000
	for i := range n {
		s.Apply(KindUser, fmt.Sprintf("anon-%08x", i), at(time.Duration(i)*time.Millisecond), consent(policy.Purposes(i%16)))
	}
	for i := range n {
		subject := fmt.Sprintf("anon-%08x", i)
		if got := s.At(KindUser, subject, at(time.Duration(i)*time.Millisecond)); got != consent(policy.Purposes(i%16)) {
			t.Fatalf("%s: got %+v", subject, got)
		}
		if got := s.At(KindUser, subject, at(time.Duration(i-1)*time.Millisecond)); got.Known {
			t.Fatalf("%s before its consent: got %+v", subject, got)
		}
	}
	if subjects, _ := s.Size(); subjects != n {
		t.Errorf("Size: got %d subjects, want %d", subjects, n)
	}
}

// TestConcurrentUse has writers apply the changes of the same subjects at
// once, in different orders, while readers watch: every answer a reader
// gets must be one whole change of its subject (no torn or foreign
// value), a subject's latest change must never go back in time and its
// suppression never lift, and once the writers are done the store must
// answer, at every time, exactly as one that applied the same changes one
// after the other (no change lost or misplaced). Under -race it also
// proves the locking.
func TestConcurrentUse(t *testing.T) {
	const (
		writers  = 4
		rounds   = 400 // changes per writer and subject
		subjects = 6
	)
	name := make([]string, subjects)
	for j := range name {
		name[j] = fmt.Sprintf("user-%d", j)
	}
	// The change at second n of subject j, n = round*writers + writer:
	// times never collide, and the value says whose change it is.
	change := func(j, n int) policy.Consent {
		return policy.Consent{Known: true, Purposes: policy.Purposes((j + n) % 16), CrossBorder: (j+n)%3 == 0}
	}
	erased := func(j int) bool { return j%3 == 1 }
	// Every change is kept, so that one lost shows in the end.
	const history = writers * rounds

	s := New(history, testKeys)
	var writing, reading sync.WaitGroup
	start := make(chan struct{}) // so that the writers overlap
	for w := range writers {
		writing.Go(func() {
			<-start
			for i := range rounds {
				for k := range subjects {
					j := (k + i) % subjects // together on one subject at a time
					n := i*writers + w
					s.Apply(KindUser, name[j], at(time.Duration(n)*time.Second), change(j, n))
					if erased(j) && i == rounds/2 && w == j%writers {
						s.Suppress(KindUser, name[j], at(time.Duration(n)*time.Second))
					}
				}
			}
		})
	}
	done := make(chan struct{})
	for range 2 {
		reading.Go(func() {
			<-start
			latest := make([]time.Time, subjects)
			suppressed := make([]bool, subjects)
			for {
				select {
				case <-done:
					return
				default:
				}
				for j := range subjects {
					c, when := s.Latest(KindUser, name[j])
					if c.Known {
						n := int(when.Sub(t0) / time.Second)
						if c != change(j, n) {
							t.Errorf("%s: Latest is %+v at %v, not the change made then (%+v)", name[j], c, when, change(j, n))
							return
						}
						if when.Before(latest[j]) {
							t.Errorf("%s: latest change went back from %v to %v", name[j], latest[j], when)
							return
						}
						latest[j] = when
					}
					if got := s.Suppressed(KindUser, name[j]); got {
						suppressed[j] = true
						if !erased(j) {
							t.Errorf("%s is suppressed, and was never erased", name[j])
							return
						}
						if c, _ := s.Latest(KindUser, name[j]); c.Known {
							t.Errorf("%s: suppressed, yet consent %+v", name[j], c)
							return
						}
					} else if suppressed[j] {
						t.Errorf("%s: suppression lifted", name[j])
						return
					}
				}
			}
		})
	}
	close(start)
	writing.Wait()
	close(done)
	reading.Wait()

	want, erasedSubjects := New(history, testKeys), 0
	for j := range subjects {
		for n := range rounds * writers {
			want.Apply(KindUser, name[j], at(time.Duration(n)*time.Second), change(j, n))
		}
		if erased(j) {
			want.Suppress(KindUser, name[j], time.Time{})
			erasedSubjects++
		}
	}
	for j := range subjects {
		if got := s.Suppressed(KindUser, name[j]); got != erased(j) {
			t.Errorf("%s: Suppressed = %v, want %v", name[j], got, erased(j))
		}
		for half := -1; half <= 2*rounds*writers; half++ {
			probe := at(time.Duration(half) * time.Second / 2)
			if got, w := s.At(KindUser, name[j], probe), want.At(KindUser, name[j], probe); got != w {
				t.Errorf("%s at %v: %+v, applied one by one %+v", name[j], probe, got, w)
				break
			}
		}
	}
	if _, got := s.Size(); got != erasedSubjects {
		t.Errorf("suppressed subjects = %d, want %d", got, erasedSubjects)
	}
}

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// TestHashedSubjects checks that lookups by hashed subject answer as
// lookups by id do.
func TestHashedSubjects(t *testing.T) {
	s := New(4, testKeys)
	at := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	s.Apply(KindUser, "u1", at, policy.Consent{Known: true, Purposes: policy.Analytics})
	s.Apply(KindUser, "a1", at.Add(time.Minute), policy.Consent{Known: true, Purposes: policy.Marketing, CrossBorder: true})
	s.ApplyCarried(KindUser, "a2", at, policy.Carried{Named: policy.Analytics, Granted: policy.Analytics})
	s.Apply(KindUser, "u3", at.Add(time.Hour), policy.Consent{Known: true, Purposes: policy.Personalization})
	s.Suppress(KindUser, "gone", at)
	ids := []string{"", "u1", "a1", "a2", "u3", "gone", "nobody"}
	for _, when := range []time.Time{at.Add(-time.Second), at, at.Add(30 * time.Second), at.Add(2 * time.Hour)} {
		for _, a := range ids {
			if got, want := s.SuppressedSubject(s.Subject(KindUser, a)), s.Suppressed(KindUser, a); got != want {
				t.Errorf("SuppressedSubject(%q) = %v, want %v", a, got, want)
			}
			if got, want := s.InForce(when, s.Subject(KindUser, a), Subject{}, Subject{}), s.At(KindUser, a, when); got != want {
				t.Errorf("InForce(%v, %q) = %+v, want At's %+v", when, a, got, want)
			}
		}
	}
}

// TestErasedKinds: an erasure erases the kind of identifier it names; an
// alias's previousId, or a record that does not say, both.
func TestErasedKinds(t *testing.T) {
	for kind, want := range map[string][]Kind{
		event.SubjectUserID: {KindUser}, event.SubjectAnonymousID: {KindAnonymous},
		event.SubjectPreviousID: {KindUser, KindAnonymous}, "": {KindUser, KindAnonymous},
	} {
		if got := erasedKinds(kind); !slices.Equal(got, want) {
			t.Errorf("erasedKinds(%q) = %v, want %v", kind, got, want)
		}
	}
}

// testKeys is the keyring the tests' suppression lists are keyed under.
var testKeys = func() *policy.Keyring {
	k, err := policy.NewKeyring(policy.Key{ID: "t1", Secret: []byte("consentstore-test-key-0123456789abcdef")})
	if err != nil {
		panic(err)
	}
	return k
}()
