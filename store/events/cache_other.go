//go:build !linux

package events

// dropCached is advice the kernels other than Linux are not given here.
func dropCached(f fsFile, off, n int64) {}
