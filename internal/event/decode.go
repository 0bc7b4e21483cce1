package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	// encoding/json's own semantics on the v2 engine (encoding/json/v2's
	// mirror, from the Go team): it decodes events in half the time.
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// ErrPermanent marks input that will never decode, however often it is
// retried: callers send it to the dead-letter topic.
var ErrPermanent = errors.New("permanent")

// FieldError names the field of an event that is wrong.
type FieldError struct {
	Field string
	// Msg says what is wrong, and may quote what the field held: it is
	// for whoever sent it (the collector's answer).
	Msg string
	// Redacted is Msg without what the field held, for dead letters,
	// which must hold nothing of the input; empty when Msg quotes nothing.
	// Field itself names a field of the schema, never a key of the input's
	// own (a property name).
	Redacted string
}

// Error reads "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// RedactedError reads "field: message" without what the field held
// (kafkax.Redacter).
func (e *FieldError) RedactedError() string {
	if e.Redacted != "" {
		return e.Field + ": " + e.Redacted
	}
	return e.Error()
}

// Is makes every FieldError permanent.
func (e *FieldError) Is(target error) bool { return target == ErrPermanent }

// MaxIDBytes bounds identifiers: they become Kafka keys and are copied
// into every record about the subject.
const MaxIDBytes = 1024

// Types are the Segment event types the pipeline accepts.
var Types = []string{"track", "identify", "page", "screen", "group", "alias"}

// DecodeEvent parses and validates one Segment event.
func DecodeEvent(raw []byte) (Event, error) {
	return DecodeEventOfType(raw, "")
}

// DecodeEventOfType parses and validates one event posted to a route that
// names its type (/v1/track and the like): a missing type is typ, another
// type is an error. An empty typ accepts any type.
func DecodeEventOfType(raw []byte, typ string) (Event, error) {
	var e Event
	if err := strictUnmarshal(raw, &e, ""); err != nil {
		return Event{}, err
	}
	return e.ofType(typ)
}

// ofType applies the route's type (see DecodeEventOfType) and validates.
func (e Event) ofType(typ string) (Event, error) {
	switch {
	case typ == "":
	case e.Type == "":
		e.Type = typ
	case e.Type != typ:
		return Event{}, &FieldError{Field: "type", Msg: fmt.Sprintf("is %q but the endpoint takes %q", e.Type, typ),
			Redacted: fmt.Sprintf("is not %q, which the endpoint takes", typ)}
	}
	return e, e.Validate()
}

// Validate checks the fields the Segment spec requires for the event's type.
func (e *Event) Validate() error {
	switch e.Type {
	case "":
		return &FieldError{Field: "type", Msg: "is required"}
	case "track":
		if strings.TrimSpace(e.Event) == "" {
			return &FieldError{Field: "event", Msg: "is required for track"}
		}
	case "group":
		if e.GroupID == "" {
			return &FieldError{Field: "groupId", Msg: "is required for group"}
		}
	case "alias":
		if e.PreviousID == "" {
			return &FieldError{Field: "previousId", Msg: "is required for alias"}
		}
		if e.UserID == "" {
			return &FieldError{Field: "userId", Msg: "is required for alias"}
		}
	case "identify", "page", "screen":
	default:
		want := strings.Join(Types, ", ")
		return &FieldError{Field: "type", Msg: fmt.Sprintf("unknown type %q (want one of %s)", e.Type, want), Redacted: "unknown type (want one of " + want + ")"}
	}
	for _, f := range []struct{ name, value string }{{"timestamp", e.Timestamp}, {"originalTimestamp", e.OriginalTimestamp}, {"sentAt", e.SentAt}} {
		if _, err := ParseTime(f.value); err != nil {
			return timeFieldError(f.name, err)
		}
	}
	if e.UserID == "" && e.AnonymousID == "" {
		return &FieldError{Field: "userId", Msg: "userId or anonymousId is required"}
	}
	for _, f := range []struct{ name, value string }{{"userId", e.UserID}, {"anonymousId", e.AnonymousID}, {"groupId", e.GroupID}, {"previousId", e.PreviousID}, {"messageId", e.MessageID}} {
		if len(f.value) > MaxIDBytes {
			return &FieldError{Field: f.name, Msg: fmt.Sprintf("is %d bytes, more than %d", len(f.value), MaxIDBytes)}
		}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"context", e.Context}, {"properties", e.Properties}, {"traits", e.Traits}, {"integrations", e.Integrations}} {
		if len(f.raw) > 0 && !isObjectOrNull(f.raw) {
			return &FieldError{Field: f.name, Msg: "must be an object"}
		}
	}
	return nil
}

// DecodeEnvelope parses a raw-topic record value.
func DecodeEnvelope(raw []byte) (Envelope, error) {
	var env Envelope
	if err := strictUnmarshal(raw, &env, "receivedAt"); err != nil {
		return Envelope{}, err
	}
	if err := env.Validate(); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

// Validate checks a decoded envelope as DecodeEnvelope does.
func (env *Envelope) Validate() error {
	if env.SchemaVersion != SchemaVersion {
		return versionError(env.SchemaVersion)
	}
	if env.MessageID == "" {
		return &FieldError{Field: "messageId", Msg: "is required"}
	}
	if !InRange(env.ReceivedAt) {
		// Events without a timestamp are judged at receivedAt.
		return &FieldError{Field: "receivedAt", Msg: fmt.Sprintf("must be between %d and %d", MinTime.Year(), MaxTime.Year()-1)}
	}
	if err := env.Event.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Field = "event." + fe.Field
		}
		return err
	}
	return nil
}

