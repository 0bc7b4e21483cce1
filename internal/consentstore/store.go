// Package consentstore is the enricher's local copy of every subject's
// consent and of the suppression list: it materializes the compacted
// privacy.consent topic and the privacy.erasures log (a global table: every
// instance holds every subject) and answers "what consent was in force for
// this subject at this time" without I/O.
//
// Data contract: a privacy.consent record is an event.ConsentState keyed by
// subject id; a null value (tombstone) forgets the subject; one that cannot
// be read makes its subject's consent known to grant nothing (fail
// closed). A privacy.erasures record suppresses its key's subject for
// good, whatever its value (its requestedAt, when readable, dates the
// suppression); its key is the subject's in-region pseudonym (of the kind
// its subjectKind names) under a key of the keyring, never the raw id, so
// the log kept forever holds no identifier (SuppressionRecords writes
// them; a record keyed by a raw id, as before pseudonyms, still counts).
// A null value there is `enricher erasures rekey`'s tombstone of a raw key
// whose pseudonym-keyed records it wrote first, and changes nothing.
// A suppressed subject has no consent. Subjects are held as 128-bit
// hashes, never as raw ids.
//
// The enricher judges events by it; the collector judges consent updates
// by it (who may grant what depends on what is granted). Metrics:
// <service>_consent_records_total{kind}, <service>_consent_store_subjects,
// <service>_consent_store_suppressed_subjects,
// <service>_consent_store_rebuild_seconds.
//
// Memory: a subject with one consent change costs one map entry of a
// 16-byte key and an 8-byte value (about 40-60 bytes with the map's
// overhead); older changes of a subject, up to Store's history limit, cost
// 8 bytes each in a second map. The maps hold no pointers, so the garbage
// collector does not scan them.
package consentstore

import (
	"cmp"
	"encoding/json"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// key is a subject id hashed with two per-process seeds of its kind: 128
// bits make a collision (one subject judged by another's consent) out of
// reach, and a userId never shares a key with an anonymousId spelt alike.
type key [2]uint64

// Kind is which identifier a subject id is. The two are kept apart: a
// client may speak for its anonymousId, never for a userId spelt the same.
type Kind uint8

// The kinds of subject ids.
const (
	KindUser Kind = iota
	KindAnonymous
)

// kindNames are the pseudonym kinds of Kinds: a suppression list key is
// the id's in-region pseudonym.
var kindNames = [2]string{KindUser: policy.KindUser, KindAnonymous: policy.KindAnonymous}

// change is one consent change packed into 8 bytes: granted purposes in
// bits 0-3, cross-border, minor and guardian consent in bits 4-6; bit 7
// marks consent carried in an event, which changes only the purposes named
// in bits 8-11; the time in milliseconds since 1970 is above.
type change uint64

const (
	flagCrossBorder = 1 << (4 + iota)
	flagMinor
	flagGuardian
	flagCarried
)

const (
	namedShift = 8
	timeShift  = 12
	// maxMillis is the latest time a change holds.
	maxMillis = 1<<(64-timeShift) - 1
)

// packTime clamps: times outside 1970..2100 are refused upstream, and one
// that slipped through must not wrap into another time.
func packTime(at time.Time) change {
	return change(uint64(min(max(at.UnixMilli(), 0), maxMillis)) << timeShift)
}

func pack(at time.Time, c policy.Consent) change {
	v := packTime(at) | change(c.Purposes&0x0f)
	if c.CrossBorder {
		v |= flagCrossBorder
	}
	if c.Minor {
		v |= flagMinor
	}
	if c.GuardianConsent {
		v |= flagGuardian
	}
	return v
}

func packCarried(at time.Time, ch policy.Carried) change {
	return packTime(at) | flagCarried | change(ch.Named&0x0f)<<namedShift | change(ch.Granted&ch.Named&0x0f)
}

func (c change) at() int64 { return int64(c >> timeShift) }

func (c change) carried() bool { return c&flagCarried != 0 }

// order sorts changes by time, a full record before consent carried at the
// same millisecond; two changes are the same change when it is equal.
func (c change) order() int64 {
	if c.carried() {
		return c.at()<<1 | 1
	}
	return c.at() << 1
}

func (c change) consent() policy.Consent {
	return policy.Consent{Known: true, Purposes: policy.Purposes(c & 0x0f),
		CrossBorder: c&flagCrossBorder != 0, Minor: c&flagMinor != 0, GuardianConsent: c&flagGuardian != 0}
}

func (c change) carriedChange() policy.Carried {
	return policy.Carried{Named: policy.Purposes(c>>namedShift) & 0x0f, Granted: policy.Purposes(c & 0x0f)}
}

// Store holds consent and suppression by subject. Safe for concurrent use.
type Store struct {
	seeds      [2][2]maphash.Seed // by Kind
	maxHistory int
	// keys compute the pseudonyms the suppression list is keyed by; nil
	// (a collector without the privacy API) suppresses nothing.
	keys *policy.Keyring
	// listed are the keys the suppression list holds pseudonyms under:
	// a lookup computes an id's pseudonym under each.
	listed atomic.Pointer[[]*policy.Pseudonymizer]

	mu         sync.RWMutex
	latest     map[key]change
	older      map[key][]change // ascending by time; only subjects with several changes
	suppressed map[key]int64    // by pseudonym: when the erasure was requested, in ms since 1970
	// recorded holds when each subject's latest record was received (ms),
	// if TrackRecorded was called: what a consent token's age is judged by.
	recorded map[key]int64
}

// TrackRecorded makes the store remember when each subject's latest
// record was received (Recorded), at about 40 bytes a subject.
func (s *Store) TrackRecorded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recorded == nil {
		s.recorded = map[key]int64{}
	}
}

