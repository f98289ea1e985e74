package ingest

import "unsafe"

// unsafePointer lets []int64 be viewed as []arrow.Timestamp (an int64 type) without
// copying.
func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
