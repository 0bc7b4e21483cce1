package pii

import "net/netip"

// nextIPv4 finds a dotted quad, each octet 0-255 written without leading
// zeros (as net/netip requires), that is not part of a longer run of dotted
// numbers ("1.2.3.4.5" is a version, not an address) nor of a word
// ("v1.2.3.4"). A version with exactly four parts reads as an address: the
// risk is accepted, as it only takes away. A port or a sentence's full stop
// may follow: "from 203.0.113.7:443", "from 10.1.2.3.".
func nextIPv4(s string, from int) (int, int) {
	for i := from; i < len(s); i++ {
		if !isDigit(s[i]) || digitAt(s, i-1) {
			continue
		}
		if c := byteAt(s, i-1); isWord(c) || c == '.' && digitAt(s, i-2) {
			continue
		}
		j := i
		parts := 0
		for {
			n := digitRun(s, j)
			if n == 0 || n > 3 || n > 1 && s[j] == '0' || n == 3 && s[j:j+3] > "255" {
				break
			}
			j += n
			parts++
			if parts == 4 || byteAt(s, j) != '.' {
				break
			}
			j++
		}
		if parts != 4 || isWord(byteAt(s, j)) || byteAt(s, j) == '.' && digitAt(s, j+1) {
			continue
		}
		if a, err := netip.ParseAddr(s[i:j]); err == nil && a.Is4() { // never fails here: confirms
			return i, j
		}
	}
	return -1, -1
}

// isV6Char reports whether c may be in the text of an IPv6 address.
func isV6Char(c byte) bool { return isHex(c) || c == ':' || c == '.' }

// nextIPv6 finds what net/netip.ParseAddr accepts as an IPv6 address (no
// zone: one after '%' stays) in a token of hex digits, ':' and '.' that
// holds at least two ':' and a decimal digit. The digit keeps out words
// such as "Face::add" (C++-style names spelt in hex letters); no real
// address lacks one but a few like "fe::", and "::" itself identifies
// nobody. A token is not part of a word ("std::vector" is not one), and one
// ':' before it ("ip:fe80::1") or a trailing '.' or ':' ("from ::1.") is
// punctuation, not part of it.
func nextIPv6(s string, from int) (int, int) {
	i := from
	for i < len(s) {
		if !isV6Char(s[i]) {
			i++
			continue
		}
		start, j := i, i
		colons, digit := 0, false
		for j < len(s) && isV6Char(s[j]) {
			if s[j] == ':' {
				colons++
			} else if isDigit(s[j]) {
				digit = true
			}
			j++
		}
		i = j
		if colons < 2 || !digit || isWord(byteAt(s, j)) {
			continue
		}
		if s[start] == ':' && byteAt(s, start+1) != ':' {
			start++ // "ip:fe80::1": the ':' sets a value off
		} else if wordAt(s, start-1) {
			continue
		}
		// Try the whole token, then without one or two trailing '.' or ':'.
		for end := j; end > start && end >= j-2; end-- {
			if validIPv6(s[start:end]) {
				if a, err := netip.ParseAddr(s[start:end]); err == nil && a.Is6() { // confirms
					return start, end
				}
			}
			if c := s[end-1]; c != '.' && c != ':' {
				break
			}
		}
	}
	return -1, -1
}

// validIPv6 reports whether netip.ParseAddr would accept t, a string of hex
// digits, ':' and '.', as an IPv6 address: ParseAddr reports a failure in an
// error it allocates, and most candidates (times such as 10:30:00) fail.
// It follows ParseAddr step by step; a test holds the two equal.
func validIPv6(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] == '.' {
			return false // ParseAddr reads it as IPv4, which has no ':'
		}
		if t[i] == ':' {
			break
		}
	}
	s := t
	ellipsis := -1
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return true
		}
	}
	i := 0 // bytes of the address parsed
	for i < 16 {
		off := 0
		for off < len(s) && isHex(s[off]) {
			off++
			if off > 4 {
				return false
			}
		}
		if off == 0 {
			return false
		}
		if off < len(s) && s[off] == '.' {
			if ellipsis < 0 && i != 12 || i+4 > 16 || !validIPv4Fields(s) {
				return false
			}
			s = ""
			i += 4
			break
		}
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return false
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return false
	}
	if i < 16 {
		return ellipsis >= 0
	}
	return ellipsis < 0
}

// validIPv4Fields is netip's parseIPv4Fields as a predicate.
func validIPv4Fields(s string) bool {
	val, pos, digLen := 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			if digLen == 1 && val == 0 {
				return false
			}
			val = val*10 + int(c-'0')
			digLen++
			if val > 255 {
				return false
			}
		case c == '.':
			if i == 0 || i == len(s)-1 || s[i-1] == '.' || pos == 3 {
				return false
			}
			pos++
			val, digLen = 0, 0
		default:
			return false
		}
	}
	return pos == 3
}

