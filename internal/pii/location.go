package pii

// nextLocation finds a latitude,longitude pair: two decimals, each with an
// optional sign and at least three fractional digits (about 100 m: fewer
// is a city, and prices have two), the first in [-90, 90] and the second
// in [-180, 180], split by a comma and/or spaces: "31.2304,121.4737",
// "31.2304, 121.4737", "-33.8688 151.2093". Neither decimal is part of a
// word, of a longer dotted number ("1.2345.6") or of a number with a
// hyphen ("ord-12.3456"). Two three-decimal amounts side by side ("12.990,
// 13.500") read as a place too: the risk is accepted, as it only takes
// away.
func nextLocation(s string, from int) (int, int) {
	for i := from; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && c != '-' && c != '+' {
			continue
		}
		if p := byteAt(s, i-1); isWord(p) || p == '.' || p == '-' || p == '+' {
			continue
		}
		e1, ok := coordinateAt(s, i, 90)
		if !ok {
			continue
		}
		j := e1
		for n := 0; n < 3 && byteAt(s, j) == ' '; n++ {
			j++
		}
		if byteAt(s, j) == ',' {
			j++
			for n := 0; n < 3 && byteAt(s, j) == ' '; n++ {
				j++
			}
		}
		if j == e1 {
			continue
		}
		e2, ok := coordinateAt(s, j, 180)
		if !ok {
			continue
		}
		if c := byteAt(s, e2); isWord(c) || c == '.' && digitAt(s, e2+1) {
			continue
		}
		return i, e2
	}
	return -1, -1
}

// coordinateAt returns the end of a decimal from i with at least three
// fractional digits and an absolute value of at most limit (90 or 180).
func coordinateAt(s string, i, limit int) (int, bool) {
	if c := byteAt(s, i); c == '-' || c == '+' {
		i++
	}
	n := digitRun(s, i)
	if n == 0 || n > 3 || byteAt(s, i+n) != '.' {
		return 0, false
	}
	whole := 0
	for k := i; k < i+n; k++ {
		whole = whole*10 + int(s[k]-'0')
	}
	f := i + n + 1
	m := digitRun(s, f)
	if m < 3 {
		return 0, false
	}
	if whole > limit {
		return 0, false
	}
	if whole == limit {
		for k := f; k < f+m; k++ {
			if s[k] != '0' {
				return 0, false
			}
		}
	}
	return f + m, true
}
