package wire

import "time"

// Request and response bodies of the processor role (/v1/he/…). Ciphertexts,
// keys and results travel as opaque bytes in the he/FORMAT.md encodings; the
// JSON bodies below describe them.

// HEColumn is one column of an encrypted table's public header.
type HEColumn struct {
	Name     string  `json:"name"`
	Kind     string  `json:"kind"` // value or indicator
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	Group    string  `json:"group,omitempty"`    // indicator: the categorical column it comes from
	Category string  `json:"category,omitempty"` // indicator: the declared value it marks
}

// HEDataset describes an encrypted dataset held by a processor.
type HEDataset struct {
	ID      string     `json:"id"`
	Preset  string     `json:"preset"`
	Rows    int64      `json:"rows"`
	Columns []HEColumn `json:"columns"`
	Ops     []string   `json:"ops"`
	Bytes   int64      `json:"bytes"`
	Created time.Time  `json:"created"`
}

// HEJobSpec is one statistic over an encrypted dataset (the body of
// POST /v1/he/datasets/{dataset}/jobs).
type HEJobSpec struct {
	Op      string   `json:"op"`
	Column  string   `json:"column,omitempty"`  // count, sum, mean, variance, category-sum (the value)
	Group   string   `json:"group,omitempty"`   // category-count, category-sum
	Columns []string `json:"columns,omitempty"` // dot (two), covariance, regression (the regressors)
	Target  string   `json:"target,omitempty"`  // regression: y
}

// HE job states.
const (
	HEJobQueued  = "queued"
	HEJobRunning = "running"
	HEJobDone    = "done"
	HEJobFailed  = "failed"
)

// HEJob is a job's status.
type HEJob struct {
	ID          string     `json:"id"`
	Dataset     string     `json:"dataset"`
	Job         HEJobSpec  `json:"job"`
	Status      string     `json:"status"` // queued, running, done, failed
	Error       string     `json:"error,omitempty"`
	ResultBytes int        `json:"result_bytes,omitempty"`
	Created     time.Time  `json:"created"`
	Finished    *time.Time `json:"finished,omitempty"`
}
