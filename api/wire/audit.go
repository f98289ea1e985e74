package wire

import "time"

// AuditEntry is one entry of the tenant's hash-chained audit trail.
type AuditEntry struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	Actor    string            `json:"actor"`
	TenantID string            `json:"tenant_id,omitempty"`
	Action   string            `json:"action"`
	Target   string            `json:"target,omitempty"`
	Outcome  string            `json:"outcome"`
	Details  map[string]string `json:"details,omitempty"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

// AuditPage answers GET /v1/audit, newest first.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Offset  int          `json:"offset"`
	Limit   int          `json:"limit"`
}
