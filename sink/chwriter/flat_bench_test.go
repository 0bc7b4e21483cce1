package chwriter

import (
	"encoding/json"
	"testing"
)

var benchProps = json.RawMessage(`{"category":"phones","currency":"CNY","note":"contact me at [email]","price":19.99,"quantity":1,"sku":"sku-123","tags":["a","b"]}`)

func BenchmarkFlattenProperties(b *testing.B) {
	for b.Loop() {
		if _, _, err := flattenProperties(benchProps); err != nil {
			b.Fatal(err)
		}
	}
}
