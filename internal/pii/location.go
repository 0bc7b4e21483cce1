package pii

// nextLocation finds a pair of coordinates: two decimals, each with an
// optional sign and at least three fractional digits (about 100 m: fewer
// is a city, and prices have two), split by a comma and/or spaces:
// "31.2304,121.4737", "31.2304, 121.4737", "-33.8688 151.2093". The pair
// is in either order, latitude,longitude or longitude,latitude (as GeoJSON,
// Amap and Baidu write it: "121.473701,31.230416"), so one decimal is in
// [-90, 90] and the other in [-180, 180]. Neither decimal is part of a
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
		e1, lim1 := coordinateAt(s, i)
		if lim1 == 0 {
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
		e2, lim2 := coordinateAt(s, j)
		if lim2 == 0 || lim1 == 180 && lim2 == 180 {
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
// fractional digits, and the least of 90 and 180 that its absolute value
// is at most; 0 when it is no coordinate.
func coordinateAt(s string, i int) (int, int) {
	if c := byteAt(s, i); c == '-' || c == '+' {
		i++
	}
	n := digitRun(s, i)
	if n == 0 || n > 3 || byteAt(s, i+n) != '.' {
		return 0, 0
	}
	whole := 0
	for k := i; k < i+n; k++ {
		whole = whole*10 + int(s[k]-'0')
	}
	f := i + n + 1
	m := digitRun(s, f)
	if m < 3 {
		return 0, 0
	}
	zero := allZero(s[f : f+m])
	switch {
	case whole < 90 || whole == 90 && zero:
		return f + m, 90
	case whole < 180 || whole == 180 && zero:
		return f + m, 180
	}
	return 0, 0
}

func allZero(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] != '0' {
			return false
		}
	}
	return true
}
