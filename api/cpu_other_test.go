//go:build !unix

package api_test

// cpuSeconds is not measured here; the per-CPU-second figure is then +Inf.
func cpuSeconds() float64 { return 0 }
