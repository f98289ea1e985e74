package privalytics

import (
	"context"
	"time"
)

// AuditEntry is one line of the tenant-visible audit trail: who did what to which
// thing, and how it ended. Entries are hash-chained (store/audit documents the
// canonical encoding), so an edit, a deletion or a reordering is detectable.
// Details never carry personal data: no raw or hashed customer identifiers, no
// event values — counts, costs, fingerprints and names of things only.
type AuditEntry struct {
	Seq      uint64            `json:"seq"`                 // 1, 2, 3 … in order of appending
	Time     time.Time         `json:"time"`                // UTC
	Actor    string            `json:"actor"`               // the API key ID that acted; "" for the server itself
	TenantID string            `json:"tenant_id,omitempty"` // the tenant acted on; "" for operator-wide actions
	Action   string            `json:"action"`              // e.g. "tenant.create", "key.issue", "query.run", "consent.record", "access.denied"
	Target   string            `json:"target,omitempty"`    // what was acted on: a key ID, a route, a purpose
	Outcome  string            `json:"outcome"`             // "ok", or the error code the action ended with ("forbidden", "budget", …)
	Details  map[string]string `json:"details,omitempty"`   // cost, charge ID, counts, request ID
	PrevHash string            `json:"prev_hash"`           // hex SHA-256 of the previous entry; 64 zeros for the first
	Hash     string            `json:"hash"`                // hex SHA-256 over this entry's canonical encoding, prev_hash included
}

// Audit outcomes other than an error code.
const AuditOK = "ok"

// AuditLog is the append-only, hash-chained record of administrative actions,
// queries, budget charges, consent changes and authorization denials.
// Implementation: store/audit (a file in the server's data directory).
type AuditLog interface {
	// Append fills e.Seq, e.PrevHash and e.Hash (and e.Time when zero) and writes
	// e durably before it returns. An error means the entry is not in the log.
	Append(ctx context.Context, e *AuditEntry) error
	// Entries lists a tenant's entries, newest first, at most limit after skipping offset.
	Entries(ctx context.Context, tenantID string, offset, limit int) ([]AuditEntry, error)
}
