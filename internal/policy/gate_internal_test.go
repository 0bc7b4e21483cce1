package policy

import (
	"net/url"
	"testing"
)

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

// FuzzStripPlainURL checks the shortcut of stripURL against url.Parse.
func FuzzStripPlainURL(f *testing.F) {
	for _, s := range []string{"https://shop.example.cn/?utm_source=wechat", "https://www.baidu.com/s?wd=trail+shoes",
		"http://h", "https://h/p/q.html#top", "https://h/p#%zz", "https://h/p?q=\x7f", "https://h/a b", "HTTPS://h/",
		"https://u@h/", "https://h:8080/", "https://h//x/./y", "https://-/", "https://h?", "https://h#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := stripPlainURL(raw)
		if !ok {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" {
			t.Fatalf("stripPlainURL(%q) = %q, url.Parse: %v %q %q", raw, got, err, u.Scheme, u.Opaque)
		}
		u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
		if want := u.String(); got != want {
			t.Fatalf("stripPlainURL(%q) = %q, want %q", raw, got, want)
		}
	})
}
