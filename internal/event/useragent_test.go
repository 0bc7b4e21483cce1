package event_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/consentflow/consentflow/internal/event"
)

func TestCapUserAgent(t *testing.T) {
	const n = event.MaxUserAgentBytes
	for _, tc := range []struct {
		name, in, want string
		cut            bool
	}{
		{"empty", "", "", false},
		{"short", "Mozilla/5.0", "Mozilla/5.0", false},
		{"at the limit", strings.Repeat("a", n), strings.Repeat("a", n), false},
		{"one over", strings.Repeat("a", n+1), strings.Repeat("a", n), true},
		{"29 KB", strings.Repeat("b", 29<<10), strings.Repeat("b", n), true},
		// 中 is 3 bytes: the limit falls inside the last one that would fit.
		{"inside a rune", strings.Repeat("a", n-1) + "中中", strings.Repeat("a", n-1), true},
		{"rune ends at the limit", strings.Repeat("a", n-3) + "中中", strings.Repeat("a", n-3) + "中", true},
		{"invalid bytes still cut near the limit", strings.Repeat("\x80", n+10), strings.Repeat("\x80", n-3), true},
	} {
		got, cut := event.CapUserAgent(tc.in)
		if got != tc.want || cut != tc.cut {
			t.Errorf("%s: CapUserAgent = %d bytes, cut %v; want %d bytes, cut %v", tc.name, len(got), cut, len(tc.want), tc.cut)
		}
		if utf8.ValidString(tc.in) && !utf8.ValidString(got) {
			t.Errorf("%s: cut a valid string into an invalid one", tc.name)
		}
	}
}