// NoteRecorded remembers that a record of the subject was received at t,
// if the store tracks it.
func (s *Store) NoteRecorded(kind Kind, subject string, t time.Time) {
	k := s.key(kind, subject)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recorded != nil && t.UnixMilli() > s.recorded[k] {
		s.recorded[k] = t.UnixMilli()
	}
}

// Recorded returns when the subject's latest record was received (zero
// when unknown or not tracked).
func (s *Store) Recorded(kind Kind, subject string) time.Time {
	k := s.key(kind, subject)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ms, ok := s.recorded[k]; ok {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// New returns an empty store that remembers, per subject, the latest
// change and up to maxHistory-1 older ones (the consent in force before an
// event older than all of them is unknown: fail closed). keys is the
// in-region keyring the suppression list is keyed under (nil: nothing is
// suppressed).
func New(maxHistory int, keys *policy.Keyring) *Store {
	s := &Store{seeds: [2][2]maphash.Seed{{maphash.MakeSeed(), maphash.MakeSeed()}, {maphash.MakeSeed(), maphash.MakeSeed()}}, maxHistory: max(maxHistory, 1),
		keys: keys, latest: map[key]change{}, older: map[key][]change{}, suppressed: map[key]int64{}}
	s.listed.Store(&[]*policy.Pseudonymizer{})
	return s
}

// listedKey is the suppression list's key of id under a listed key: its
// pseudonym, hashed as key would hash it, without allocating it.
func (s *Store) listedKey(kind Kind, key *policy.Pseudonymizer, id string) key {
	var buf policy.PseudonymBuffer
	p := key.AppendPseudonym(&buf, kindNames[kind], id)
	seeds := &s.seeds[kind&1]
	return [2]uint64{maphash.Bytes(seeds[0], p), maphash.Bytes(seeds[1], p)}
}

func (s *Store) key(kind Kind, subject string) key {
	seeds := &s.seeds[kind&1]
	return key{maphash.String(seeds[0], subject), maphash.String(seeds[1], subject)}
}

// Apply records that the subject's consent is c from at on (a
// privacy.consent record). Applying the same change twice changes nothing,
// so replays are harmless.
func (s *Store) Apply(kind Kind, subject string, at time.Time, c policy.Consent) {
	s.insert(s.key(kind, subject), pack(at, c))
}

// ApplyCarried records consent carried in one of the subject's events at
// its time: it changes the purposes it names, on top of whatever full
// record is in force then, even one recorded later.
func (s *Store) ApplyCarried(kind Kind, subject string, at time.Time, ch policy.Carried) {
	s.insert(s.key(kind, subject), packCarried(at, ch))
}

func (s *Store) insert(k key, ch change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.latest[k]
	if ok && ch.carried() {
		// Consent carried in an event that changes nothing is not kept: SDKs
		// repeat it on every event, and a history full of it would push out
		// the full record (and its minor flag) that it stands on.
		if before, _ := consentAt(cur, s.older[k], ch.at()); before.Known && before.With(ch.carriedChange()) == before {
			return
		}
	}
	switch {
	case !ok:
		s.latest[k] = ch
	case cur.order() == ch.order():
		s.latest[k] = ch
	case cur.order() < ch.order():
		s.latest[k] = ch
		s.addOlder(k, cur)
	default:
		s.addOlder(k, ch)
	}
}

// addOlder inserts a change that is not the latest, keeping the history
// sorted and within its bound.
func (s *Store) addOlder(k key, ch change) {
	if s.maxHistory == 1 {
		return
	}
	h := s.older[k]
	i, found := slices.BinarySearchFunc(h, ch, func(a, b change) int { return cmp.Compare(a.order(), b.order()) })
	if found {
		h[i] = ch
		return
	}
	h = slices.Insert(h, i, ch)
	if cut := len(h) - (s.maxHistory - 1); cut > 0 {
		// The oldest change kept becomes a full record of the consent in
		// force then: a carried change left without the record beneath it
		// would read as if nothing else (minor, cross-border) were known.
		if oldest := h[cut]; oldest.carried() {
			c, _ := consentAt(s.latest[k], h, oldest.at())
			h[cut] = pack(time.UnixMilli(oldest.at()), c)
		}
		h = slices.Delete(h, 0, cut)
	}
	s.older[k] = h
}

// Forget drops everything known of the consent of subject, as a userId
// and as an anonymousId (a tombstone, whose key says not which).
func (s *Store) Forget(subject string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, kind := range [2]Kind{KindUser, KindAnonymous} {
		k := s.key(kind, subject)
		delete(s.latest, k)
		delete(s.older, k)
	}
}

// Invalidate makes the consent of subject (either kind: the record that
// could not be read does not say) known to grant nothing, and to be a
// minor's, at every time until a later record says otherwise: the state
// before it, possibly a grant since withdrawn or a minor flag, must not
// stay in force, nor be cleared by an update that leaves minor out.
func (s *Store) Invalidate(subject string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, kind := range [2]Kind{KindUser, KindAnonymous} {
		k := s.key(kind, subject)
		delete(s.older, k)
		s.latest[k] = pack(time.UnixMilli(0), policy.Consent{Known: true, Minor: true})
	}
}

// Suppress marks the subject erased, for good, as its suppression record
// under the key in service would (SuppressRecord); requestedAt is when
// its erasure was asked for. Its consent is forgotten.
func (s *Store) Suppress(kind Kind, subject string, requestedAt time.Time) {
	if s.keys == nil || subject == "" {
		return
	}
	key := s.keys.At(time.Now())
	s.suppress(kind, key, key.Pseudonym(kindNames[kind], subject), requestedAt)
	k := s.key(kind, subject)
	s.mu.Lock()
	delete(s.latest, k)
	delete(s.older, k)
	s.mu.Unlock()
}

// suppress adds a pseudonym under key to the suppression list.
func (s *Store) suppress(kind Kind, key *policy.Pseudonymizer, pseudonym string, requestedAt time.Time) {
	s.listKey(key)
	k := s.key(kind, pseudonym)
	s.mu.Lock()
	if _, ok := s.suppressed[k]; !ok {
		s.suppressed[k] = requestedAt.UnixMilli()
	}
	s.mu.Unlock()
}

// listKey makes lookups compute pseudonyms under key too.
func (s *Store) listKey(key *policy.Pseudonymizer) {
	for {
		old := s.listed.Load()
		if slices.Contains(*old, key) {
			return
		}
		if s.listed.CompareAndSwap(old, new(append(slices.Clone(*old), key))) {
			return
		}
	}
}

// SuppressedBefore reports whether the subject's erasure was asked for
// before t (or at an unknown time).
func (s *Store) SuppressedBefore(kind Kind, subject string, t time.Time) bool {
	at, ok := s.suppressedAt(s.Subject(kind, subject))
	return ok && at <= t.UnixMilli()
}

// Subject is a subject id as the store keys it. Hashing the id, and
// computing its pseudonyms for the suppression list, is much of a lookup's
// work and needs no lock: a caller that judges events one after the other
// can hash their subjects beforehand, in parallel.
type Subject struct {
	k     key
	valid bool // false for the empty id, which is no subject
	// listed are the id's keys in the suppression list, one per listed
	// key; more keys than fit are computed at lookup from id.
	listed  [2]key
	nListed int
	kind    Kind
	id      string
}

// Subject hashes a subject id of kind for SuppressedSubject and InForce.
func (s *Store) Subject(kind Kind, id string) Subject {
	if id == "" {
		return Subject{}
	}
	sub := Subject{k: s.key(kind, id), valid: true, kind: kind, id: id}
	for _, key := range *s.listed.Load() {
		if sub.nListed == len(sub.listed) {
			break
		}
		sub.listed[sub.nListed] = s.listedKey(kind, key, id)
		sub.nListed++
	}
	return sub
}

// Suppressed reports whether the subject was erased.
func (s *Store) Suppressed(kind Kind, subject string) bool {
	return s.SuppressedSubject(s.Subject(kind, subject))
}

// SuppressedSubject is Suppressed for a hashed subject.
func (s *Store) SuppressedSubject(sub Subject) bool {
	_, ok := s.suppressedAt(sub)
	return ok
}

// suppressedAt is when the subject's erasure was asked for, if it was.
func (s *Store) suppressedAt(sub Subject) (int64, bool) {
	if !sub.valid {
		return 0, false
	}
	keys := s.suppressionKeys(sub)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.suppressedLocked(sub, keys)
}

// suppressionKeys are the subject's keys in the suppression list, one per
// listed pseudonym key. Computing them needs no lock.
func (s *Store) suppressionKeys(sub Subject) []key {
	keys := sub.listed[:sub.nListed]
	if listed := *s.listed.Load(); len(listed) > sub.nListed {
		// Keys listed since the subject was hashed, or more than it holds.
		keys = slices.Clone(keys)
		for _, key := range listed[sub.nListed:] {
			keys = append(keys, s.listedKey(sub.kind, key, sub.id))
		}
	}
	return keys
}

// suppressedLocked is suppressedAt for the subject's keys computed
// beforehand, with s.mu held. A key listed since then is taken in too:
// suppress lists its key before it takes the lock, so an erasure under a
// new key is never missed.
func (s *Store) suppressedLocked(sub Subject, keys []key) (int64, bool) {
	if len(*s.listed.Load()) > len(keys) {
		keys = s.suppressionKeys(sub)
	}
	for _, k := range keys {
		if at, ok := s.suppressed[k]; ok {
			return at, true
		}
	}
	return 0, false
}

// At returns the subject's consent in force at t: the latest full record
// not after t, updated by the consent carried in events between it and t.
// Known is false when nothing is known of the subject at t.
func (s *Store) At(kind Kind, subject string, t time.Time) policy.Consent {
	c, _ := s.at(s.Subject(kind, subject), t)
	return c
}

// Latest returns the subject's consent after its latest change, and that
// change's time (zero when nothing is known).
func (s *Store) Latest(kind Kind, subject string) (policy.Consent, time.Time) {
	c, when := s.at(s.Subject(kind, subject), time.UnixMilli(maxMillis))
	if when < 0 {
		return c, time.Time{}
	}
	return c, time.UnixMilli(when)
}

// InForce is the consent in force at t for an event of a userId and an
// anonymousId, linked the userId the device is linked to (hashed; an
// invalid Subject is none), as policy.InForce combines them.
func (s *Store) InForce(t time.Time, user, anon, linked Subject) policy.Consent {
	u, _ := s.at(user, t)
	a, _ := s.at(anon, t)
	l, _ := s.at(linked, t)
	return policy.InForce(u, a, l)
}

// at is At, and the time of the newest change it took into account.
//
// Suppression and consent are read under one lock: read apart, an erasure
// and a late older change falling between them would make the answer go
// back in time.
func (s *Store) at(sub Subject, t time.Time) (policy.Consent, int64) {
	if !sub.valid {
		return policy.Consent{}, -1
	}
	keys := s.suppressionKeys(sub)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, erased := s.suppressedLocked(sub, keys); erased {
		return policy.Consent{}, -1
	}
	cur, ok := s.latest[sub.k]
	if !ok {
		return policy.Consent{}, -1
	}
	return consentAt(cur, s.older[sub.k], t.UnixMilli())
}

// consentAt is the consent in force at ms by a subject's latest change cur
// and its older ones h (ascending), and the time of the newest change it
// took into account: the latest full record not after ms, updated by the
// carried changes between it and ms.
func consentAt(cur change, h []change, ms int64) (policy.Consent, int64) {
	// Walk back from the newest change to the first full record not after
	// ms, keeping the carried changes passed on the way.
	var carried [8]change
	pending := carried[:0]
	var base change
	found := false
	newest := int64(-1)
	visit := func(c change) bool {
		if c.at() > ms {
			return true
		}
		newest = max(newest, c.at())
		if c.carried() {
			pending = append(pending, c)
			return true
		}
		base, found = c, true
		return false
	}
	if visit(cur) {
		for i := len(h) - 1; i >= 0; i-- {
			if !visit(h[i]) {
				break
			}
		}
	}
	var c policy.Consent
	if found {
		c = base.consent()
	}
	for i := len(pending) - 1; i >= 0; i-- {
		c = c.With(pending[i].carriedChange())
	}
	return c, newest
}

// Size returns the subjects with consent and the suppressed subjects.
func (s *Store) Size() (subjects, suppressed int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.latest), len(s.suppressed)
}

// SuppressRecord applies a privacy.erasures record: key is the erased
// id's pseudonym under a key of the keyring, of the kinds rec.SubjectKind
// names. A key that is no such pseudonym is a raw id, as records were
// keyed before pseudonyms: it counts as that id's. It returns false for a
// pseudonym under a key the keyring does not hold, which cannot be matched.
func (s *Store) SuppressRecord(key string, rec event.ErasureRecord) bool {
	if s.keys == nil {
		return true
	}
	keyID, _, _ := strings.Cut(key, ".")
	for _, kind := range erasedKinds(rec.SubjectKind) {
		switch {
		case RawKeyed(key):
			s.Suppress(kind, key, rec.RequestedAt)
		case s.keys.ByID(keyID) == nil:
			return false
		default:
			s.suppress(kind, s.keys.ByID(keyID), key, rec.RequestedAt)
		}
	}
	return true
}

// RawKeyed reports whether a privacy.erasures key is a raw identifier, as
// before the list was keyed by pseudonyms (`<keyId>.<32 hex>`); `enricher
// erasures rekey` rewrites such records.
func RawKeyed(key string) bool {
	_, mac, ok := strings.Cut(key, ".")
	return !ok || len(mac) != 32 || strings.Trim(mac, "0123456789abcdef") != ""
}

// SuppressionRecords are the privacy.erasures records of an erasure of id
// (of the kinds rec.SubjectKind names) to topic: keyed by the id's
// pseudonym under the key in service, never by the id itself. None
// without a keyring.
func (s *Store) SuppressionRecords(topic, id string, rec event.ErasureRecord) []*kgo.Record {
	if s.keys == nil {
		return nil
	}
	key := s.keys.At(time.Now())
	var out []*kgo.Record
	for _, kind := range erasedKinds(rec.SubjectKind) {
		r := rec
		r.SubjectKind = event.SubjectUserID
		if kind == KindAnonymous {
			r.SubjectKind = event.SubjectAnonymousID
		}
		value, _ := json.Marshal(r) // plain fields: never fails
		out = append(out, &kgo.Record{Topic: topic, Key: []byte(key.Pseudonym(kindNames[kind], id)), Value: value})
	}
	return out
}
