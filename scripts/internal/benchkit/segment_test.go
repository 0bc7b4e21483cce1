package benchkit

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/consentflow/consentflow/internal/event"
)

func TestPopulation(t *testing.T) {
	pop, err := NewPopulation(4, func(i int) int { return 2 * i })
	if err != nil {
		t.Fatal(err)
	}
	if pop.People[1] != NewPerson(2) || len(pop.Contexts) != 4 {
		t.Errorf("subject 1 = %+v; want NewPerson(2)", pop.People[1])
	}
	var ctx map[string]any
	if err := json.Unmarshal(pop.Contexts[3], &ctx); err != nil || ctx["userAgent"] == nil {
		t.Errorf("context %s: %v", pop.Contexts[3], err)
	}
	var u event.ConsentUpdate
	if err := json.Unmarshal(pop.Consent(1, true, true), &u); err != nil {
		t.Fatal(err)
	}
	if u.UserID != pop.People[1].UserID || u.UserID == "" || u.AnonymousID != pop.People[1].AnonymousID || !u.CrossBorder || !u.Purposes["analytics"] {
		t.Errorf("Consent(1, true, true) = %+v", u)
	}
	var anon event.ConsentUpdate
	if err := json.Unmarshal(pop.Consent(1, false, false), &anon); err != nil || anon.UserID != "" || anon.CrossBorder {
		t.Errorf("Consent(1, false, false) = %+v, %v; want no userId, not cross-border", anon, err)
	}
}

func TestEventsAreValidAndRepeatable(t *testing.T) {
	pop, err := NewPopulation(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, appendStart := range []func([]byte, *rand.Rand, string) []byte{AppendProductViewed, AppendPageView} {
		one := pop.AppendEnd(appendStart(nil, rand.New(rand.NewPCG(7, 1)), "run-1"), 0, "2026-01-01T00:00:00Z")
		two := pop.AppendEnd(appendStart(nil, rand.New(rand.NewPCG(7, 1)), "run-1"), 0, "2026-01-01T00:00:00Z")
		if string(one) != string(two) {
			t.Errorf("the same seed made %s and %s", one, two)
		}
		var ev struct {
			Type       string
			Properties map[string]any
			Timestamp  string
			Context    map[string]any
		}
		if err := json.Unmarshal(one, &ev); err != nil {
			t.Fatalf("%s: %v", one, err)
		}
		if ev.Type == "" || ev.Properties["run"] != "run-1" || ev.Timestamp != "2026-01-01T00:00:00Z" || ev.Context == nil {
			t.Errorf("%s", one)
		}
	}
}
