package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/consentflow/consentflow/internal/event"
)

// eventSeeds are valid and invalid events for the fuzz corpora.
var eventSeeds = []string{
	`{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":1.10,"n":12345678901234567890},"timestamp":"2026-01-02T15:04:05.000Z"}`,
	`{"type":"identify","userId":"u1","anonymousId":"a1","traits":{"email":"a@b.c"},"context":{"ip":"1.2.3.4","device":{"id":"d1"}}}`,
	`{"type":"page","anonymousId":"a1","name":"Home","context":null,"properties":null,"sentAt":"2026-01-02T17:04:05+02:00"}`,
	`{"type":"screen","userId":"u1","name":"Settings","integrations":{"All":true}}`,
	`{"type":"group","userId":"u1","groupId":"g1","traits":{}}`,
	`{"type":"alias","userId":"u1","previousId":"a1","messageId":"m1"}`,
	`{"type":"page","userId":"<script>&\u2028\ud800\u00e9","context":{"a":"<&>","b":[1,{"c":null}]}}`,
	"{\"type\":\"page\",\"userId\":\"\xff\xfe\",\"context\":{\"k\":\"\xff\"}}",
	`{"TYPE":"page","USERID":"u1","userid":"u2"}`,
	`{"type":"page","userId":"u1","context":{ "spaced" : [ 1 , 2 ] }}`,
	`{"type":"purchase","userId":"u1"}`,
	`{"type":"track","userId":"u1"}`,
	`{"type":"page","userId":12345}`,
	`{"type":"page","userId":"u1","timestamp":"yesterday"}`,
	`{"type":"page","userId":"u1","properties":[1]}`,
	`{"type":"page","userId":"u1"}]`,
	`{"type":"page","userId":"u1"} {}`,
	`{"type":"page",`,
	`null`,
	``,
	`[]`,
}

func FuzzDecodeEvent(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := event.DecodeEvent(raw)
		if err != nil {
			var fe *event.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, event.ErrPermanent) {
				t.Fatalf("DecodeEvent error %v (%T) is not a permanent *event.FieldError", err, err)
			}
			return
		}
		// A decoded event survives the trip the collector makes it take:
		// marshal into the raw topic, decode in the enricher.
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("marshal decoded event: %v", err)
		}
		again, err := event.DecodeEvent(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v (first decoded from %q)", b, err, raw)
		}
		if err := eventsEqual(again, ev); err != nil {
			t.Fatalf("round trip changed the event: %v\nraw: %q\nre-encoded: %s", err, raw, b)
		}
		// From then on the encoding is stable.
		b2, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", b, b2)
		}
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range []string{
		validEnvelope(),
		`{"schemaVersion":1,"messageId":"m1","receivedAt":"2026-01-02T17:04:05.123456789+02:00","sourceId":"s","region":"eu","signals":{"dnt":false,"gpc":true},"event":{"type":"page","anonymousId":"a1","context":null}}`,
		`{"schemaVersion":1,"messageId":"m1","receivedAt":"0000-01-01T00:30:00+01:00","event":{"type":"page","userId":"u1","timestamp":"9999-12-31T23:30:00-01:00"}}`,
		`{"schemaVersion":1,"messageId":"m1","event":{"type":"alias","userId":"u1","previousId":"p"},"extra":[1,2,3]}`,
		`{"schemaVersion":2,"messageId":"m1","event":{"type":"page","userId":"u1"}}`,
		`{"schemaVersion":1,"event":{"type":"page","userId":"u1"}}`,
		`{"schemaVersion":1,"messageId":"m1","event":{"type":"track","userId":"u1"}}`,
		`{"schemaVersion":1,"messageId":"m1","event":{"type":"page","userId":1}}`,
		`{"schemaVersion":1,"messageId":"m1","receivedAt":"yesterday","event":{"type":"page","userId":"u1"}}`,
		`{"schemaVersion":1,"messageId":"m1","event":{"type":"page","userId":"u1"}}}`,
		`{"schemaVersion":"1"}`,
		`{`,
		``,
	} {
		f.Add([]byte(s))
	}
	for _, s := range eventSeeds {
		f.Add([]byte(`{"schemaVersion":1,"messageId":"m1","receivedAt":"2026-01-02T15:04:05Z","event":` + s + `}`))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := event.DecodeEnvelope(raw)
		if err != nil {
			var fe *event.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, event.ErrPermanent) {
				t.Fatalf("DecodeEnvelope error %v (%T) is not a permanent *event.FieldError", err, err)
			}
			return
		}
		b, err := json.Marshal(env)
		if err != nil {
			t.Fatalf("marshal decoded envelope: %v", err)
		}
		again, err := event.DecodeEnvelope(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v (first decoded from %q)", b, err, raw)
		}
		if again.SchemaVersion != env.SchemaVersion || again.MessageID != env.MessageID ||
			again.SourceID != env.SourceID || again.Region != env.Region || again.Signals != env.Signals {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, again)
		}
		// time.Time holds a *Location: compare instants and offsets, not pointers.
		_, off1 := env.ReceivedAt.Zone()
		_, off2 := again.ReceivedAt.Zone()
		if !again.ReceivedAt.Equal(env.ReceivedAt) || off1 != off2 {
			t.Fatalf("round trip changed receivedAt: %v -> %v", env.ReceivedAt, again.ReceivedAt)
		}
		if err := eventsEqual(again.Event, env.Event); err != nil {
			t.Fatalf("round trip changed the event: %v\nraw: %q\nre-encoded: %s", err, raw, b)
		}
		b2, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", b, b2)
		}
	})
}

func FuzzDecodeClean(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":1,"messageId":"m1","type":"track","event":"E","timestamp":"2026-01-02T15:04:05Z","receivedAt":"2026-01-02T15:04:06Z","sourceId":"s","region":"eu","subject":"k1.00112233445566778899aabbccddeeff","ip":"192.0.2.0","dnt":false,"gpc":true,"context":{"a":1.10},"properties":null}`,
		`{"schemaVersion":1,"messageId":"m1","subject":""}`,
		`{"schemaVersion":2,"messageId":"m1","subject":"k1.x"}`,
		`{"schemaVersion":1,"messageId":"m1","subject":7}`,
		`{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := event.DecodeClean(raw)
		if err != nil {
			var fe *event.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, event.ErrPermanent) {
				t.Fatalf("DecodeClean error %v (%T) is not a permanent *event.FieldError", err, err)
			}
			return
		}
		if c.SchemaVersion != event.SchemaVersion || c.MessageID == "" || c.Subject == "" {
			t.Fatalf("DecodeClean accepted %+v", c)
		}
	})
}
