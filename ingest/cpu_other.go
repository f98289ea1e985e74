//go:build !unix

package ingest

import "time"

// processCPU is not measured here; BenchResult.CPU stays 0.
func processCPU() time.Duration { return 0 }
