// Package event is the data model that travels between the stages.
//
// Data contract:
//   - Envelope (JSON) is the value of every record in events.raw.<region>:
//     the Segment event as received plus what the collector knows of the
//     request. It holds raw personal information.
//   - Clean (JSON) is the value of every record in events.clean.<region>:
//     pseudonyms in place of identifiers, a truncated IP, and a context cut
//     down to an allow-list (internal/policy).
//
// SchemaVersion changes when a field changes meaning; readers refuse
// versions they do not know rather than guess.
package event

import (
	"encoding/json"
	"time"
)

// SchemaVersion is the version of Envelope and Clean this code writes.
const SchemaVersion = 1

// Envelope is one raw event as the collector received it.
type Envelope struct {
	SchemaVersion int `json:"schemaVersion"`
	// MessageID is the client's messageId, or one the collector generated.
	MessageID string `json:"messageId"`
	// ReceivedAt is the collector's clock when the request arrived.
	ReceivedAt time.Time `json:"receivedAt"`
	// SourceID is the name of the source whose write key was used.
	SourceID string `json:"sourceId"`
	// Region is the home region of the collector deployment.
	Region  string  `json:"region"`
	Signals Signals `json:"signals"`
	Event   Event   `json:"event"`
}

// Signals are facts about the HTTP request, not the event body.
type Signals struct {
	// DNT is true when the request carried "DNT: 1".
	DNT bool `json:"dnt"`
	// GPC is true when the request carried "Sec-GPC: 1".
	GPC bool `json:"gpc"`
	// IP is the client address, through trusted proxies only.
	IP string `json:"ip,omitempty"`
	// UserAgent is the request's User-Agent, cut to MaxUserAgentBytes.
	UserAgent string `json:"userAgent,omitempty"`
	// TrustContextIP says the source may report the end user's address in
	// the event's context.ip (a server-side SDK); otherwise IP stands.
	TrustContextIP bool `json:"trustContextIp,omitempty"`
	// ServerSource says the write key is a server source's (a secret held
	// by a first-party backend); false is a client source's, whose key
	// ships in web pages and apps. Consent carried in events and identity
	// links are believed by it (see internal/policy, "who may say what").
	ServerSource bool `json:"serverSource,omitempty"`
}

// Event is one event of the Segment Tracking API spec. Free-form parts stay
// raw JSON so numbers and unknown fields pass through untouched.
type Event struct {
	Type        string `json:"type"`
	MessageID   string `json:"messageId,omitempty"`
	UserID      string `json:"userId,omitempty"`
	AnonymousID string `json:"anonymousId,omitempty"`
	Event       string `json:"event,omitempty"`
	Name        string `json:"name,omitempty"`
	GroupID     string `json:"groupId,omitempty"`
	PreviousID  string `json:"previousId,omitempty"`
	// Timestamp, OriginalTimestamp and SentAt are ISO 8601 strings;
	// Validate checks they parse (ParseTime). The collector rewrites
	// Timestamp to the clock-corrected time and keeps the device's own in
	// OriginalTimestamp (see CorrectTimestamp).
	Timestamp         string          `json:"timestamp,omitempty"`
	OriginalTimestamp string          `json:"originalTimestamp,omitempty"`
	SentAt            string          `json:"sentAt,omitempty"`
	Context           json.RawMessage `json:"context,omitempty"`
	Properties        json.RawMessage `json:"properties,omitempty"`
	Traits            json.RawMessage `json:"traits,omitempty"`
	Integrations      json.RawMessage `json:"integrations,omitempty"`
}

// SubjectID is who the event is about: the userId when known, else the
// anonymousId.
func (e *Event) SubjectID() string {
	if e.UserID != "" {
		return e.UserID
	}
	return e.AnonymousID
}

// Link is the identity link the event makes, if any: an identify with
// both ids links its anonymousId to its userId, an alias its previousId.
func (e *Event) Link() (from, userID string, ok bool) {
	switch {
	case e.UserID == "":
		return "", "", false
	case e.Type == "identify" && e.AnonymousID != "":
		return e.AnonymousID, e.UserID, true
	case e.Type == "alias" && e.PreviousID != "" && e.PreviousID != e.UserID:
		return e.PreviousID, e.UserID, true
	}
	return "", "", false
}

// PartitionKey is the raw topic's record key: the anonymousId when present,
// so one device's events stay in order, else the userId.
func (e *Event) PartitionKey() string {
	if e.AnonymousID != "" {
		return e.AnonymousID
	}
	return e.UserID
}

// Clean is one de-identified event, ready for in-region analytics.
type Clean struct {
	SchemaVersion int    `json:"schemaVersion"`
	MessageID     string `json:"messageId"`
	Type          string `json:"type"`
	// Event is the track event's name, or the page or screen name.
	Event      string    `json:"event,omitempty"`
	Timestamp  time.Time `json:"timestamp"`
	ReceivedAt time.Time `json:"receivedAt"`
	SourceID   string    `json:"sourceId"`
	Region     string    `json:"region"`
	// Purposes the subject's consent (or its source's default) allows this
	// event to be used for; never empty.
	Purposes []string `json:"purposes"`
	// Subject is the pseudonym of the subject (userId, else anonymousId).
	// Pseudonyms read "<keyId>.<hex>" so a rotated key stays identifiable.
	Subject       string `json:"subject"`
	UserID        string `json:"userId,omitempty"`
	AnonymousID   string `json:"anonymousId,omitempty"`
	DeviceID      string `json:"deviceId,omitempty"`
	AdvertisingID string `json:"advertisingId,omitempty"`
	IMEI          string `json:"imei,omitempty"`
	AndroidID     string `json:"androidId,omitempty"`
	MAC           string `json:"mac,omitempty"`
	// Country is the ISO 3166-1 alpha-2 code derived from the full IP.
	Country string `json:"country,omitempty"`
	// IP is the client address truncated to /24 (IPv4) or /48 (IPv6).
	IP string `json:"ip,omitempty"`
	// Browser, OS and DeviceClass (desktop, mobile, tablet, bot, other)
	// generalize the user agent, which itself is never kept.
	Browser        string          `json:"browser,omitempty"`
	BrowserVersion string          `json:"browserVersion,omitempty"`
	OS             string          `json:"os,omitempty"`
	OSVersion      string          `json:"osVersion,omitempty"`
	DeviceClass    string          `json:"deviceClass,omitempty"`
	DNT            bool            `json:"dnt"`
	GPC            bool            `json:"gpc"`
	Context        json.RawMessage `json:"context,omitempty"`
	Properties     json.RawMessage `json:"properties,omitempty"`
}
