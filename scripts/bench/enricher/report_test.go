package enricher

import "testing"

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{0.3}, 0.3},
		{[]float64{0.4, 0.1, 0.2}, 0.2},
		{[]float64{0.4, 0.1, 0.3, 0.2}, 0.25},
	} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
	xs := []float64{0.4, 0.1, 0.3}
	median(xs)
	if xs[0] != 0.4 || xs[1] != 0.1 {
		t.Errorf("median sorted its argument: %v", xs)
	}
}
