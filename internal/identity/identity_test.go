package identity

import (
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
)

func link(from, user string) *kgo.Record {
	v, _ := json.Marshal(event.IdentityLink{SchemaVersion: event.SchemaVersion, UserID: user, LinkedAt: time.Now()})
	return &kgo.Record{Key: []byte(from), Value: v}
}

// TestLinks applies links, a re-link to another user, a tombstone and an
// unreadable value, in offset order.
func TestLinks(t *testing.T) {
	l := New()
	apply := l.Apply(slog.New(slog.NewTextHandler(io.Discard, nil)))
	apply([]*kgo.Record{link("a-1", "u-1"), link("a-2", "u-1"), link("a-3", "u-2"), link("a-1", "u-1")})
	if got := l.Of("u-1"); !slices.Equal(got, []string{"a-1", "a-2"}) {
		t.Errorf("Of(u-1) = %v", got)
	}
	// a-2 moves to u-2 (a shared device signed in by another person), a-3
	// is forgotten, and a bad value drops a-1's link rather than keep it.
	apply([]*kgo.Record{link("a-2", "u-2"), {Key: []byte("a-3")}, {Key: []byte("a-1"), Value: []byte(`{"userId":""}`)}})
	if got := l.Of("u-1"); len(got) != 0 {
		t.Errorf("Of(u-1) = %v, want none", got)
	}
	if got := l.Of("u-2"); !slices.Equal(got, []string{"a-2"}) {
		t.Errorf("Of(u-2) = %v", got)
	}
	if l.Size() != 1 {
		t.Errorf("Size = %d", l.Size())
	}
}
