package pipeline

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestRekeyErasures: records of the suppression list keyed by raw
// identifiers, as before pseudonym keys, are rewritten as records keyed by
// pseudonyms and their raw keys tombstoned; a store rebuilt from the topic
// still suppresses every subject, no latest record names a raw id, and a
// second run has nothing to do.
func TestRekeyErasures(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	cfg := testConfig(brokers)
	isolate(t, brokers, &cfg)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafkax.EnsureTopics(ctx, cl, []kafkax.TopicSpec{cfg.Topics.Erasures}, nil, quiet); err != nil {
		t.Fatal(err)
	}
	legacy := func(id, kind string) *kgo.Record {
		v, _ := json.Marshal(event.ErasureRecord{SchemaVersion: event.SchemaVersion, RequestID: "old-" + id, Reason: "user_request",
			Operator: "dpo", RequestedAt: time.Now().Add(-time.Hour).UTC(), SubjectKind: kind})
		return &kgo.Record{Topic: cfg.Topics.Erasures.Name, Key: []byte(id), Value: v}
	}
	testenv.Produce(t, ctx, brokers, legacy("u-old", event.SubjectUserID), legacy("a-old", event.SubjectAnonymousID),
		legacy("p-old", event.SubjectPreviousID), &kgo.Record{Topic: cfg.Topics.Erasures.Name, Key: []byte("bad-old"), Value: []byte("{")})
	testenv.Produce(t, ctx, brokers, erasure(cfg, "u-new", event.SubjectUserID)[0]) // keyed by pseudonym already

	var out bytes.Buffer
	if n, err := RekeyErasures(ctx, cfg, &out); err != nil || n != 4 {
		t.Fatalf("rekey: %d, %v (%s), want 4 raw keys", n, err, out.String())
	}
	if n, err := RekeyErasures(ctx, cfg, &out); err != nil || n != 0 {
		t.Errorf("second rekey: %d, %v, want nothing to do", n, err)
	}
	if strings.Contains(out.String(), "u-old") {
		t.Errorf("the report names a raw identifier: %s", out.String())
	}
	latest := map[string][]byte{}
	for _, r := range testenv.ReadAll(t, ctx, brokers, cfg.Topics.Erasures.Name) {
		latest[string(r.Key)] = r.Value
	}
	for _, raw := range []string{"u-old", "a-old", "p-old", "bad-old"} {
		if v, ok := latest[raw]; !ok || v != nil {
			t.Errorf("raw key %s: latest value %q, want a tombstone", raw, v)
		}
	}
	// The store of the latest records but the tombstones: what a rebuild
	// reads once the topic is compacted.
	keys, err := cfg.Pseudonym.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	store := consentstore.New(1, keys)
	for key, v := range latest {
		if v != nil {
			rec, _ := event.DecodeErasureRecord(v)
			store.SuppressRecord(key, rec)
		}
	}
	for _, c := range []struct {
		kind consentstore.Kind
		id   string
	}{{consentstore.KindUser, "u-old"}, {consentstore.KindAnonymous, "a-old"}, {consentstore.KindUser, "p-old"}, {consentstore.KindAnonymous, "p-old"},
		{consentstore.KindUser, "bad-old"}, {consentstore.KindAnonymous, "bad-old"}, {consentstore.KindUser, "u-new"}} {
		if !store.Suppressed(c.kind, c.id) {
			t.Errorf("%s (kind %d) is not suppressed by the rekeyed records", c.id, c.kind)
		}
	}
	if store.Suppressed(consentstore.KindAnonymous, "u-old") {
		t.Error("a userId's record rekeyed as an anonymousId's too")
	}
}
