package dp

import (
	"fmt"
	"math"
)

// Intervals of values noised elsewhere (Privacy on Beam, beam/) with the same
// library mechanisms and parameters: post-processing of the released value and
// public parameters, so they cost nothing and draw no randomness.

// CountInterval is the interval of a count released with p's mechanism.
func CountInterval(noisy float64, p CountParams) (Cell, error) {
	n := Secure().noise(p.Kind)
	ci, err := n.ComputeConfidenceIntervalInt64(int64(math.Round(noisy)), p.L0, p.LInf, p.Budget.Epsilon, p.Budget.Delta, 1-p.Confidence)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: count interval: %w", err)
	}
	return atLeastZero(Cell{Value: noisy, Lower: ci.LowerBound, Upper: ci.UpperBound}), nil
}

// SumInterval is the interval of a float sum released with p's mechanism: each
// customer adds at most RowsPerGroup × max(|Lower|, |Upper|) to a group.
func SumInterval(noisy float64, p SumParams) (Cell, error) {
	n := Secure().noise(p.Kind)
	linf := p.maxAbs() * float64(p.RowsPerGroup)
	if linf <= 0 {
		linf = 1
	}
	ci, err := n.ComputeConfidenceIntervalFloat64(noisy, p.L0, linf, p.Budget.Epsilon, p.Budget.Delta, 1-p.Confidence)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: sum interval: %w", err)
	}
	return p.nonNegative(Cell{Value: noisy, Lower: ci.LowerBound, Upper: ci.UpperBound}), nil
}
