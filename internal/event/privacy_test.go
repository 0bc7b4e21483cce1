package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestPrivacyDecodersNameTheField checks that each privacy record decoder
// refuses what it must, naming the field, and reads back what it accepts.
func TestPrivacyDecodersNameTheField(t *testing.T) {
	const at = `"2026-11-28T10:00:00Z"`
	for _, tc := range []struct {
		decode func([]byte) (any, error)
		in     string
		field  string // "" means valid
	}{
		{decodeAny(DecodeErasureRecord), `{"schemaVersion":1,"requestId":"r","reason":"user_request","operator":"o","requestedAt":` + at + `,"subjectKind":"userId"}`, ""},
		{decodeAny(DecodeErasureRecord), `{"schemaVersion":1,"requestId":"r","reason":"gdpr","requestedAt":` + at + `,"subjectKind":"userId"}`, "reason"},
		{decodeAny(DecodeErasureRecord), `{"schemaVersion":1,"requestId":"r","reason":"user_request","requestedAt":` + at + `,"subjectKind":"email"}`, "subjectKind"},
		{decodeAny(DecodeErasureRecord), `{"schemaVersion":2,"requestId":"r"}`, "schemaVersion"},
		{decodeAny(DecodeIdentityLink), `{"schemaVersion":1,"userId":"u","linkedAt":` + at + `}`, ""},
		{decodeAny(DecodeIdentityLink), `{"schemaVersion":1,"userId":"","linkedAt":` + at + `}`, "userId"},
		{decodeAny(DecodeErasureNotice), `{"schemaVersion":1,"requestId":"r","reason":"user_request","requestedAt":` + at + `,"destination":"cn","users":["k1.a"]}`, ""},
		{decodeAny(DecodeErasureNotice), `{"schemaVersion":1,"requestId":"r","requestedAt":` + at + `,"destination":"cn"}`, "users"},
		{decodeAny(DecodeErasureNotice), `{"schemaVersion":1,"requestId":"r","requestedAt":` + at + `,"anonymousIds":[""]}`, "users"},
		{decodeAny(DecodeErasureNotice), `{"schemaVersion":1,"requestId":"","users":["k1.a"]}`, "requestId"},
		{decodeAny(DecodeReceipt), `{"schemaVersion":1,"requestId":"r","kind":"erasure","stage":"sink","destination":"cn","status":"deleted","subject":"k1.a","requestedAt":` + at + `,"at":` + at + `,"rows":3}`, ""},
		{decodeAny(DecodeReceipt), `{"schemaVersion":1,"requestId":"r","kind":"backup","stage":"sink","status":"deleted","at":` + at + `}`, "kind"},
		{decodeAny(DecodeReceipt), `{"schemaVersion":1,"requestId":"r","kind":"export","stage":"collector","status":"served"}`, "at"},
		{decodeAny(DecodeReceipt), `{"schemaVersion":1,"requestId":"r","kind":"export","stage":"collector","status":"served","at":"yesterday"}`, "requestedAt or at"},
	} {
		_, err := tc.decode([]byte(tc.in))
		var fe *FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%s: error %v, want one naming %s", tc.in, err, tc.field)
		}
	}
	r := Receipt{RequestID: "r", Stage: StageSink, Destination: "intl", Subject: "x1.a"}
	if k := r.Key(); k != "r/sink/intl/x1.a" {
		t.Errorf("Key = %q", k)
	}
}

func decodeAny[T any](f func([]byte) (T, error)) func([]byte) (any, error) {
	return func(b []byte) (any, error) { return f(b) }
}

// FuzzPrivacyRecords: the privacy decoders never panic, and what one
// accepts survives encoding and decoding again unchanged.
func FuzzPrivacyRecords(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":1,"requestId":"r","reason":"user_request","operator":"o","requestedAt":"2026-11-28T10:00:00Z","subjectKind":"userId","linked":true}`,
		`{"schemaVersion":1,"userId":"u","linkedAt":"2026-11-28T10:00:00Z"}`,
		`{"schemaVersion":1,"requestId":"r","reason":"user_request","requestedAt":"2026-11-28T10:00:00Z","destination":"cn","users":["k1.a"],"anonymousIds":["k1.b"]}`,
		`{"schemaVersion":1,"requestId":"r","kind":"erasure","stage":"enricher","status":"notified","requestedAt":"2026-11-28T10:00:00Z","at":"2026-11-28T10:00:01Z","destinations":["cn","intl"],"linkedAnonymousIds":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, DecodeErasureRecord)
		roundTrip(t, b, DecodeIdentityLink)
		roundTrip(t, b, DecodeErasureNotice)
		roundTrip(t, b, DecodeReceipt)
	})
}

func roundTrip[T any](t *testing.T, b []byte, decode func([]byte) (T, error)) {
	v, err := decode(b)
	if err != nil {
		if !strings.Contains(err.Error(), ":") {
			t.Errorf("error %q names no field", err)
		}
		return
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	// Compared encoded: an empty list and none encode alike.
	w, err := decode(again)
	twice, _ := json.Marshal(w)
	if err != nil || !bytes.Equal(again, twice) {
		t.Errorf("%s decoded, encoded as %s, decodes (%v) and encodes as %s", b, again, err, twice)
	}
}
