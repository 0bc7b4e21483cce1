package event

import (
	"regexp"
	"testing"
)

// TestNewID checks the ids are version 4 UUIDs of the RFC 9562 variant,
// and differ.
func TestNewID(t *testing.T) {
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		id := NewID()
		if !uuid4.MatchString(id) {
			t.Fatalf("NewID() = %q, want a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}
