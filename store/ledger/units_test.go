package ledger

import "testing"

func TestUnitsAreExactForDecimalInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v        float64
		up, down int64
	}{
		{1, 1e9, 1e9}, {31, 31e9, 31e9}, {0.1, 1e8, 1e8}, {1e-4, 1e5, 1e5},
		{1.0000000001, 1000000001, 1000000000}, {0.3, 3e8, 3e8}, {0, 0, 0},
	}
	for _, tt := range tests {
		if got := Up(tt.v, EpsilonDigits); got != tt.up {
			t.Errorf("Up(%v) = %d, want %d", tt.v, got, tt.up)
		}
		if got := Down(tt.v, EpsilonDigits); got != tt.down {
			t.Errorf("Down(%v) = %d, want %d", tt.v, got, tt.down)
		}
	}
	if Up(1e-6, DeltaDigits) != 1e9 {
		t.Errorf("δ 1e-6 is not 1e9 units")
	}
}
