package event_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/event"
)

// checkFieldError reports whether err is a *event.FieldError naming field
// that errors.Is recognises as permanent.
func checkFieldError(err error, field string) error {
	if err == nil {
		return fmt.Errorf("got no error, want a FieldError for %q", field)
	}
	var fe *event.FieldError
	if !errors.As(err, &fe) {
		return fmt.Errorf("error %v (%T) is not a *event.FieldError", err, err)
	}
	if fe.Field != field {
		return fmt.Errorf("error %q names field %q, want %q", err, fe.Field, field)
	}
	if !errors.Is(err, event.ErrPermanent) {
		return fmt.Errorf("errors.Is(%q, ErrPermanent) = false", err)
	}
	if !strings.HasPrefix(err.Error(), field+": ") {
		return fmt.Errorf("error text %q does not start with %q", err, field+": ")
	}
	return nil
}

func TestDecodeEventValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want event.Event
	}{
		{
			name: "track",
			raw:  `{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":1.10},"timestamp":"2026-01-02T15:04:05.000Z"}`,
			want: event.Event{Type: "track", UserID: "u1", Event: "Order Completed", Properties: json.RawMessage(`{"revenue":1.10}`), Timestamp: "2026-01-02T15:04:05.000Z"},
		},
		{
			name: "identify",
			raw:  `{"type":"identify","userId":"u1","anonymousId":"a1","traits":{"plan":"pro"}}`,
			want: event.Event{Type: "identify", UserID: "u1", AnonymousID: "a1", Traits: json.RawMessage(`{"plan":"pro"}`)},
		},
		{
			name: "page",
			raw:  `{"type":"page","anonymousId":"a1","name":"Home","context":{"page":{"path":"/"}}}`,
			want: event.Event{Type: "page", AnonymousID: "a1", Name: "Home", Context: json.RawMessage(`{"page":{"path":"/"}}`)},
		},
		{
			name: "screen",
			raw:  `{"type":"screen","userId":"u1","name":"Settings","sentAt":"2026-01-02T15:04:05+02:00"}`,
			want: event.Event{Type: "screen", UserID: "u1", Name: "Settings", SentAt: "2026-01-02T15:04:05+02:00"},
		},
		{
			name: "group",
			raw:  `{"type":"group","userId":"u1","groupId":"g1","traits":{"name":"Acme"}}`,
			want: event.Event{Type: "group", UserID: "u1", GroupID: "g1", Traits: json.RawMessage(`{"name":"Acme"}`)},
		},
		{
			name: "alias",
			raw:  `{"type":"alias","userId":"u1","previousId":"a1"}`,
			want: event.Event{Type: "alias", UserID: "u1", PreviousID: "a1"},
		},
		{
			name: "all fields",
			raw: `{"type":"track","messageId":"m1","userId":"u1","anonymousId":"a1","event":"E","timestamp":"2026-01-02T15:04:05.123456789Z",` +
				`"sentAt":"2026-01-02T15:04:06Z","context":{"ip":"1.2.3.4"},"properties":{"n":12345678901234567890},"traits":{},"integrations":{"All":false}}`,
			want: event.Event{Type: "track", MessageID: "m1", UserID: "u1", AnonymousID: "a1", Event: "E",
				Timestamp: "2026-01-02T15:04:05.123456789Z", SentAt: "2026-01-02T15:04:06Z",
				Context: json.RawMessage(`{"ip":"1.2.3.4"}`), Properties: json.RawMessage(`{"n":12345678901234567890}`),
				Traits: json.RawMessage(`{}`), Integrations: json.RawMessage(`{"All":false}`)},
		},
		{
			name: "null objects",
			raw:  `{"type":"page","userId":"u1","context":null,"properties":null,"traits":null,"integrations":null}`,
			want: event.Event{Type: "page", UserID: "u1", Context: json.RawMessage(`null`), Properties: json.RawMessage(`null`),
				Traits: json.RawMessage(`null`), Integrations: json.RawMessage(`null`)},
		},
		{
			name: "unknown fields are ignored",
			raw:  `{"type":"page","userId":"u1","version":2,"channel":"server"}`,
			want: event.Event{Type: "page", UserID: "u1"},
		},
		{
			name: "whitespace around the value",
			raw:  " \n\t{\"type\":\"page\",\"userId\":\"u1\"}\n ",
			want: event.Event{Type: "page", UserID: "u1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := event.DecodeEvent([]byte(tc.raw))
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			if err := eventsEqual(got, tc.want); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestDecodeEventErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		raw   string
		field string
	}{
		{"missing type", `{"userId":"u1"}`, "type"},
		{"empty type", `{"type":"","userId":"u1"}`, "type"},
		{"unknown type", `{"type":"purchase","userId":"u1"}`, "type"},
		{"type in upper case", `{"type":"Track","userId":"u1","event":"E"}`, "type"},
		{"type not a string", `{"type":["track"],"userId":"u1"}`, "type"},
		{"track without event", `{"type":"track","userId":"u1"}`, "event"},
		{"track with blank event", `{"type":"track","userId":"u1","event":" \t"}`, "event"},
		{"alias without previousId", `{"type":"alias","userId":"u1"}`, "previousId"},
		{"alias without userId", `{"type":"alias","anonymousId":"a1","previousId":"p1"}`, "userId"},
		{"group without groupId", `{"type":"group","userId":"u1"}`, "groupId"},
		{"neither userId nor anonymousId", `{"type":"page","name":"Home"}`, "userId"},
		{"empty ids", `{"type":"identify","userId":"","anonymousId":""}`, "userId"},
		{"userId as a number", `{"type":"page","userId":12345}`, "userId"},
		{"userId as an object", `{"type":"page","userId":{"id":"u1"}}`, "userId"},
		{"anonymousId as a number", `{"type":"page","anonymousId":12345}`, "anonymousId"},
		{"groupId as a number", `{"type":"group","userId":"u1","groupId":7}`, "groupId"},
		{"bad timestamp", `{"type":"page","userId":"u1","timestamp":"yesterday"}`, "timestamp"},
		{"timestamp without zone", `{"type":"page","userId":"u1","timestamp":"2026-01-02T15:04:05"}`, "timestamp"},
		{"timestamp date only", `{"type":"page","userId":"u1","timestamp":"2026-01-02"}`, "timestamp"},
		{"timestamp as a number", `{"type":"page","userId":"u1","timestamp":1767366245}`, "timestamp"},
		{"bad sentAt", `{"type":"page","userId":"u1","sentAt":"2026-13-02T15:04:05Z"}`, "sentAt"},
		{"properties an array", `{"type":"track","userId":"u1","event":"E","properties":[1,2]}`, "properties"},
		{"properties a string", `{"type":"track","userId":"u1","event":"E","properties":"{}"}`, "properties"},
		{"properties a number", `{"type":"track","userId":"u1","event":"E","properties":1}`, "properties"},
		{"properties false", `{"type":"track","userId":"u1","event":"E","properties":false}`, "properties"},
		{"context an array", `{"type":"page","userId":"u1","context":[]}`, "context"},
		{"traits a string", `{"type":"identify","userId":"u1","traits":"x"}`, "traits"},
		{"integrations a number", `{"type":"identify","userId":"u1","integrations":0}`, "integrations"},
		{"invalid JSON", `{"type":"page",`, "(body)"},
		{"invalid JSON inside an object field", `{"type":"page","userId":"u1","context":{"a":1]}`, "(body)"},
		{"empty input", ``, "(body)"},
		{"whitespace only", " \n", "(body)"},
		{"JSON array", `[{"type":"page","userId":"u1"}]`, "(body)"},
		{"JSON string", `"page"`, "(body)"},
		{"JSON null", `null`, "type"},
		{"trailing value", `{"type":"page","userId":"u1"} {"type":"page","userId":"u2"}`, "(body)"},
		{"trailing garbage", `{"type":"page","userId":"u1"} garbage`, "(body)"},
		{"trailing number", `{"type":"page","userId":"u1"}1`, "(body)"},
		// json.Decoder.More is false before ']' and '}', so decode.go
		// accepts these as if the body ended after the first value.
		{"trailing ]", `{"type":"page","userId":"u1"}]`, "(body)"},
		{"trailing }", `{"type":"page","userId":"u1"}}`, "(body)"},
		{"trailing ] and more", `{"type":"page","userId":"u1"}]]} garbage`, "(body)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := event.DecodeEvent([]byte(tc.raw))
			if err := checkFieldError(err, tc.field); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestDecodeEventErrorIsDeterministic checks that an event with two bad
// fields always reports the same one, so the collector's answer and the DLQ
// reason do not change from one attempt to the next.
func TestDecodeEventErrorIsDeterministic(t *testing.T) {
	for _, raw := range []string{
		`{"type":"page","userId":"u1","timestamp":"bad","sentAt":"bad"}`,
		`{"type":"page","userId":"u1","context":1,"properties":2,"traits":3,"integrations":4}`,
	} {
		t.Run(raw, func(t *testing.T) {
			_, first := event.DecodeEvent([]byte(raw))
			if first == nil {
				t.Fatal("no error")
			}
			var err error
			for i := 0; i < 200 && err == nil; i++ {
				_, again := event.DecodeEvent([]byte(raw))
				if again == nil || again.Error() != first.Error() {
					err = fmt.Errorf("attempt %d reported %v, first attempt %v", i, again, first)
				}
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
}

func validEnvelope() string {
	return `{"schemaVersion":1,"messageId":"m1","receivedAt":"2026-01-02T15:04:05.123Z","sourceId":"web","region":"eu",` +
		`"signals":{"dnt":true,"gpc":false,"ip":"192.0.2.1","userAgent":"UA"},` +
		`"event":{"type":"track","userId":"u1","event":"E","context":{"ip":"203.0.113.9"}}}`
}

func TestDecodeEnvelope(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		env, err := event.DecodeEnvelope([]byte(validEnvelope()))
		if err != nil {
			t.Fatal(err)
		}
		want := time.Date(2026, 1, 2, 15, 4, 5, 123e6, time.UTC)
		if env.SchemaVersion != 1 || env.MessageID != "m1" || !env.ReceivedAt.Equal(want) || env.SourceID != "web" || env.Region != "eu" {
			t.Errorf("envelope fields: %+v", env)
		}
		if env.Signals != (event.Signals{DNT: true, IP: "192.0.2.1", UserAgent: "UA"}) {
			t.Errorf("Signals = %+v", env.Signals)
		}
		if err := eventsEqual(env.Event, event.Event{Type: "track", UserID: "u1", Event: "E", Context: json.RawMessage(`{"ip":"203.0.113.9"}`)}); err != nil {
			t.Error(err)
		}
	})

	replace := func(old, new string) string {
		s := strings.Replace(validEnvelope(), old, new, 1)
		if s == validEnvelope() {
			panic("test bug: " + old + " not in the valid envelope")
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		raw   string
		field string
	}{
		{"schemaVersion 2", replace(`"schemaVersion":1`, `"schemaVersion":2`), "schemaVersion"},
		{"schemaVersion 0", replace(`"schemaVersion":1`, `"schemaVersion":0`), "schemaVersion"},
		{"schemaVersion missing", replace(`"schemaVersion":1,`, ``), "schemaVersion"},
		{"schemaVersion a string", replace(`"schemaVersion":1`, `"schemaVersion":"1"`), "schemaVersion"},
		{"schemaVersion a fraction", replace(`"schemaVersion":1`, `"schemaVersion":1.5`), "schemaVersion"},
		{"messageId missing", replace(`"messageId":"m1",`, ``), "messageId"},
		{"messageId empty", replace(`"messageId":"m1"`, `"messageId":""`), "messageId"},
		{"messageId a number", replace(`"messageId":"m1"`, `"messageId":1`), "messageId"},
		{"signals.dnt a string", replace(`"dnt":true`, `"dnt":"1"`), "signals.dnt"},
		{"event missing", replace(`,"event":{"type":"track","userId":"u1","event":"E","context":{"ip":"203.0.113.9"}}`, ``), "event.type"},
		{"event an array", replace(`"event":{"type":"track","userId":"u1","event":"E","context":{"ip":"203.0.113.9"}}`, `"event":[]`), "event"},
		{"event.type missing", replace(`"type":"track",`, ``), "event.type"},
		{"event.type unknown", replace(`"type":"track"`, `"type":"purchase"`), "event.type"},
		{"event.event missing", replace(`"event":"E",`, ``), "event.event"},
		{"event.userId missing", replace(`"userId":"u1",`, ``), "event.userId"},
		{"event.userId a number", replace(`"userId":"u1"`, `"userId":1`), "event.userId"},
		{"event.timestamp bad", replace(`"event":"E",`, `"event":"E","timestamp":"bad",`), "event.timestamp"},
		{"event.context an array", replace(`"context":{"ip":"203.0.113.9"}`, `"context":[]`), "event.context"},
		{"invalid JSON", validEnvelope()[:40], "(body)"},
		{"trailing value", validEnvelope() + `{}`, "(body)"},
		{"trailing }", validEnvelope() + `}`, "(body)"},
		{"receivedAt not a time", replace(`"receivedAt":"2026-01-02T15:04:05.123Z"`, `"receivedAt":"yesterday"`), "receivedAt"},
		{"receivedAt a number", replace(`"receivedAt":"2026-01-02T15:04:05.123Z"`, `"receivedAt":5`), "receivedAt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := event.DecodeEnvelope([]byte(tc.raw))
			if err := checkFieldError(err, tc.field); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestDecodeClean(t *testing.T) {
	valid := event.Clean{
		SchemaVersion: event.SchemaVersion,
		MessageID:     "m1",
		Type:          "track",
		Event:         "E",
		Timestamp:     time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
		ReceivedAt:    time.Date(2026, 1, 2, 15, 4, 6, 0, time.UTC),
		SourceID:      "web",
		Region:        "eu",
		Subject:       "k1.00112233445566778899aabbccddeeff",
		UserID:        "k1.00112233445566778899aabbccddeeff",
		IP:            "192.0.2.0",
		GPC:           true,
		Context:       json.RawMessage(`{"locale":"fr-FR"}`),
		Properties:    json.RawMessage(`{"n":1.10}`),
	}
	encode := func(edit func(*event.Clean)) string {
		c := valid
		edit(&c)
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Run("valid", func(t *testing.T) {
		got, err := event.DecodeClean([]byte(encode(func(*event.Clean) {})))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Timestamp.Equal(valid.Timestamp) || !got.ReceivedAt.Equal(valid.ReceivedAt) {
			t.Errorf("times: got %v %v", got.Timestamp, got.ReceivedAt)
		}
		got.Timestamp, got.ReceivedAt = valid.Timestamp, valid.ReceivedAt
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", valid) {
			t.Errorf("DecodeClean = %+v\nwant %+v", got, valid)
		}
	})

	for _, tc := range []struct {
		name, raw, field string
	}{
		{"subject missing", encode(func(c *event.Clean) { c.Subject = "" }), "subject"},
		{"subject a number", strings.Replace(encode(func(*event.Clean) {}), `"subject":"k1.00112233445566778899aabbccddeeff"`, `"subject":7`, 1), "subject"},
		{"schemaVersion 2", encode(func(c *event.Clean) { c.SchemaVersion = 2 }), "schemaVersion"},
		{"schemaVersion 0", encode(func(c *event.Clean) { c.SchemaVersion = 0 }), "schemaVersion"},
		{"messageId missing", encode(func(c *event.Clean) { c.MessageID = "" }), "messageId"},
		{"dnt a string", strings.Replace(encode(func(*event.Clean) {}), `"dnt":false`, `"dnt":"no"`, 1), "dnt"},
		{"invalid JSON", `{"schemaVersion":1,`, "(body)"},
		{"empty", ``, "(body)"},
		{"trailing value", encode(func(*event.Clean) {}) + ` 1`, "(body)"},
		{"timestamp past ClickHouse DateTime", encode(func(c *event.Clean) { c.Timestamp = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) }), "timestamp"},
		{"receivedAt before 1970", encode(func(c *event.Clean) { c.ReceivedAt = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC) }), "receivedAt"},
		{"receivedAt not a time", strings.Replace(encode(func(*event.Clean) {}), `"receivedAt":"2026-01-02T15:04:06Z"`, `"receivedAt":"soon"`, 1), "timestamp or receivedAt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := event.DecodeClean([]byte(tc.raw))
			if err := checkFieldError(err, tc.field); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestFieldError(t *testing.T) {
	err := error(&event.FieldError{Field: "userId", Msg: "is required"})
	if got, want := err.Error(), "userId: is required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, event.ErrPermanent) {
		t.Error("FieldError is not ErrPermanent")
	}
	if errors.Is(err, errors.New("permanent")) {
		t.Error("FieldError matches an unrelated error")
	}
	wrapped := fmt.Errorf("decode envelope: %w", err)
	var fe *event.FieldError
	if !errors.Is(wrapped, event.ErrPermanent) || !errors.As(wrapped, &fe) || fe.Field != "userId" {
		t.Errorf("wrapped FieldError lost: %v", wrapped)
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"", time.Time{}, true},
		{"2026-01-02T15:04:05Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), true},
		{"2026-01-02T15:04:05.000Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), true},
		{"2026-01-02T15:04:05.123456789Z", time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC), true},
		{"2026-01-02T17:04:05+02:00", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), true},
		{"2026-01-02T10:04:05.5-05:00", time.Date(2026, 1, 2, 15, 4, 5, 5e8, time.UTC), true},
		{"2026-01-02T15:04:05", time.Time{}, false},
		{"2026-01-02 15:04:05Z", time.Time{}, false},
		{"2026-01-02", time.Time{}, false},
		{"1767366245", time.Time{}, false},
		{"2026-02-30T15:04:05Z", time.Time{}, false},
		{"2026-01-02T24:00:00Z", time.Time{}, false},
		{" 2026-01-02T15:04:05Z", time.Time{}, false},
		{"yesterday", time.Time{}, false},
	} {
		got, err := event.ParseTime(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("ParseTime(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
			t.Errorf("ParseTime(%q) error %q does not quote the input", tc.in, err)
		}
	}
}

func TestSubjectAndPartitionKey(t *testing.T) {
	for _, tc := range []struct {
		user, anon, subject, key string
	}{
		{"u", "a", "u", "a"},
		{"u", "", "u", "u"},
		{"", "a", "a", "a"},
		{"", "", "", ""},
	} {
		e := event.Event{UserID: tc.user, AnonymousID: tc.anon}
		if got := e.SubjectID(); got != tc.subject {
			t.Errorf("SubjectID(user=%q, anon=%q) = %q, want %q", tc.user, tc.anon, got, tc.subject)
		}
		if got := e.PartitionKey(); got != tc.key {
			t.Errorf("PartitionKey(user=%q, anon=%q) = %q, want %q", tc.user, tc.anon, got, tc.key)
		}
	}
}

// eventsEqual compares two events: string fields exactly, raw JSON fields
// by meaning (json.Marshal compacts and HTML-escapes a RawMessage, so the
// bytes of a re-marshalled event may differ from what was decoded).
func eventsEqual(got, want event.Event) error {
	gs := []string{got.Type, got.MessageID, got.UserID, got.AnonymousID, got.Event, got.Name, got.GroupID, got.PreviousID, got.Timestamp, got.SentAt}
	ws := []string{want.Type, want.MessageID, want.UserID, want.AnonymousID, want.Event, want.Name, want.GroupID, want.PreviousID, want.Timestamp, want.SentAt}
	names := []string{"Type", "MessageID", "UserID", "AnonymousID", "Event", "Name", "GroupID", "PreviousID", "Timestamp", "SentAt"}
	for i := range gs {
		if gs[i] != ws[i] {
			return fmt.Errorf("%s = %q, want %q", names[i], gs[i], ws[i])
		}
	}
	for _, f := range []struct {
		name      string
		got, want json.RawMessage
	}{
		{"Context", got.Context, want.Context},
		{"Properties", got.Properties, want.Properties},
		{"Traits", got.Traits, want.Traits},
		{"Integrations", got.Integrations, want.Integrations},
	} {
		if err := sameJSON(f.got, f.want); err != nil {
			return fmt.Errorf("%s: %v", f.name, err)
		}
	}
	return nil
}

// sameJSON reports whether two raw JSON values mean the same, numbers
// compared by their literal text. An absent value equals only an absent one.
func sameJSON(a, b json.RawMessage) error {
	if (len(a) == 0) != (len(b) == 0) {
		return fmt.Errorf("%s vs %s: one is absent", a, b)
	}
	if len(a) == 0 {
		return nil
	}
	ca, err := canonicalJSON(a)
	if err != nil {
		return err
	}
	cb, err := canonicalJSON(b)
	if err != nil {
		return err
	}
	if ca != cb {
		return fmt.Errorf("%s vs %s", a, b)
	}
	return nil
}

func canonicalJSON(raw json.RawMessage) (string, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("not JSON: %v: %q", err, raw)
	}
	b, err := json.Marshal(v) // sorted keys, one escaping
	if err != nil {
		return "", err
	}
	return string(b), nil
}
