package pipeline

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/catalogue"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestInferCatalogueFromRawTopic: `enricher catalogue infer` reads the raw
// topic to its end, without a consumer group, and drafts a catalogue that
// parses, is accepted as the enricher's, declares what it read and holds
// none of the values.
func TestInferCatalogueFromRawTopic(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	cfg := testConfig(brokers)
	isolate(t, brokers, &cfg)
	var records []*kgo.Record
	for i, props := range []string{`{"revenue":25,"currency":"CNY","buyer@example.com":true}`, `{"revenue":9.5,"contact":"someone@example.com"}`, `{"revenue":3}`} {
		env := event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: "m" + string(rune('0'+i)), ReceivedAt: time.Now().UTC(), SourceID: "app", Region: "cn",
			Event: event.Event{Type: "track", Event: "Order Completed", UserID: "u-infer", Properties: json.RawMessage(props),
				Context: json.RawMessage(`{"app":{"name":"Shop"},"ip":"203.0.113.9"}`)}}
		v, _ := json.Marshal(env)
		records = append(records, &kgo.Record{Topic: cfg.Topics.Raw.Name, Value: v})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafkax.EnsureTopics(ctx, cl, []kafkax.TopicSpec{cfg.Topics.Raw}, nil, quiet); err != nil {
		t.Fatal(err)
	}
	testenv.Produce(t, ctx, brokers, records...)

	var out, errOut bytes.Buffer
	if err := InferCatalogue(ctx, InferSource{Raw: &cfg, MaxRecords: 100, Timeout: 30 * time.Second}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	draft := out.String()
	c, err := catalogue.Parse("draft.yaml", out.Bytes())
	if err != nil {
		t.Fatalf("the draft does not parse: %v\n%s", err, draft)
	}
	if err := policy.CheckContextDeclarations(c); err != nil {
		t.Errorf("the enricher would refuse the draft: %v", err)
	}
	decl := c.Lookup("track", "Order Completed")
	if f := decl.Properties.Member("revenue").Field; f == nil || f.Type != catalogue.Number || f.Class != catalogue.Internal {
		t.Errorf("revenue: %+v, want an internal number (nothing is guessed public)", f)
	}
	if f := decl.Properties.Member("contact").Field; f == nil || f.Class != catalogue.Personal {
		t.Errorf("contact: %+v, want personal", f)
	}
	for _, value := range []string{"someone@example.com", "buyer@example.com", "203.0.113.9", "CNY", "u-infer"} {
		if strings.Contains(draft, value) {
			t.Errorf("the draft holds %q:\n%s", value, draft)
		}
	}
	if !strings.Contains(errOut.String(), "3 events read") {
		t.Errorf("summary %q, want 3 events read", errOut.String())
	}
}
