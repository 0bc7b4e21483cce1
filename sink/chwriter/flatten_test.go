package chwriter

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

var benchProps = json.RawMessage(`{"category":"phones","currency":"CNY","note":"contact me at [email]","price":19.99,"quantity":1,"sku":"sku-123","tags":["a","b"]}`)

func BenchmarkFlattenProperties(b *testing.B) {
	for b.Loop() {
		if _, _, err := flattenProperties(benchProps); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzFlattenProperties checks the one-pass flattening against decoding
// into a map, for every object encoding/json reads.
func FuzzFlattenProperties(f *testing.F) {
	f.Add([]byte(`{"b":"two","a":1.50,"c":true,"d":null,"e":{"x":[1,2]},"f":"\u00e9\"x"}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil || m == nil || !utf8.Valid(raw) {
			return
		}
		keys, values, err := flattenProperties(raw)
		if err != nil {
			t.Fatalf("flattenProperties(%q): %v", raw, err)
		}
		if len(keys) != len(m) {
			t.Fatalf("%q: %d keys, want %d", raw, len(keys), len(m))
		}
		for i, k := range keys {
			want := string(bytes.TrimSpace(m[k]))
			if len(want) > 0 && want[0] == '"' {
				_ = json.Unmarshal(m[k], &want)
			}
			if values[i] != want {
				t.Fatalf("%q: %s = %q, want %q", raw, k, values[i], want)
			}
		}
	})
}
