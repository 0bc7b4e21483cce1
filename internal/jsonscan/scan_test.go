package jsonscan

import (
	"encoding/json"
	"math/bits"
	"testing"
)

// TestLookMask checks the eight-byte test against strSafe: its lowest
// mark is the first byte strSafe refuses, wherever it is and whatever
// follows it.
func TestLookMask(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			for _, after := range []byte{'a', 0, '"', 0x80} {
				var b [8]byte
				for i := range b {
					b[i] = 'a'
					if i > pos {
						b[i] = after
					}
				}
				b[pos] = byte(c)
				w := uint64(0)
				for i := 7; i >= 0; i-- {
					w = w<<8 | uint64(b[i])
				}
				want := 8
				for i := range b {
					if !strSafe[b[i]] {
						want = i
						break
					}
				}
				got := 8
				if m := lookMask(w); m != 0 {
					got = bits.TrailingZeros64(m) / 8
				}
				if got != want {
					t.Fatalf("lookMask(%q) marks byte %d first, want %d", b, got, want)
				}
			}
		}
	}
}

// FuzzScanner holds the scanner to encoding/json: what it takes is valid
// JSON, and a string it unescapes reads as encoding/json reads it.
//
// go test -run '^$' -fuzz FuzzScanner ./internal/jsonscan/
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\u00e9\n"],"b":{"c":null,"d":true}}`, `"\ud83d\ude00"`, `[01]`, `{"a":1,}`, "\"\xff\"", `"a\"b\\c\/d\b\f\n\r\t"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := Scanner{B: b}
		s.WS()
		start := s.I
		ok := s.Value()
		if ok {
			s.WS()
			ok = s.I == len(b)
		}
		if ok && !json.Valid(b) {
			t.Fatalf("scanner took %q, which encoding/json refuses", b)
		}
		if !ok || b[start] != '"' {
			return
		}
		s = Scanner{B: b, I: start}
		from, to, _ := s.Str()
		got, unescaped := Unescape(nil, b[from:to])
		var want string
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if unescaped && string(got) != want {
			t.Fatalf("Unescape(%q) = %q, encoding/json: %q", b[from:to], got, want)
		}
	})
}

// TestRefuseSurrogates: with RefuseSurrogates a string with an escaped
// surrogate is left alone, and only such a string.
func TestRefuseSurrogates(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{{`"\ud800"`, false}, {`"\uDFFF"`, false}, {`"\uD83D\uDE00"`, false}, {`"\ud7ff"`, true}, {`"\ue000"`, true}, {`"\u00e9"`, true}, {`"d8"`, true}} {
		s := Scanner{B: []byte(c.s), RefuseSurrogates: true}
		if _, _, ok := s.Str(); ok != c.want {
			t.Errorf("Str(%s) = %v, want %v", c.s, ok, c.want)
		}
		_, unescaped := Unescape(nil, []byte(c.s[1:len(c.s)-1]))
		if unescaped != c.want {
			t.Errorf("Unescape(%s) = %v, want %v", c.s, unescaped, c.want)
		}
	}
}

// FuzzSkip holds Skip and SkipStr to Value and Str on valid JSON values:
// they end where they end.
//
// go test -run '^$' -fuzz FuzzSkip ./internal/jsonscan/
func FuzzSkip(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\u00e9\n"],"b":{"c":null,"d":true}}`, `"\ud83d\ude00"`, `"a\"b\\c\/d\b\f\n\r\t"`, `-0.5E+3`, `[[],{},"]"]`, `"\\"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := Scanner{B: b}
		if !s.Value() || s.I != len(b) {
			return
		}
		want := s.I
		k := Scanner{B: b}
		k.Skip()
		if k.I != want {
			t.Fatalf("Skip(%q) ends at %d, Value at %d", b, k.I, want)
		}
		if b[0] == '"' {
			v, k := Scanner{B: b}, Scanner{B: b}
			vs, ve, _ := v.Str()
			ks, ke := k.SkipStr()
			if vs != ks || ve != ke || v.Escaped != k.Escaped {
				t.Fatalf("SkipStr(%q) = %d %d %v, Str %d %d %v", b, ks, ke, k.Escaped, vs, ve, v.Escaped)
			}
		}
	})
}
