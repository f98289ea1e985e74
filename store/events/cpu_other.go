//go:build !unix

package events

import "time"

// ProcessCPU is not measured on this platform: it returns 0, and the load
// figures leave their CPU columns empty.
func ProcessCPU() time.Duration { return 0 }
