package wire

import "time"

// ConsentRecord is one line of POST /v1/consents: one customer's decision for
// one purpose.
type ConsentRecord struct {
	CustomerID string     `json:"customer_id"`      // as the business knows the customer; stored only as the keyed hash
	Purpose    string     `json:"purpose"`          // one of the tenant's purposes
	Granted    *bool      `json:"granted"`          // true: given; false: withdrawn (required)
	Time       *time.Time `json:"time,omitempty"`   // when the customer decided; default now
	Source     string     `json:"source,omitempty"` // where it was collected; default "api"
}

// ConsentsRecorded answers POST /v1/consents.
type ConsentsRecorded struct {
	Recorded int   `json:"recorded"`
	Version  int64 `json:"version"` // the tenant's consent version after this batch
}

// Consent is one recorded decision in a customer's history.
type Consent struct {
	Seq        int64     `json:"seq"`
	Purpose    string    `json:"purpose"`
	Granted    bool      `json:"granted"`
	Time       time.Time `json:"time"`
	Source     string    `json:"source"`
	RecordedAt time.Time `json:"recorded_at"`
}

// PurposeConsent is a customer's standing for one purpose.
type PurposeConsent struct {
	Policy  string `json:"policy"`  // opt-in or opt-out: what applies without a record
	Granted bool   `json:"granted"` // whether queries for this purpose see the customer now
}

// ConsentStatus answers GET /v1/consents/{customer_id}.
type ConsentStatus struct {
	Purposes map[string]PurposeConsent `json:"purposes"`
	History  []Consent                 `json:"history"` // oldest first
}

// Bool returns a pointer to v, for ConsentRecord.Granted.
func Bool(v bool) *bool { return &v }
