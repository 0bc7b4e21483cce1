package policy

import "testing"

func TestLeaks(t *testing.T) {
	for _, c := range []struct {
		out, id string
		want    bool
	}{
		{`{"note":"user alice-123 wrote"}`, "alice-123", true},
		{`{"page":"/u/10086"}`, "10086", true},
		{`{"uid":10086}`, "10086", true},
		{`{"order":"1100867"}`, "10086", false}, // inside a longer number
		{`{"sku":"ab10086cd"}`, "10086", false},
		{`{"k":"ab"}`, "ab", false}, // too short to tell from chance
		{`{"k":"abc"}`, "abc", true},
		{`{"k":"xabcy"}`, "abc", false},
	} {
		if got := leaks([]byte(c.out), []byte(c.id)); got != c.want {
			t.Errorf("leaks(%s, %q) = %v, want %v", c.out, c.id, got, c.want)
		}
	}
}
