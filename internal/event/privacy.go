package event

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The privacy records: what erasure requests, identity links, erasure notices
// and receipts look like on their topics (ARCHITECTURE.md has the flow).
//
//   - ErasureRecord: privacy.erasures, keyed by the erased identifier's
//     in-region pseudonym, one record per kind of identifier. Compacted,
//     never tombstoned: the suppression list. The same value goes to
//     privacy.erasure-requests keyed by the raw identifier (in region
//     only, deleted after its retention), for the enricher to pass on.
//   - IdentityLink: privacy.identities, keyed by an anonymousId (or an alias's
//     previousId); a tombstone forgets the link.
//   - ErasureNotice: privacy.erasures.<region or destination>, keyed by the
//     subject's pseudonym. Pseudonyms only: it may cross a border.
//   - Receipt: privacy.receipts, keyed by Receipt.Key. Pseudonyms only.

// ErasureReasons are the reasons an erasure may be asked for.
var ErasureReasons = []string{"account_cancelled", "consent_withdrawn", "user_request"}

// ReasonLinkedToErased is the reason of the erasure the enricher records
// itself when an identify or alias links a device to a userId already
// erased: the device's earlier events go too.
const ReasonLinkedToErased = "linked_to_erased_user"

// Subject kinds: which identifier an erasure record's key is.
const (
	SubjectUserID      = "userId"
	SubjectAnonymousID = "anonymousId"
	// SubjectPreviousID is an alias's previousId, linked to an erased
	// userId: it may have been a userId or an anonymousId, and is erased
	// as both.
	SubjectPreviousID = "previousId"
)

// ErasureRecord is the value of a privacy.erasures record (keyed by the
// erased identifier's pseudonym) or of an erasure request (keyed by the
// identifier); the value never names the identifier.
type ErasureRecord struct {
	SchemaVersion int    `json:"schemaVersion"`
	RequestID     string `json:"requestId"`
	// Reason is one of ErasureReasons.
	Reason string `json:"reason"`
	// Operator is the name (privacy.operators[].name) of who asked.
	Operator    string    `json:"operator"`
	RequestedAt time.Time `json:"requestedAt"`
	// SubjectKind says which identifier the key is: userId or anonymousId.
	SubjectKind string `json:"subjectKind"`
	// Linked is true for an anonymousId erased because it was linked to an
	// erased userId: the userId's notice already covers it.
	Linked bool `json:"linked,omitempty"`
	// KeyCheck is the collector's pseudonym of a fixed value under its key
	// in service (policy.Pseudonymizer.Check): the enricher compares it with
	// its own, so a collector keyed apart from it (its exports and receipts
	// would miss the subject's rows) is seen.
	KeyCheck string `json:"keyCheck,omitempty"`
}

// DecodeErasureRecord parses and checks a privacy.erasures value.
func DecodeErasureRecord(raw []byte) (ErasureRecord, error) {
	var r ErasureRecord
	if err := strictUnmarshal(raw, &r, "requestedAt"); err != nil {
		return ErasureRecord{}, err
	}
	if err := checkVersion(r.SchemaVersion); err != nil {
		return ErasureRecord{}, err
	}
	switch {
	case r.RequestID == "":
		return ErasureRecord{}, &FieldError{Field: "requestId", Msg: "is required"}
	case r.SubjectKind != SubjectUserID && r.SubjectKind != SubjectAnonymousID && r.SubjectKind != SubjectPreviousID:
		want := fmt.Sprintf("must be %s, %s or %s", SubjectUserID, SubjectAnonymousID, SubjectPreviousID)
		return ErasureRecord{}, &FieldError{Field: "subjectKind", Msg: fmt.Sprintf("%s, got %q", want, r.SubjectKind), Redacted: want}
	case !slices.Contains(ErasureReasons, r.Reason) && r.Reason != ReasonLinkedToErased:
		want := fmt.Sprintf("must be one of %s, %s", strings.Join(ErasureReasons, ", "), ReasonLinkedToErased)
		return ErasureRecord{}, &FieldError{Field: "reason", Msg: fmt.Sprintf("%s, got %q", want, r.Reason), Redacted: want}
	case !InRange(r.RequestedAt):
		return ErasureRecord{}, &FieldError{Field: "requestedAt", Msg: "is required"}
	}
	return r, nil
}

// IdentityLink is the value of a privacy.identities record: the record's key
// (an anonymousId, or the previousId of an alias) belongs to UserID.
type IdentityLink struct {
	SchemaVersion int       `json:"schemaVersion"`
	UserID        string    `json:"userId"`
	LinkedAt      time.Time `json:"linkedAt"`
	// Via is the event type that made the link: identify (the key is an
	// anonymousId) or alias (the key is a previousId, a userId or an
	// anonymousId). Empty in links written before it was recorded: read
	// as alias, the wider.
	Via string `json:"via,omitempty"`
}

// Aliased reports whether the link's key may be a userId: an alias's
// previousId, or a link that does not say.
func (l IdentityLink) Aliased() bool { return l.Via != "identify" }

// DecodeIdentityLink parses and checks a privacy.identities value.
func DecodeIdentityLink(raw []byte) (IdentityLink, error) {
	var l IdentityLink
	if err := strictUnmarshal(raw, &l, "linkedAt"); err != nil {
		return IdentityLink{}, err
	}
	if err := checkVersion(l.SchemaVersion); err != nil {
		return IdentityLink{}, err
	}
	if l.UserID == "" {
		return IdentityLink{}, &FieldError{Field: "userId", Msg: "is required"}
	}
	return l, nil
}

