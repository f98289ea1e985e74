package privalytics

import (
	"context"
	"time"

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

// SubjectStore is the part of an event store that serves a customer's rights
// (access, rectification, erasure) and the tenant's retention period. It is
// optional: the API checks for it with a type assertion. Implementation:
// store/events.
//
// Erasure and purges hide rows from every later snapshot at once (a new
// snapshot version, so no cached answer computed with them is served again)
// and remove them physically from segments and logs by a background
// compaction that starts at once; the receipt says when that finished.
// Erasure never gives privacy budget back: answers already released stay spent.
type SubjectStore interface {
	// SubjectEvents returns every stored event of one subject, in the tenant's
	// Arrow schema (possibly zero rows).
	SubjectEvents(ctx context.Context, tenantID string, schema Schema, subject uint64) (arrow.Record, error)
	// Erase hides every event of the subjects now and removes them from disk by
	// compaction. EINVALID for no subjects.
	Erase(ctx context.Context, tenantID string, schema Schema, subjects []uint64) (ErasureReceipt, error)
	// Rectify replaces the named columns of every event of one subject with
	// the given values (already checked and typed by the caller: string, int64,
	// float64, bool, time.Time or nil). The old rows are erased as by Erase.
	// EINVALID for an unknown, required-and-null or subject/time column.
	Rectify(ctx context.Context, tenantID string, schema Schema, subject uint64, set map[string]any) (ErasureReceipt, error)
	// Purge hides every event older than before and removes it by compaction.
	Purge(ctx context.Context, tenantID string, schema Schema, before time.Time) (PurgeReceipt, error)
	// Receipt returns an erasure receipt by ID, with its current status.
	// ENOTFOUND if the tenant has none with that ID.
	Receipt(ctx context.Context, tenantID string, schema Schema, id string) (ErasureReceipt, error)
	// Compact makes every pending erasure and purge physical now and waits.
	Compact(ctx context.Context, tenantID string, schema Schema) error
	// CompactDue compacts every loaded tenant with work pending: it retries a
	// background compaction that failed, so the time to physical removal stays
	// bounded by the caller's period.
	CompactDue(ctx context.Context) error
}

// EncryptedStore is the part of an event store that manages encryption at
// rest. Optional, like SubjectStore; implementation: store/events.
type EncryptedStore interface {
	// RotateKey gives the tenant a new data key without stopping ingest; files
	// under older keys are re-encrypted in the background. ECONFLICT when
	// encryption at rest is off.
	RotateKey(ctx context.Context, tenantID string, schema Schema) error
	// Shred destroys the tenant's data keys: its stored events can never be
	// read again, and the tenant's events can no longer be loaded (ECONFLICT).
	Shred(ctx context.Context, tenantID string) error
}

// Receipt statuses.
const (
	ErasurePending  = "pending"  // hidden from queries; compaction has not finished
	ErasureComplete = "complete" // removed from every segment and log file
)

// ErasureReceipt proves what an erasure (or rectification) did. It names no
// subject: after compaction nothing on disk links the receipt to the customer.
type ErasureReceipt struct {
	ID          string     `json:"id"`
	Tenant      string     `json:"tenant"`
	Subjects    int        `json:"subjects"`     // subjects erased
	Rows        int        `json:"rows"`         // events hidden (for a rectification: rewritten)
	RequestedAt time.Time  `json:"requested_at"` // also when the rows became invisible
	Status      string     `json:"status"`       // ErasurePending or ErasureComplete
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// PurgeReceipt records a retention purge.
type PurgeReceipt struct {
	Tenant      string    `json:"tenant"`
	Before      time.Time `json:"before"` // events older than this were purged
	Rows        int       `json:"rows"`   // events hidden by this purge
	RequestedAt time.Time `json:"requested_at"`
}
