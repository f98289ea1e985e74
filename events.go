package privalytics

import (
	"context"

	"github.com/apache/arrow/go/v17/arrow"
)

// Batch is a validated, minimised and pseudonymised set of events, ready to store.
// Record follows Schema.Arrow() of the tenant.
type Batch struct {
	Record arrow.Record
	// IdempotencyKey, when set, makes a retried batch a no-op: the store remembers
	// recent keys durably with the batch itself.
	IdempotencyKey string
}

// AppendResult says what Append did.
type AppendResult struct {
	Rows      int  `json:"rows"`      // rows stored (by the original append, for a duplicate)
	Duplicate bool `json:"duplicate"` // the idempotency key was seen: nothing new was stored
}

// Chunk is one immutable record batch of a snapshot, with the dense subject number
// of each row (0 ≤ n < Snapshot.Subjects): the executor bounds contributions with
// arrays indexed by these instead of hashing subjects on every query.
type Chunk struct {
	Record   arrow.Record
	Subjects []uint32
}

// Snapshot is a consistent, immutable view of a tenant's events. Version changes
// whenever the visible data changes, so it keys cached answers.
type Snapshot struct {
	Version  uint64
	Chunks   []Chunk
	Subjects int // number of distinct subjects ever seen; an upper bound on subject numbers
}

// Rows returns the number of events in the snapshot.
func (s *Snapshot) Rows() int {
	n := 0
	for _, c := range s.Chunks {
		n += int(c.Record.NumRows())
	}
	return n
}

// EventStore keeps every tenant's events durably. Implementation: store/events
// (write-ahead log + Parquet segments).
type EventStore interface {
	// Append stores b for the tenant durably (fsynced) before it returns. A batch
	// whose idempotency key was seen returns the original result with Duplicate set.
	Append(ctx context.Context, tenantID string, schema Schema, b Batch) (AppendResult, error)
	// Snapshot returns the tenant's current events. A tenant with no events gets an
	// empty snapshot, not an error.
	Snapshot(ctx context.Context, tenantID string, schema Schema) (*Snapshot, error)
	// Close waits for background work and releases files. Every acknowledged
	// append is already on disk; unsealed logs are replayed at the next open.
	Close() error
}
