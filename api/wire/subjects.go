package wire

import (
	"encoding/json"
	"time"
)

// SubjectExport answers GET /v1/subjects/{customer_id}?format=json: every
// event held about one customer.
type SubjectExport struct {
	Tenant     string           `json:"tenant"`
	CustomerID string           `json:"customer_id"`
	ExportedAt time.Time        `json:"exported_at"`
	Rows       int              `json:"rows"`
	Columns    []string         `json:"columns"`
	Events     []map[string]any `json:"events"`
}

// RectifyRequest is the body of PATCH /v1/subjects/{customer_id}: the fields
// to set on every event of the customer.
type RectifyRequest struct {
	Fields map[string]json.RawMessage `json:"fields"`
}

// Erasure statuses.
const (
	ErasurePending  = "pending"  // hidden from queries; compaction has not finished
	ErasureComplete = "complete" // removed from every segment and log file
)

// ErasureReceipt answers an erasure or rectification and GET /v1/erasures/{id}.
type ErasureReceipt struct {
	ID          string     `json:"id"`
	Tenant      string     `json:"tenant"`
	Subjects    int        `json:"subjects"`
	Rows        int        `json:"rows"`
	RequestedAt time.Time  `json:"requested_at"`
	Status      string     `json:"status"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}
