//go:build unix

package events

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time (user + system) the process has used so far:
// the load figures divide rows by it, which holds on a busy machine where
// wall time does not.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
