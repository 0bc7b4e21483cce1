package event

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Purposes are the uses of personal information a subject consents to, one
// by one. An event is used for a purpose only when consent for it is known
// and granted.
var Purposes = []string{"analytics", "personalization", "marketing", "third_party_sharing"}

// ConsentUpdate is the body of POST /v1/consent: the subject's whole consent
// state as of Timestamp. A purpose left out is not granted, so a client that
// forgets one withholds it rather than granting it; Minor left out keeps
// the subject's previous value. Who may set what is policy.AuthorizeConsent's
// to say.
type ConsentUpdate struct {
	UserID      string          `json:"userId,omitempty"`
	AnonymousID string          `json:"anonymousId,omitempty"`
	Purposes    map[string]bool `json:"purposes"`
	// CrossBorder consents to transfer out of the home region
	// (de-identified first).
	CrossBorder bool `json:"crossBorder"`
	// Minor marks a subject under 14 (nil: as before); GuardianConsent is
	// a guardian's consent for one.
	Minor           *bool  `json:"minor,omitempty"`
	GuardianConsent bool   `json:"guardianConsent"`
	Timestamp       string `json:"timestamp,omitempty"`
	SentAt          string `json:"sentAt,omitempty"`
	// WriteKey is accepted in the body as in the event endpoints.
	WriteKey string `json:"writeKey,omitempty"`
	// ConsentToken is a consent token (internal/consenttoken) the first
	// party's backend issued: it vouches for grants a client source may not
	// make on its own word.
	ConsentToken string `json:"consentToken,omitempty"`
}

// Authorities: on whose word a privacy.consent record was written.
const (
	// AuthorityServer: a server source's request.
	AuthorityServer = "server"
	// AuthorityClient: a client source's request, within what a client
	// may say.
	AuthorityClient = "client"
	// AuthorityToken: a client source's request that a consent token
	// vouched for.
	AuthorityToken = "token"
	// AuthorityEvent: consent carried in an event, written by the
	// enricher.
	AuthorityEvent = "event"
)

// ConsentState is the value of a privacy.consent record, keyed by Subject.
type ConsentState struct {
	SchemaVersion int    `json:"schemaVersion"`
	Subject       string `json:"subject"`
	UserID        string `json:"userId,omitempty"`
	AnonymousID   string `json:"anonymousId,omitempty"`
	// Purposes holds every purpose of Purposes, granted or not.
	Purposes        map[string]bool `json:"purposes"`
	CrossBorder     bool            `json:"crossBorder"`
	Minor           bool            `json:"minor"`
	GuardianConsent bool            `json:"guardianConsent"`
	// UpdatedAt is when the subject gave this consent (clock-corrected);
	// events are judged by the consent in force at their own time.
	UpdatedAt  time.Time `json:"updatedAt"`
	ReceivedAt time.Time `json:"receivedAt"`
	SourceID   string    `json:"sourceId"`
	Region     string    `json:"region"`
	// Authority is on whose word the record was written (Authority*);
	// empty in records written before it was recorded.
	Authority string `json:"authority,omitempty"`
	// TokenKeyID is the id of the key that signed the consent token that
	// vouched for the record, if any.
	TokenKeyID string `json:"tokenKeyId,omitempty"`
}

// DecodeConsentUpdate parses and validates a consent update.
func DecodeConsentUpdate(raw []byte) (ConsentUpdate, error) {
	var u ConsentUpdate
	if err := strictUnmarshal(raw, &u, ""); err != nil {
		return ConsentUpdate{}, err
	}
	if u.UserID == "" && u.AnonymousID == "" {
		return ConsentUpdate{}, &FieldError{Field: "userId", Msg: "userId or anonymousId is required"}
	}
	for _, f := range []struct{ name, value string }{{"userId", u.UserID}, {"anonymousId", u.AnonymousID}} {
		if len(f.value) > MaxIDBytes {
			return ConsentUpdate{}, &FieldError{Field: f.name, Msg: fmt.Sprintf("is %d bytes, more than %d", len(f.value), MaxIDBytes)}
		}
	}
	if u.Purposes == nil {
		return ConsentUpdate{}, &FieldError{Field: "purposes", Msg: fmt.Sprintf("is required: an object of %s to true or false", strings.Join(Purposes, ", "))}
	}
	names := make([]string, 0, len(u.Purposes))
	for name := range u.Purposes {
		names = append(names, name)
	}
	slices.Sort(names) // report the same unknown purpose every time
	for _, name := range names {
		if !slices.Contains(Purposes, name) {
			return ConsentUpdate{}, &FieldError{Field: "purposes." + name, Msg: fmt.Sprintf("unknown purpose (want %s)", strings.Join(Purposes, ", "))}
		}
	}
	for _, f := range []struct{ name, value string }{{"timestamp", u.Timestamp}, {"sentAt", u.SentAt}} {
		if _, err := ParseTime(f.value); err != nil {
			return ConsentUpdate{}, timeFieldError(f.name, err)
		}
	}
	return u, nil
}

// State is the consent record the update produces, received at receivedAt
// from source in region; Minor left out reads as false, for the caller to
// resolve against the subject's previous state.
func (u ConsentUpdate) State(receivedAt time.Time, source, region string) ConsentState {
	ts, _ := ParseTime(u.Timestamp) // validated by DecodeConsentUpdate
	sent, _ := ParseTime(u.SentAt)
	purposes := make(map[string]bool, len(Purposes))
	for _, p := range Purposes {
		purposes[p] = u.Purposes[p]
	}
	subject := u.UserID
	if subject == "" {
		subject = u.AnonymousID
	}
	return ConsentState{
		SchemaVersion:   SchemaVersion,
		Subject:         subject,
		UserID:          u.UserID,
		AnonymousID:     u.AnonymousID,
		Purposes:        purposes,
		CrossBorder:     u.CrossBorder,
		Minor:           u.Minor != nil && *u.Minor,
		GuardianConsent: u.GuardianConsent,
		UpdatedAt:       CorrectTimestamp(ts, sent, receivedAt).UTC(),
		ReceivedAt:      receivedAt.UTC(),
		SourceID:        source,
		Region:          region,
	}
}

// DecodeConsentState parses a privacy.consent record value.
func DecodeConsentState(raw []byte) (ConsentState, error) {
	var s ConsentState
	if err := strictUnmarshal(raw, &s, "updatedAt or receivedAt"); err != nil {
		return ConsentState{}, err
	}
	if s.SchemaVersion != SchemaVersion {
		return ConsentState{}, versionError(s.SchemaVersion)
	}
	if s.Subject == "" {
		return ConsentState{}, &FieldError{Field: "subject", Msg: "is required"}
	}
	if !InRange(s.UpdatedAt) {
		return ConsentState{}, &FieldError{Field: "updatedAt", Msg: fmt.Sprintf("must be between %d and %d", MinTime.Year(), MaxTime.Year()-1)}
	}
	return s, nil
}
