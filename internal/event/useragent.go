package event

import "unicode/utf8"

// MaxUserAgentBytes bounds a user agent, the request's User-Agent and an
// event's context.userAgent alike, wherever one is stored or parsed.
// Real ones are a few hundred bytes (in-app browsers' the longest); the
// regexes that generalize one cost time in proportion to its length, and
// a 30 KB one times a batch of small events would multiply a request's
// size.
const MaxUserAgentBytes = 512

// CapUserAgent cuts ua to at most MaxUserAgentBytes, at the start of a
// UTF-8 sequence so that a valid string stays valid, and reports whether
// it cut.
func CapUserAgent(ua string) (string, bool) {
	if len(ua) <= MaxUserAgentBytes {
		return ua, false
	}
	cut := MaxUserAgentBytes
	// ua[cut] is the first byte left out: back up over the rest of the
	// sequence it continues (at most UTFMax-1 bytes, so invalid input cuts
	// near the limit too).
	for i := 0; i < utf8.UTFMax-1 && !utf8.RuneStart(ua[cut]); i++ {
		cut--
	}
	return ua[:cut], true
}