// nextMACColon and nextMACDash find a MAC address as six pairs of hex
// digits split by ':' or by '-' (one of them throughout), all digits or not
// ("00:11:22:33:44:55" is a real address), that is not part of a longer
// such run: a pair and the separator before or after it make it longer
// ("ab:a4:83:e7:12:34:56"), a name such as "mac:" does not.
func nextMACColon(s string, from int) (int, int) { return nextMAC(s, from, ':') }

func nextMACDash(s string, from int) (int, int) { return nextMAC(s, from, '-') }

func nextMAC(s string, from int, sep byte) (int, int) {
	for i := from; i+17 <= len(s); i++ {
		if s[i+2] != sep {
			continue
		}
		ok := true
		for k := 0; k < 6 && ok; k++ {
			j := i + 3*k
			ok = isHex(s[j]) && isHex(s[j+1]) && (k == 5 || s[j+2] == sep)
		}
		if !ok {
			continue
		}
		if c := byteAt(s, i-1); isWord(c) || c == sep && isHexPair(s, i-3) {
			continue
		}
		if c := byteAt(s, i+17); isWord(c) || c == sep && isHexPair(s, i+18) {
			continue
		}
		return i, i + 17
	}
	return -1, -1
}

// isHexPair reports whether s holds a word of two hex digits at i.
func isHexPair(s string, i int) bool {
	return i >= 0 && i+2 <= len(s) && isHex(s[i]) && isHex(s[i+1]) && !wordAt(s, i-1) && !wordAt(s, i+2)
}

// nextCiscoMAC finds a MAC address in Cisco's dotted form, three groups of
// four hex digits ("a483.e712.3456"), with at least one hex letter: all
// digits, it is a dotted number such as a date or a version.
func nextCiscoMAC(s string, from int) (int, int) {
	for i := from; i+14 <= len(s); i++ {
		if s[i+4] != '.' || s[i+9] != '.' {
			continue
		}
		letter, ok := false, true
		for k := 0; k < 14 && ok; k++ {
			if k == 4 || k == 9 {
				continue
			}
			c := s[i+k]
			ok = isHex(c)
			letter = letter || ok && !isDigit(c)
		}
		if !ok || !letter {
			continue
		}
		if c := byteAt(s, i-1); isWord(c) || c == '.' && wordAt(s, i-2) {
			continue
		}
		if c := byteAt(s, i+14); isWord(c) || c == '.' && wordAt(s, i+15) {
			continue
		}
		return i, i + 14
	}
	return -1, -1
}

// nextBareMAC finds a MAC address written without separators, twelve hex
// digits as a whole word ("a483e7123456"), with at least one digit and one
// letter (a run of twelve digits is a number) and the first octet's
// multicast bit clear, as a device's own address has it: half of the
// random hex ids of that length (Docker's and Git's short ids) are so told
// from an address, the other half is taken for one, a risk accepted, as
// it only takes away. A word in a chain of hex words ("-", ":" or "."
// between), as the last group of a UUID or an id such as
// "run-0a1b2c3d-4e5f-a483e7123456", is not one.
func nextBareMAC(s string, from int) (int, int) {
	for i := wordRunStart(s, from); i >= 0; i = wordRunStart(s, i) {
		j := wordRunEnd(s, i)
		if j-i == 12 && mixedHex(s[i:j]) && unicastOctet(s[i+1]) &&
			!hexWordBefore(s, i) && !hexWordAfter(s, j) {
			return i, j
		}
		i = j
	}
	return -1, -1
}

// unicastOctet reports whether c, the second hex digit of an octet, has
// the multicast bit (the lowest) clear.
func unicastOctet(c byte) bool {
	switch {
	case isDigit(c):
		return (c-'0')&1 == 0
	case c >= 'a':
		return (c-'a')&1 == 0 // a=10, c=12, e=14
	default:
		return (c-'A')&1 == 0
	}
}

func isHexChainSep(c byte) bool { return c == '-' || c == ':' || c == '.' }

// hexWordBefore reports whether a separator of a hex chain and a word of
// hex digits stand just before i.
func hexWordBefore(s string, i int) bool {
	if !isHexChainSep(byteAt(s, i-1)) {
		return false
	}
	k := i - 1
	for k > 0 && isWord(s[k-1]) {
		k--
	}
	return k < i-1 && allHex(s[k:i-1])
}

// hexWordAfter reports whether a separator of a hex chain and a word of
// hex digits stand just after j.
func hexWordAfter(s string, j int) bool {
	if !isHexChainSep(byteAt(s, j)) {
		return false
	}
	k := wordRunEnd(s, j+1)
	return k > j+1 && allHex(s[j+1:k])
}

func allHex(t string) bool {
	for i := 0; i < len(t); i++ {
		if !isHex(t[i]) {
			return false
		}
	}
	return true
}
