package privalytics

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// DefaultPurpose is the purpose of a query that names none, and the one purpose
// of a tenant that declares none.
const DefaultPurpose = "analytics"

// Consent policies: what a customer with no consent record for a purpose gets.
const (
	// OptOut: included until they withdraw. The default for "analytics" only:
	// its answers are differentially private aggregates under a bounded budget,
	// the least intrusive use of the data, which a business can base on its
	// legitimate interest and must let customers object to.
	OptOut = "opt-out"
	// OptIn: excluded until they grant consent. The default for every other
	// purpose (marketing, product …), which needs the customer's consent.
	OptIn = "opt-in"
)

// Stray personal data policies for free-text fields (see ingest).
const (
	StrayReject = "reject" // the batch is refused with the row and field named (default)
	StrayRedact = "redact" // the personal data is replaced by a marker and the row kept
)

// PrivacyPolicy is a tenant's declared privacy practice; the server enforces it
// and GET /v1/privacy-notice explains it to customers.
type PrivacyPolicy struct {
	// Consent maps each declared purpose to OptIn or OptOut. Filled at tenant
	// creation: OptOut for "analytics", OptIn for any other purpose.
	Consent map[string]string `json:"consent,omitempty"`
	// StrayData is what ingest does with e-mail addresses, phone numbers, card
	// numbers and IBANs found in free-text fields: StrayReject or StrayRedact.
	StrayData string `json:"stray_data,omitempty"`
	// Processors are the third parties that process the events on the
	// business's behalf (hosting, analysts), named in the privacy notice.
	Processors []string `json:"processors,omitempty"`
}

var purposeName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// ValidPurpose reports whether p is a well-formed purpose name.
func ValidPurpose(p string) bool { return purposeName.MatchString(p) }

// FillPrivacyDefaults fills the tenant's missing purposes and policies with
// the documented defaults.
func (t *Tenant) FillPrivacyDefaults() {
	if len(t.Purposes) == 0 {
		t.Purposes = []string{DefaultPurpose}
	}
	if t.Privacy.Consent == nil {
		t.Privacy.Consent = map[string]string{}
	}
	for _, p := range t.Purposes {
		if _, ok := t.Privacy.Consent[p]; !ok {
			t.Privacy.Consent[p] = OptIn
			if p == DefaultPurpose {
				t.Privacy.Consent[p] = OptOut
			}
		}
	}
	if t.Privacy.StrayData == "" {
		t.Privacy.StrayData = StrayReject
	}
}

// ConsentPolicy returns the policy of a purpose: the declared one, or the
// default (OptOut for "analytics", OptIn otherwise).
func (t *Tenant) ConsentPolicy(purpose string) string {
	if p, ok := t.Privacy.Consent[purpose]; ok {
		return p
	}
	if purpose == DefaultPurpose {
		return OptOut
	}
	return OptIn
}

// privacyProblems lists what is wrong with the tenant's purposes and policy.
func (t *Tenant) privacyProblems() []string {
	var problems []string
	for _, p := range t.Purposes {
		if !ValidPurpose(p) {
			problems = append(problems, fmt.Sprintf("purpose %q must be lower-case letters, digits, _ or -, starting with a letter, at most 32 long", p))
		}
	}
	for p, pol := range t.Privacy.Consent {
		if !slices.Contains(t.Purposes, p) {
			problems = append(problems, fmt.Sprintf("privacy.consent names purpose %q, which is not among the declared purposes %v", p, t.Purposes))
		}
		if pol != OptIn && pol != OptOut {
			problems = append(problems, fmt.Sprintf("privacy.consent of %q must be %q or %q, got %q", p, OptIn, OptOut, pol))
		}
	}
	if s := t.Privacy.StrayData; s != "" && s != StrayReject && s != StrayRedact {
		problems = append(problems, fmt.Sprintf("privacy.stray_data must be %q or %q, got %q", StrayReject, StrayRedact, s))
	}
	for _, p := range t.Privacy.Processors {
		if p == "" || len(p) > 200 {
			problems = append(problems, "privacy.processors entries must be 1 to 200 characters")
		}
	}
	return problems
}

// Consent is one consent decision of one customer for one purpose. Records
// are never changed or removed by consent changes: the newest decision (by
// Time, then by Seq) is in force, and the rest is the history.
type Consent struct {
	Seq        int64     `json:"seq"`         // order of recording within the store
	Subject    uint64    `json:"-"`           // the customer's pseudonym (the same keyed hash ingest stores)
	Purpose    string    `json:"purpose"`     // a purpose the tenant declares
	Granted    bool      `json:"granted"`     // true: given; false: withdrawn
	Time       time.Time `json:"time"`        // when the customer gave or withdrew it
	Source     string    `json:"source"`      // where it was collected: "web-form", "pos", "import" …
	RecordedAt time.Time `json:"recorded_at"` // when the server recorded it
}

// ConsentStore keeps consent records. It is part of MetaStore.
type ConsentStore interface {
	// RecordConsents appends cs (Seq and RecordedAt filled by the caller are
	// ignored; Seq is assigned) to the tenant's history in one transaction and
	// returns the tenant's new consent version. ENOTFOUND for no such tenant.
	RecordConsents(ctx context.Context, tenantID string, cs []Consent) (version int64, err error)
	// ConsentHistory lists one customer's records, oldest first.
	ConsentHistory(ctx context.Context, tenantID string, subject uint64) ([]Consent, error)
	// ConsentDecisions returns, for one purpose, each customer's decision in
	// force (true: granted), and the consent version it reflects.
	ConsentDecisions(ctx context.Context, tenantID, purpose string) (map[uint64]bool, int64, error)
	// ConsentVersion goes up with every RecordConsents of the tenant (0: none
	// yet), so it can key cached answers.
	ConsentVersion(ctx context.Context, tenantID string) (int64, error)
}
