package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
)

// TestUserAgentsBounded: a kept event's 29 KB context.userAgent is
// generalized from its first event.MaxUserAgentBytes and counted as
// truncated; one with more semicolons than are parsed is counted as
// unparsed; one of a real size is counted as neither.
func TestUserAgentsBounded(t *testing.T) {
	p := offlinePipeline(t)
	const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
	head := chrome + " " + strings.Repeat("x", event.MaxUserAgentBytes-len(chrome)-1)
	long := head + " Edg/120.0.2210.91 " + strings.Repeat("y", 29<<10) // the whole says Edge
	at := time.Now().UTC().Add(-time.Hour)
	var records []*kgo.Record
	for i, ua := range []string{long, chrome, chrome + strings.Repeat(";", 40)} {
		ctx, _ := json.Marshal(map[string]any{"userAgent": ua, "consent": map[string]any{"categoryPreferences": map[string]bool{"Analytics": true}}})
		v, _ := json.Marshal(event.Envelope{SchemaVersion: event.SchemaVersion, MessageID: fmt.Sprintf("m-%d", i), ReceivedAt: at.Add(time.Minute), SourceID: "app", Region: "cn",
			Event: event.Event{Type: "page", AnonymousID: fmt.Sprintf("anon-ua-%d", i), Timestamp: at.Format(time.RFC3339Nano), Context: json.RawMessage(ctx)}})
		records = append(records, &kgo.Record{Topic: "raw", Value: v})
	}
	out, _, tally := p.process(records)
	var agents []string
	for _, r := range out {
		if r.Topic != p.cfg.Topics.Clean.Name {
			continue
		}
		c, err := event.DecodeClean(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, c.Browser+"/"+c.OS+"/"+c.DeviceClass)
	}
	if want := []string{"Chrome/Windows/desktop", "Chrome/Windows/desktop", "//other"}; fmt.Sprint(agents) != fmt.Sprint(want) {
		t.Errorf("kept events' agents %q, want %q", agents, want)
	}
	p.metrics.add(tally)
	for reason, want := range map[string]float64{uaTruncated: 1, uaUnparsed: 1} {
		if got := testutil.ToFloat64(p.metrics.userAgentsBounded.WithLabelValues(reason)); got != want {
			t.Errorf("enricher_user_agents_bounded_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}
