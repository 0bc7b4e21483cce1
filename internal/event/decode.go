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
	Msg   string
}

// Error reads "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

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
		return Event{}, &FieldError{"type", fmt.Sprintf("is %q but the endpoint takes %q", e.Type, typ)}
	}
	return e, e.Validate()
}

// Validate checks the fields the Segment spec requires for the event's type.
func (e *Event) Validate() error {
	switch e.Type {
	case "":
		return &FieldError{"type", "is required"}
	case "track":
		if strings.TrimSpace(e.Event) == "" {
			return &FieldError{"event", "is required for track"}
		}
	case "group":
		if e.GroupID == "" {
			return &FieldError{"groupId", "is required for group"}
		}
	case "alias":
		if e.PreviousID == "" {
			return &FieldError{"previousId", "is required for alias"}
		}
		if e.UserID == "" {
			return &FieldError{"userId", "is required for alias"}
		}
	case "identify", "page", "screen":
	default:
		return &FieldError{"type", fmt.Sprintf("unknown type %q (want one of %s)", e.Type, strings.Join(Types, ", "))}
	}
	for _, f := range []struct{ name, value string }{{"timestamp", e.Timestamp}, {"originalTimestamp", e.OriginalTimestamp}, {"sentAt", e.SentAt}} {
		if _, err := ParseTime(f.value); err != nil {
			return &FieldError{f.name, err.Error()}
		}
	}
	if e.UserID == "" && e.AnonymousID == "" {
		return &FieldError{"userId", "userId or anonymousId is required"}
	}
	for _, f := range []struct{ name, value string }{{"userId", e.UserID}, {"anonymousId", e.AnonymousID}, {"groupId", e.GroupID}, {"previousId", e.PreviousID}, {"messageId", e.MessageID}} {
		if len(f.value) > MaxIDBytes {
			return &FieldError{f.name, fmt.Sprintf("is %d bytes, more than %d", len(f.value), MaxIDBytes)}
		}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"context", e.Context}, {"properties", e.Properties}, {"traits", e.Traits}, {"integrations", e.Integrations}} {
		if len(f.raw) > 0 && !isObjectOrNull(f.raw) {
			return &FieldError{f.name, "must be an object"}
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
		return &FieldError{"schemaVersion", fmt.Sprintf("unsupported version %d (this build reads %d)", env.SchemaVersion, SchemaVersion)}
	}
	if env.MessageID == "" {
		return &FieldError{"messageId", "is required"}
	}
	if !InRange(env.ReceivedAt) {
		// Events without a timestamp are judged at receivedAt.
		return &FieldError{"receivedAt", fmt.Sprintf("must be between %d and %d", MinTime.Year(), MaxTime.Year()-1)}
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
		return Clean{}, &FieldError{"schemaVersion", fmt.Sprintf("unsupported version %d (this build reads %d)", c.SchemaVersion, SchemaVersion)}
	}
	if c.MessageID == "" {
		return Clean{}, &FieldError{"messageId", "is required"}
	}
	if c.Subject == "" {
		return Clean{}, &FieldError{"subject", "is required"}
	}
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"timestamp", c.Timestamp}, {"receivedAt", c.ReceivedAt}} {
		if !InRange(f.t) {
			return Clean{}, &FieldError{f.name, fmt.Sprintf("must be between %d and %d, got %s", MinTime.Year(), MaxTime.Year()-1, f.t.Format(time.RFC3339))}
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
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return &FieldError{typeErr.Field, fmt.Sprintf("must be a %s, got %s", typeErr.Type, typeErr.Value)}
		case errors.As(err, &syntaxErr) || timeFields == "":
			return &FieldError{"(body)", fmt.Sprintf("invalid JSON: %v", err)}
		default:
			return &FieldError{timeFields, fmt.Sprintf("must be an RFC 3339 time: %v", err)}
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
			return time.Time{}, fmt.Errorf("must be an ISO 8601 time such as 2026-01-02T15:04:05.000Z, got %q", s)
		}
	}
	if t.IsZero() {
		return time.Time{}, nil
	}
	if !InRange(t) {
		return time.Time{}, fmt.Errorf("must be between %d and %d, got %q", MinTime.Year(), MaxTime.Year()-1, s)
	}
	return t, nil
}

func isObjectOrNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && (t[0] == '{' || bytes.Equal(t, []byte("null")))
}