// ErasureNotice tells one region or destination which subjects to delete,
// as that destination's pseudonyms under every key of its keyring (a
// rotated key's rows must go too). It never holds a raw identifier.
type ErasureNotice struct {
	SchemaVersion int       `json:"schemaVersion"`
	RequestID     string    `json:"requestId"`
	Reason        string    `json:"reason"`
	RequestedAt   time.Time `json:"requestedAt"`
	// Destination is the region or export destination the notice is for.
	Destination string `json:"destination"`
	// Users are pseudonyms of the erased userId; AnonymousIDs of the
	// erased anonymousId or of those linked to the erased userId.
	Users        []string `json:"users,omitempty"`
	AnonymousIDs []string `json:"anonymousIds,omitempty"`
}

// Pseudonyms lists every pseudonym of the notice.
func (n *ErasureNotice) Pseudonyms() []string {
	return append(slices.Clone(n.Users), n.AnonymousIDs...)
}

// DecodeErasureNotice parses and checks a privacy.erasures.<...> value.
func DecodeErasureNotice(raw []byte) (ErasureNotice, error) {
	var n ErasureNotice
	if err := strictUnmarshal(raw, &n, "requestedAt"); err != nil {
		return ErasureNotice{}, err
	}
	if err := checkVersion(n.SchemaVersion); err != nil {
		return ErasureNotice{}, err
	}
	switch {
	case n.RequestID == "":
		return ErasureNotice{}, &FieldError{Field: "requestId", Msg: "is required"}
	case len(n.Users)+len(n.AnonymousIDs) == 0:
		return ErasureNotice{}, &FieldError{Field: "users", Msg: "users or anonymousIds must hold a pseudonym"}
	case slices.Contains(n.Users, "") || slices.Contains(n.AnonymousIDs, ""):
		return ErasureNotice{}, &FieldError{Field: "users", Msg: "must not hold an empty pseudonym"}
	case !InRange(n.RequestedAt):
		return ErasureNotice{}, &FieldError{Field: "requestedAt", Msg: "is required"}
	}
	return n, nil
}

// Receipt kinds and stages.
const (
	ReceiptErasure = "erasure"
	ReceiptExport  = "export"

	StageCollector = "collector"
	StageEnricher  = "enricher"
	StageSink      = "sink"
)

// Receipt statuses.
const (
	// StatusAccepted: the collector recorded the request.
	StatusAccepted = "accepted"
	// StatusNotified: the enricher suppressed the subject and sent notices
	// to Destinations.
	StatusNotified = "notified"
	// StatusDeleted: a sink deleted the subject's rows and verified none
	// remain.
	StatusDeleted = "deleted"
	// StatusServed: an export was answered.
	StatusServed = "served"
	// StatusFailed: the stage gave up; Error says why.
	StatusFailed = "failed"
)

// Receipt is one stage's account of a privacy request: the value of a
// privacy.receipts record and a row of the audit table. Pseudonyms only.
type Receipt struct {
	SchemaVersion int    `json:"schemaVersion"`
	RequestID     string `json:"requestId"`
	Kind          string `json:"kind"`
	Stage         string `json:"stage"`
	// Destination is the region or export destination of a sink receipt.
	Destination string `json:"destination,omitempty"`
	Status      string `json:"status"`
	Operator    string `json:"operator,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Subject is the erased or exported subject's in-region pseudonym.
	Subject     string    `json:"subject,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
	At          time.Time `json:"at"`
	// Subjects is how many identifiers the request names (a userId and an
	// anonymousId are two): each gets a receipt per later stage.
	Subjects int `json:"subjects,omitempty"`
	// Destinations are the regions and destinations the enricher notified.
	Destinations []string `json:"destinations,omitempty"`
	// LinkedAnonymousIDs counts the anonymousIds erased with a userId.
	LinkedAnonymousIDs int `json:"linkedAnonymousIds,omitempty"`
	// Rows is what a sink found and deleted, or an export returned.
	Rows int64 `json:"rows"`
	// Mutations is how many ALTER TABLE ... DELETE the deletion took (one
	// mutation serves every erasure of its window).
	Mutations int    `json:"mutations,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Key is the receipt's record key: one per request, stage, destination and
// subject, so compaction keeps each one's latest word.
func (r *Receipt) Key() string {
	key := r.RequestID + "/" + r.Stage
	for _, part := range []string{r.Destination, r.Subject} {
		if part != "" {
			key += "/" + part
		}
	}
	return key
}

// DecodeReceipt parses and checks a privacy.receipts value.
func DecodeReceipt(raw []byte) (Receipt, error) {
	var r Receipt
	if err := strictUnmarshal(raw, &r, "requestedAt or at"); err != nil {
		return Receipt{}, err
	}
	if err := checkVersion(r.SchemaVersion); err != nil {
		return Receipt{}, err
	}
	switch {
	case r.RequestID == "":
		return Receipt{}, &FieldError{Field: "requestId", Msg: "is required"}
	case r.Kind != ReceiptErasure && r.Kind != ReceiptExport:
		want := fmt.Sprintf("must be %s or %s", ReceiptErasure, ReceiptExport)
		return Receipt{}, &FieldError{Field: "kind", Msg: fmt.Sprintf("%s, got %q", want, r.Kind), Redacted: want}
	case r.Stage == "":
		return Receipt{}, &FieldError{Field: "stage", Msg: "is required"}
	case r.Status == "":
		return Receipt{}, &FieldError{Field: "status", Msg: "is required"}
	case !InRange(r.At):
		return Receipt{}, &FieldError{Field: "at", Msg: "is required"}
	}
	return r, nil
}

func checkVersion(v int) error {
	if v != SchemaVersion {
		return versionError(v)
	}
	return nil
}

// EncodeReceipt is r as a privacy.receipts value.
func EncodeReceipt(r *Receipt) ([]byte, error) { return json.Marshal(r) }
