// Package dptest provides a noise-free stand-in for dp.Mechanisms. It exists ONLY
// so tests can assert exact values through the real query path; it offers no
// privacy at all and must never be wired into a server a user can reach.
package dptest

import (
	"github.com/google/differential-privacy/go/v3/noise"

	"github.com/privalytics/privalytics/dp"
)

// NoNoise returns mechanisms that add no noise, give zero-width intervals and keep
// every non-empty partition.
func NoNoise() dp.Mechanisms {
	return dp.Mechanisms{Laplace: none{}, Gaussian: none{}, KeepPartition: func(subjects, _ int64, _, _ float64) (bool, error) {
		return subjects > 0, nil
	}}
}

type none struct{}

func (none) AddNoiseInt64(x, _, _ int64, _, _ float64) (int64, error) { return x, nil }
func (none) AddNoiseFloat64(x float64, _ int64, _, _, _ float64) (float64, error) {
	return x, nil
}
func (none) Threshold(_ int64, _, _, _, _ float64) (float64, error) { return 0, nil }
func (none) ComputeConfidenceIntervalInt64(x, _, _ int64, _, _, _ float64) (noise.ConfidenceInterval, error) {
	return noise.ConfidenceInterval{LowerBound: float64(x), UpperBound: float64(x)}, nil
}
func (none) ComputeConfidenceIntervalFloat64(x float64, _ int64, _, _, _, _ float64) (noise.ConfidenceInterval, error) {
	return noise.ConfidenceInterval{LowerBound: x, UpperBound: x}, nil
}
