package pii

import "testing"

// TestFoldSeesThroughLookalikes: written in lookalike characters, split by
// invisible ones, personal data folds to what Find recognises.
func TestFoldSeesThroughLookalikes(t *testing.T) {
	sc := NewScrubber()
	for in, want := range map[string]Kind{
		"１３８１２３４５６７８":                   Phone,
		"١٣٨١٢٣٤٥٦٧٨":                   Phone,
		"138\u200b1234\u200b5678":       Phone,
		"1\u03013\u03018\u030112345678": Phone,
		"wang＠qq.com":                   Email,
		"wang@qq。com":                   Email,
		"ｗａｎｇ＠ｑｑ．ｃｏｍ":                   Email,
		"wang\u00a0@\u00a0qq.com":       "",
		"１.２.４.８":                       IPv4,
		"𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖":                   Phone,
	} {
		kind, found := sc.Find(Fold(in))
		if want == "" {
			continue // folded, but not a match: spaces around the @ end an address
		}
		if !found || kind != want {
			t.Errorf("Find(Fold(%q)) = %q %v, want %q", in, kind, found, want)
		}
	}
	if s := "plain ASCII"; Fold(s) != s {
		t.Error("Fold changed ASCII")
	}
	if got := Fold("Café ｜ 東京"); got != "Café | 東京" {
		t.Errorf("Fold kept text it should: %q", got)
	}
}
