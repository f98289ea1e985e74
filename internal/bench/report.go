package bench

import (
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"time"
)

func ptr(v float64) *float64 { return &v }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// sizeOf is a byte count for people: 1.2 MB, 340 kB.
func sizeOf(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// suffixed is path+suffix, or "" for no path.
// startCPUProfile starts a CPU profile written to path and returns what stops
// it; with path "" it does nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func suffixed(path, suffix string) string {
	if path == "" {
		return ""
	}
	return path + suffix
}

func medianOf(n int, f func() error) (time.Duration, error) {
	if err := f(); err != nil { // warm-up
		return 0, err
	}
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

func fmtRate(v float64, unit string) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M %s", v/1e6, unit)
	case v >= 1e3:
		return fmt.Sprintf("%.1f k %s", v/1e3, unit)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

func verdict(ok bool) string {
	if ok {
		return "meets target"
	}
	return "BELOW TARGET"
}
