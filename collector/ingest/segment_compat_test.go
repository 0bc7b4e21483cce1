package ingest

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	analytics "gopkg.in/segmentio/analytics-go.v3"

	"github.com/consentflow/consentflow/internal/testenv"
)

// TestSegmentGoClient sends every event type through Segment's own Go
// library, unmodified and with its default settings but the endpoint, and
// finds each event in the raw topic.
func TestSegmentGoClient(t *testing.T) {
	f := newAPIFixture(t, nil)
	run := testenv.Name(t, "compat")
	cb := &callback{}
	client, err := analytics.NewWithConfig("web-write-key", analytics.Config{Endpoint: f.base, Callback: cb})
	if err != nil {
		t.Fatal(err)
	}
	user := func(typ string) string { return run + "-" + typ }
	messages := []analytics.Message{
		analytics.Track{UserId: user("track"), Event: "Order Completed", Properties: analytics.NewProperties().Set("total", 12.5)},
		analytics.Identify{UserId: user("identify"), Traits: analytics.NewTraits().SetName("Zhang San")},
		analytics.Page{UserId: user("page"), Name: "Pricing"},
		analytics.Screen{UserId: user("screen"), Name: "Settings"},
		analytics.Group{UserId: user("group"), GroupId: "acme"},
		analytics.Alias{UserId: user("alias"), PreviousId: "anon-compat"},
	}
	for _, m := range messages {
		if err := client.Enqueue(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Close(); err != nil { // flushes and waits
		t.Fatal(err)
	}
	if failed := cb.failures(); len(failed) > 0 {
		t.Fatalf("the Segment client reports failures: %v", failed)
	}

	found := map[string]bool{}
	for _, rec := range testenv.ReadTopic(t, testenv.Context(t, 30*time.Second), f.brokers, f.s.cfg.Topics.Raw.Name, len(messages)) {
		var env struct {
			MessageID string `json:"messageId"`
			Event     struct {
				Type    string `json:"type"`
				UserID  string `json:"userId"`
				Context struct {
					Library struct{ Name string } `json:"library"`
				} `json:"context"`
			} `json:"event"`
		}
		if err := json.Unmarshal(rec.Value, &env); err != nil {
			t.Fatal(err)
		}
		if env.Event.UserID != user(env.Event.Type) {
			t.Errorf("%s event stored for user %q", env.Event.Type, env.Event.UserID)
		}
		if env.MessageID == "" || env.Event.Context.Library.Name != "analytics-go" {
			t.Errorf("%s event: messageId %q, library %q (want the client's, from the batch context)", env.Event.Type, env.MessageID, env.Event.Context.Library.Name)
		}
		found[env.Event.Type] = true
	}
	for _, typ := range []string{"track", "identify", "page", "screen", "group", "alias"} {
		if !found[typ] {
			t.Errorf("no %s event from the Segment client in the raw topic", typ)
		}
	}
}

type callback struct {
	mu     sync.Mutex
	failed []error
}

func (c *callback) Success(analytics.Message) {}

func (c *callback) Failure(_ analytics.Message, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = append(c.failed, err)
}

func (c *callback) failures() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}