// DecodeClean parses a clean-topic record value.
func DecodeClean(raw []byte) (Clean, error) {
	var c Clean
	if err := strictUnmarshal(raw, &c, "timestamp or receivedAt"); err != nil {
		return Clean{}, err
	}
	if c.SchemaVersion != SchemaVersion {
		return Clean{}, versionError(c.SchemaVersion)
	}
	if c.MessageID == "" {
		return Clean{}, &FieldError{Field: "messageId", Msg: "is required"}
	}
	if c.Subject == "" {
		return Clean{}, &FieldError{Field: "subject", Msg: "is required"}
	}
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"timestamp", c.Timestamp}, {"receivedAt", c.ReceivedAt}} {
		if !InRange(f.t) {
			bounds := fmt.Sprintf("must be between %d and %d", MinTime.Year(), MaxTime.Year()-1)
			return Clean{}, &FieldError{Field: f.name, Msg: bounds + ", got " + f.t.Format(time.RFC3339), Redacted: bounds}
		}
	}
	return c, nil
}

// strictUnmarshal decodes one JSON value and turns type mismatches into
// FieldErrors that name the field. timeFields names v's time.Time fields:
// their parse errors come from time.Time's own decoder, which does not say
// which field failed.
func strictUnmarshal(raw []byte, v any, timeFields string) error {
	// json.Unmarshal refuses anything after the value, a stray ] or }
	// included, as a syntax error.
	if err := jsonv1.Unmarshal(raw, v); err != nil {
		var typeErr *jsonv1.UnmarshalTypeError
		var syntaxErr *jsonv1.SyntaxError
		// The decoder's words quote the input (a number sent, a character,
		// the time it could not parse): Redacted keeps its kind only.
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			kind, _, _ := strings.Cut(typeErr.Value, " ") // "number 1e999"
			return &FieldError{Field: typeErr.Field, Msg: fmt.Sprintf("must be a %s, got %s", typeErr.Type, typeErr.Value),
				Redacted: fmt.Sprintf("must be a %s, got a %s", typeErr.Type, kind)}
		case errors.As(err, &syntaxErr):
			return &FieldError{Field: "(body)", Msg: fmt.Sprintf("invalid JSON: %v", err), Redacted: fmt.Sprintf("invalid JSON (at byte %d)", syntaxErr.Offset)}
		case timeFields == "":
			return &FieldError{Field: "(body)", Msg: fmt.Sprintf("invalid JSON: %v", err), Redacted: "invalid JSON"}
		default:
			return &FieldError{Field: timeFields, Msg: fmt.Sprintf("must be an RFC 3339 time: %v", err), Redacted: "must be an RFC 3339 time"}
		}
	}
	return nil
}

// MinTime and MaxTime bound the event times the pipeline accepts: ClickHouse's
// DateTime holds 1970 to 2105, and nothing later than 2099 is a real clock.
var (
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// InRange reports whether t lies between MinTime and MaxTime, the event
// times the pipeline stores.
func InRange(t time.Time) bool { return !t.Before(MinTime) && t.Before(MaxTime) }

// ParseTime parses a Segment timestamp (ISO 8601 / RFC 3339, with or without
// fractional seconds). The empty string, and Go's zero time that some SDKs
// send for "unset" (0001-01-01T00:00:00Z), are the zero time.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, ok := parseTimeFast(s)
	if !ok {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			const msg = "must be an ISO 8601 time such as 2026-01-02T15:04:05.000Z"
			return time.Time{}, &timeError{msg: fmt.Sprintf("%s, got %q", msg, s), redacted: msg}
		}
	}
	if t.IsZero() {
		return time.Time{}, nil
	}
	if !InRange(t) {
		msg := fmt.Sprintf("must be between %d and %d", MinTime.Year(), MaxTime.Year()-1)
		return time.Time{}, &timeError{msg: fmt.Sprintf("%s, got %q", msg, s), redacted: msg}
	}
	return t, nil
}

// timeError is ParseTime's error: msg quotes the text, redacted does not.
type timeError struct{ msg, redacted string }

func (e *timeError) Error() string { return e.msg }

// RedactedError is the error without the text (kafkax.Redacter).
func (e *timeError) RedactedError() string { return e.redacted }

// timeFieldError is field's ParseTime error.
func timeFieldError(field string, err error) *FieldError {
	fe := &FieldError{Field: field, Msg: err.Error()}
	if te, ok := err.(*timeError); ok {
		fe.Redacted = te.redacted
	}
	return fe
}

// versionError refuses a schema version this build does not read.
func versionError(v int) *FieldError {
	return &FieldError{Field: "schemaVersion", Msg: fmt.Sprintf("unsupported version %d (this build reads %d)", v, SchemaVersion),
		Redacted: fmt.Sprintf("unsupported version (this build reads %d)", SchemaVersion)}
}

func isObjectOrNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && (t[0] == '{' || bytes.Equal(t, []byte("null")))
}
