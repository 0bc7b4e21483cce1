package pii

import "strings"

// idNumberPattern is what nextIDNumber matches; tests hold the two equal.
const idNumberPattern = `\b[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]\b`

// imeiPattern is what nextIMEI matches; tests hold the two equal.
const imeiPattern = `\b\d{15}\b`

// nextIDNumber finds what idNumberPattern finds: an 18-character PRC
// resident identity number (area code, birth date, sequence, check
// character), as a whole word: \b on both sides of a match that starts and
// ends with word characters makes it exactly a run of word characters.
func nextIDNumber(s string, from int) (int, int) {
	for i := wordRunStart(s, from); i >= 0; i = wordRunStart(s, i) {
		j := wordRunEnd(s, i)
		if j-i == 18 && isIDNumber(s[i:j]) {
			return i, j
		}
		i = j
	}
	return -1, -1
}

func isIDNumber(t string) bool {
	if t[0] == '0' || !digitsAt(t, 0, 17) {
		return false
	}
	if c := t[17]; !isDigit(c) && c != 'X' && c != 'x' {
		return false
	}
	if century := t[6:8]; century != "18" && century != "19" && century != "20" {
		return false
	}
	month, day := t[10:12], t[12:14]
	return month >= "01" && month <= "12" && day >= "01" && day <= "31"
}

// nextIMEI finds what imeiPattern finds: a run of word characters that is
// exactly 15 digits.
func nextIMEI(s string, from int) (int, int) {
	for i := wordRunStart(s, from); i >= 0; i = wordRunStart(s, i) {
		j := wordRunEnd(s, i)
		if j-i == 15 && digitsAt(s, i, 15) {
			return i, j
		}
		i = j
	}
	return -1, -1
}

// nextCard finds a payment card number: 13-19 digits that pass the Luhn
// check, start with 2-6 (the card networks' major industry identifiers:
// millisecond and nanosecond timestamps, snowflake ids and ISBNs start with
// 1 or 9), and are written as cards are: contiguous, or in groups split by
// single spaces or single dashes (one kind throughout) as 4-4-4-1..4,
// 4-4-4-4-1..3 or 4-6-4..5 (Diners, Amex). Thirteen digits is an old Visa
// length only, so a 13-digit number must start with 4: most EAN-13 barcodes
// do not. The number is not part of a word, a decimal or a '+' phone
// number; it may be part of a longer run of groups ("Order 12 4111 1111
// 1111 1111"), the leftmost then longest card in it being the match.
func nextCard(s string, from int) (int, int) {
	for i := from; i < len(s); i++ {
		if c := s[i]; c < '2' || c > '6' || digitAt(s, i-1) {
			continue
		}
		if c := byteAt(s, i-1); isWord(c) || c == '+' || c == '.' && digitAt(s, i-2) {
			continue
		}
		if e := cardAt(s, i); e >= 0 {
			return i, e
		}
	}
	return -1, -1
}

// cardAt returns the end of the longest card number from i, or -1.
func cardAt(s string, i int) int {
	var ends [5]int // where each of up to five groups ends
	var sizes [5]int
	var sep byte
	n, j := 0, i
	for n < 5 {
		k := digitRun(s, j)
		sizes[n], ends[n] = k, j+k
		n++
		j += k
		c := byteAt(s, j)
		if !isSpaceOrDash(c) || sep != 0 && c != sep || !digitAt(s, j+1) {
			break
		}
		sep = c
		j++
	}
	for g := n; g >= 1; g-- {
		e := ends[g-1]
		if c := byteAt(s, e); isWord(c) || c == '.' && digitAt(s, e+1) {
			continue
		}
		if cardGrouping(sizes[:g]) && (s[i] == '4' || cardDigits(sizes[:g]) > 13) && luhn(s[i:e]) {
			return e
		}
	}
	return -1
}

func cardDigits(sizes []int) int {
	n := 0
	for _, k := range sizes {
		n += k
	}
	return n
}

// cardGrouping reports whether groups of these sizes are a card number as
// cards are written.
func cardGrouping(sizes []int) bool {
	last := sizes[len(sizes)-1]
	switch len(sizes) {
	case 1:
		return last >= 13 && last <= 19
	case 3:
		return sizes[0] == 4 && sizes[1] == 6 && (last == 4 || last == 5)
	case 4:
		return sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 4 && last >= 1 && last <= 4
	case 5:
		return sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 4 && sizes[3] == 4 && last >= 1 && last <= 3
	}
	return false
}

