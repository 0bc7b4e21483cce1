package pipeline

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/kafkax/dlqtest"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestDeadLettersHoldNoInput sends the enricher poison raw events of one
// device, each refused by an error that quotes what the event held (its
// identifiers among it), and reads the real dead-letter topic back: each
// dead letter points at its raw record (found there, SHA-256 and length
// checked) and holds neither the device's identifiers, nor their
// pseudonyms, nor any other value of the event.
func TestDeadLettersHoldNoInput(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	cfg := testConfig(brokers)
	p := startIsolated(t, ctx, brokers, &cfg)

	const (
		anon  = "a-7d1e5f2b9c4a"
		user  = "u-li-lei-4711"
		imei  = "490154203237518"
		email = "li.lei@example.cn"
	)
	received := time.Now().UTC().Format(time.RFC3339Nano)
	envelope := func(id, event string) string {
		return `{"schemaVersion":1,"messageId":"msg-` + id + `","receivedAt":"` + received + `","sourceId":"web","region":"cn",` +
			`"signals":{"ip":"203.0.113.45","userAgent":"Mozilla/5.0 (SecretPhone 9)"},"event":` + event + `}`
	}
	event := func(typ, timestamp string) string {
		return `{"type":"` + typ + `","event":"Viewed","anonymousId":"` + anon + `","userId":"` + user + `","timestamp":"` + timestamp + `",` +
			`"context":{"device":{"imei":"` + imei + `","id":"dev-` + imei + `"}},"properties":{"contact":"` + email + `"}}`
	}
	poison := []struct {
		reason, value string
	}{
		// "unknown type "imei-…"" in the error
		{"event.type: unknown type", envelope("p1", event("imei-"+imei, "2026-01-02T15:04:05Z"))},
		// "must be an ISO 8601 time …, got "a-7d1e…""
		{"event.timestamp: must be an ISO 8601 time", envelope("p2", event("track", anon))},
		// "must be a int, got number 490154203237518e9"
		{"schemaVersion: must be a int, got a number", `{"schemaVersion":` + imei + `e9,"messageId":"msg-p3","event":` + event("track", "") + `}`},
	}
	raw := cfg.Topics.Raw.Name
	var recs []*kgo.Record
	secrets := []string{anon, user, imei, email}
	for _, ps := range poison {
		recs = append(recs, &kgo.Record{Topic: raw, Key: []byte(anon), Value: []byte(ps.value)})
		secrets = append(secrets, dlqtest.JSONValues(t, []byte(ps.value), 6)...)
	}
	// Not JSON at all: its values are what the test knows it holds.
	recs = append(recs, &kgo.Record{Topic: raw, Key: []byte(anon), Value: []byte(`{"anonymousId":"` + anon + `","context":{"device":{"imei":"` + imei + `"}`)})
	for _, kind := range []string{policy.KindAnonymous, policy.KindUser, policy.KindIMEI, policy.KindDevice} {
		for _, id := range []string{anon, user, imei, "dev-" + imei} {
			secrets = append(secrets, p.clean.Keys().Pseudonyms(kind, id)...)
		}
	}
	testenv.Produce(t, ctx, brokers, recs...)

	dead := testenv.ReadTopic(t, ctx, brokers, cfg.Topics.DLQ.Name, len(recs))
	var errs []string
	for _, d := range dead {
		src := dlqtest.Check(t, ctx, brokers, d, secrets)
		if src.Topic != raw || kafkax.Header(d, kafkax.HeaderReason) != "invalid_envelope" || kafkax.Header(d, kafkax.HeaderStage) != "enricher" {
			t.Errorf("dead letter of %s/%d/%d: reason %q stage %q", src.Topic, src.Partition, src.Offset,
				kafkax.Header(d, kafkax.HeaderReason), kafkax.Header(d, kafkax.HeaderStage))
		}
		errs = append(errs, kafkax.Header(d, kafkax.HeaderError))
	}
	// The errors still say what is wrong, field by field.
	for _, ps := range poison {
		if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, ps.reason) }) {
			t.Errorf("no dead letter says %q: %q", ps.reason, errs)
		}
	}
	if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "invalid JSON") }) {
		t.Errorf("no dead letter says invalid JSON: %q", errs)
	}
}
