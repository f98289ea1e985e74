package wire

// AppendResult answers POST /v1/events once the batch is durable.
type AppendResult struct {
	Rows      int  `json:"rows"`      // rows stored (by the original append, for a duplicate)
	Duplicate bool `json:"duplicate"` // the idempotency key was seen: nothing new was stored
}

// ImportReport answers POST /v1/imports.
type ImportReport struct {
	Rows           int            `json:"rows"`
	Skipped        int            `json:"skipped"`
	SkippedReasons map[string]int `json:"skipped_reasons,omitempty"`
	Batches        int            `json:"batches"`
	Seconds        float64        `json:"seconds"`
}