// luhn reports whether the digits in t (separators skipped) pass the Luhn
// check.
func luhn(t string) bool {
	sum, double := 0, false
	for i := len(t) - 1; i >= 0; i-- {
		c := t[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// nextUUID finds a UUID-shaped id, 8-4-4-4-12 hex digits in either case,
// as IDFA, IDFV and GAID are written (so is any UUID: an id shaped so is
// taken for a device's), not part of a word. The nil UUID is not one: it is
// what iOS reports as the IDFA when the user refused tracking, and it
// identifies no one.
func nextUUID(s string, from int) (int, int) {
	for i := from; i+36 <= len(s); i++ {
		if s[i+8] != '-' || s[i+13] != '-' || s[i+18] != '-' || s[i+23] != '-' {
			continue
		}
		if wordAt(s, i-1) || wordAt(s, i+36) {
			continue
		}
		ok, zero := true, true
		for k := 0; k < 36 && ok; k++ {
			if k == 8 || k == 13 || k == 18 || k == 23 {
				continue
			}
			ok = isHex(s[i+k])
			zero = zero && s[i+k] == '0'
		}
		if ok && !zero {
			return i, i + 36
		}
	}
	return -1, -1
}

// nextHexWord finds a run of word characters that is n hex digits, with at
// least one digit and one letter: a random id of that length has both, and
// a run of n digits or of n letters is a number or a word.
func nextHexWord(s string, from, n int) (int, int) {
	for i := wordRunStart(s, from); i >= 0; i = wordRunStart(s, i) {
		j := wordRunEnd(s, i)
		if j-i == n && mixedHex(s[i:j]) {
			return i, j
		}
		i = j
	}
	return -1, -1
}

func mixedHex(t string) bool {
	digit, letter := false, false
	for i := 0; i < len(t); i++ {
		switch classOf[t[i]] {
		case cDigit:
			digit = true
		case cHex:
			letter = true
		default:
			return false
		}
	}
	return digit && letter
}

// nextAndroidID finds a 16-hex-digit Android ID (9774d56d682e549c) as a
// whole word. A 64-bit hex id of another kind (a tracing span id) reads
// as one too; 32-hex ids (MD5 sums, trace ids) do not.
func nextAndroidID(s string, from int) (int, int) { return nextHexWord(s, from, 16) }

// nextAPNs finds an APNs device token, 64 hex digits as a whole word. A
// SHA-256 sum written in hex reads as one too; nothing else common does.
func nextAPNs(s string, from int) (int, int) { return nextHexWord(s, from, 64) }

func isTokenChar(c byte) bool { return isWord(c) || c == '-' }

// fcmMarker is in every FCM registration token, between the instance id
// and the rest.
const fcmMarker = ":APA91b"

// nextFCM finds an FCM registration token: the instance id (the run of
// [A-Za-z0-9_-] before ":APA91b", if any), ":APA91b" and at least 100 more
// of those characters. Without an instance id the ':' stays, as it sets
// the token off from what is before it.
func nextFCM(s string, from int) (int, int) {
	for from < len(s) {
		k := strings.Index(s[from:], fcmMarker)
		if k < 0 {
			break
		}
		k += from
		end := k + len(fcmMarker)
		for end < len(s) && isTokenChar(s[end]) {
			end++
		}
		if end-(k+len(fcmMarker)) >= 100 {
			start := k
			for start > from && isTokenChar(s[start-1]) {
				start--
			}
			if start == k {
				start++ // no instance id: keep the ':'
			}
			return start, end
		}
		from = k + 1
	}
	return -1, -1
}

// nextExpo finds an Expo push token, ExponentPushToken[...] or
// ExpoPushToken[...] with at least 16 of [A-Za-z0-9_-] inside (real ones
// have 22): fewer could be a replacement's name, "ExponentPushToken[email]"
// being what scrubbing "ExponentPushToken" and an address next to it left.
func nextExpo(s string, from int) (int, int) {
	for from < len(s) {
		k := strings.Index(s[from:], "PushToken[")
		if k < 0 {
			break
		}
		k += from
		start := -1
		switch {
		case k >= 8 && s[k-8:k] == "Exponent":
			start = k - 8
		case k >= 4 && s[k-4:k] == "Expo":
			start = k - 4
		}
		from = k + 1
		if start < 0 || wordAt(s, start-1) {
			continue
		}
		j := k + len("PushToken[")
		for j < len(s) && isTokenChar(s[j]) {
			j++
		}
		if j-(k+len("PushToken[")) >= 16 && byteAt(s, j) == ']' {
			return start, j + 1
		}
	}
	return -1, -1
}
