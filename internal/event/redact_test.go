package event_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
)

// TestRedactedErrorHoldsNoInput decodes records whose wrong field holds
// a secret: the error tells the sender what it sent, and its redacted form,
// the one dead letters carry, names the field and what is wrong without
// what the field held.
func TestRedactedErrorHoldsNoInput(t *testing.T) {
	const secret = "490154203237518"
	env := func(event string) string {
		return `{"schemaVersion":1,"messageId":"m","receivedAt":"2026-01-01T00:00:00Z","event":` + event + `}`
	}
	erasure := func(kind, reason string) string {
		return `{"schemaVersion":1,"requestId":"r","reason":"` + reason + `","operator":"o","requestedAt":"2026-01-01T00:00:00Z","subjectKind":"` + kind + `"}`
	}
	for _, tc := range []struct {
		name, field, redacted string
		decode                func([]byte) error
		in                    string
		quoted                string // what Error quotes
	}{
		{"unknown type", "event.type", "unknown type (want one of", envelope, env(`{"type":"imei-` + secret + `","userId":"u"}`), "imei-" + secret},
		{"timestamp", "event.timestamp", "must be an ISO 8601 time", envelope, env(`{"type":"page","userId":"u","timestamp":"` + secret + `"}`), secret},
		{"timestamp out of range", "event.timestamp", "must be between 1970 and 2099", envelope, env(`{"type":"page","userId":"u","timestamp":"2` + secret[:3] + `-01-01T00:00:00Z"}`), "2490-01-01T00:00:00Z"},
		{"receivedAt", "receivedAt", "must be an RFC 3339 time", envelope, `{"schemaVersion":1,"receivedAt":"` + secret + `"}`, secret},
		{"version", "schemaVersion", "unsupported version (this build reads 1)", envelope, `{"schemaVersion":` + secret + `}`, secret},
		{"number overflow", "schemaVersion", "must be a int, got a number", envelope, `{"schemaVersion":` + secret + `e999}`, secret + "e999"},
		{"syntax", "(body)", "invalid JSON (at byte", envelope, `{"userId":"` + secret + `" oops}`, "'o'"},
		{"clean time", "timestamp", "must be between 1970 and 2099", clean, `{"schemaVersion":1,"messageId":"m","subject":"k1.s","receivedAt":"2026-01-01T00:00:00Z","timestamp":"2` + secret[:3] + `-01-01T00:00:00Z"}`, "2490-01-01T00:00:00Z"},
		{"subject kind", "subjectKind", "must be userId, anonymousId or previousId", erasureRecord, erasure("kind-"+secret, "user_request"), "kind-" + secret},
		{"erasure reason", "reason", "must be one of", erasureRecord, erasure("userId", "why-"+secret), "why-" + secret},
		{"receipt kind", "kind", "must be erasure or export", receipt, `{"schemaVersion":1,"requestId":"r","kind":"kind-` + secret + `","stage":"s","status":"x","at":"2026-01-01T00:00:00Z"}`, "kind-" + secret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode([]byte(tc.in))
			var fe *event.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("error %v, want a FieldError for %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.quoted) {
				t.Errorf("error %q does not quote %s: the case tests nothing", err, tc.quoted)
			}
			var r kafkax.Redacter = fe
			if got := r.RedactedError(); !strings.HasPrefix(got, tc.field+": "+tc.redacted) || strings.Contains(got, tc.quoted) {
				t.Errorf("redacted %q, want %q... without %s", got, tc.field+": "+tc.redacted, tc.quoted)
			}
		})
	}
}

func envelope(b []byte) error      { _, err := event.DecodeEnvelope(b); return err }
func clean(b []byte) error         { _, err := event.DecodeClean(b); return err }
func erasureRecord(b []byte) error { _, err := event.DecodeErasureRecord(b); return err }
func receipt(b []byte) error       { _, err := event.DecodeReceipt(b); return err }
