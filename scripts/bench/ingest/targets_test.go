package ingest

import (
	"encoding/json"
	"testing"
)

// TestSplitBatchFindsEachEvent: the relay's records are exactly the events
// of the body, whatever their strings hold, each keyed by its anonymousId.
func TestSplitBatchFindsEachEvent(t *testing.T) {
	gen, err := newEventGen("split")
	if err != nil {
		t.Fatal(err)
	}
	tricky := `{"anonymousId":"a-1","properties":{"s":"],}{[\"\\","n":[1,{"x":"}"}]}}`
	for _, n := range []int{1, 2, 20} {
		body := gen.batchBody(n)
		body = append(append(body[:len(body)-2:len(body)-2], ","+tricky...), "]}"...)
		var want struct{ Batch []json.RawMessage }
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		got := splitBatch(body)
		if len(got) != len(want.Batch) {
			t.Fatalf("batch of %d+1: split into %d", n, len(got))
		}
		for i := range got {
			if string(got[i]) != string(want.Batch[i]) {
				t.Fatalf("event %d: %s, want %s", i, got[i], want.Batch[i])
			}
			var ev struct{ AnonymousID string }
			_ = json.Unmarshal(got[i], &ev)
			if key := string(anonymousID(got[i])); key != ev.AnonymousID || key == "" {
				t.Fatalf("event %d keyed %q, want %q", i, key, ev.AnonymousID)
			}
		}
	}
	if got := splitBatch([]byte(`{"batch":[ ]}`)); len(got) != 0 {
		t.Errorf("empty batch split into %d events", len(got))
	}
}
