package privalytics

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// Role is what an API key may do. Roles do not nest: an ingest key cannot query.
type Role string

const (
	RoleAdmin  Role = "admin"  // manage the tenant, its keys and budget; with an empty TenantID, the operator who creates tenants
	RoleIngest Role = "ingest" // send events
	RoleQuery  Role = "query"  // ask DP queries and read the budget
	// RoleProcessor uploads encrypted tables to a processor (serve --role
	// processor), runs jobs on them and downloads the encrypted results.
	RoleProcessor Role = "processor"
	// RoleTrack is a publishable key for web pages: it sends single events to
	// /v1/track, only from the origins its name lists, and nothing else.
	RoleTrack Role = "track"
	// RoleShare is a dashboard's share link: it reads that dashboard, its
	// views, their releases and roll-ups, and nothing else. Only
	// POST /v1/dashboards/{id}/share issues one.
	RoleShare Role = "share"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleAdmin || r == RoleIngest || r == RoleQuery || r == RoleProcessor || r == RoleTrack || r == RoleShare
}

// Tenant is one business: its schema, its privacy budget and its secrets.
type Tenant struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Schema   Schema   `json:"schema"`
	Budget   Cost     `json:"budget"` // total privacy loss the business allows over the data's lifetime
	Purposes []string `json:"purposes"`
	// Period, when "month", gives each calendar month of data (UTC) its own
	// budget of Budget: a query charges every month its time filter touches. The
	// guarantee is then per month: a customer's privacy loss about any one month
	// of their activity is at most Budget.Epsilon. Empty: one budget for all data.
	Period string `json:"period,omitempty"`
	// Accounting is how charges compose: "" (basic composition: ε and δ add up)
	// or "zcdp" (zero-concentrated DP: ρ adds up, which is much tighter for many
	// Gaussian answers). A zCDP tenant's Budget.Rho is derived from its (ε, δ):
	// half of δ is kept for converting ρ back to (ε, δ), half for the approximate
	// parts (partition selection).
	Accounting string `json:"accounting,omitempty"`
	// Privacy is the declared consent policy per purpose, the stray personal
	// data policy and the processors; see PrivacyPolicy.
	Privacy PrivacyPolicy `json:"privacy"`
	// RetentionDays, when > 0, is how long events are kept: events older than
	// that many days (by their time column) are purged automatically, and the
	// purge is recorded. 0 keeps events until they are erased.
	RetentionDays int       `json:"retention_days,omitempty"`
	CreatedAt     time.Time `json:"created_at"`

	// WrappedKey is the tenant's pseudonymisation (HMAC) key, encrypted under the
	// server's master key. It never leaves the server and is never serialised to clients.
	WrappedKey []byte `json:"-"`
}

// PeriodMonth is the one data period budgets can have today.
const PeriodMonth = "month"

// AccountingZCDP selects zero-concentrated DP accounting for a tenant.
const AccountingZCDP = "zcdp"

var tenantID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate reports every problem with a new tenant: its ID, budget and schema.
func (t *Tenant) Validate() error {
	var problems []string
	if !tenantID.MatchString(t.ID) {
		problems = append(problems, fmt.Sprintf("id %q must be lower-case letters, digits and -, 1 to 63 long", t.ID))
	}
	if e := t.Budget.Epsilon; !(e > 0) || math.IsInf(e, 0) || e > 1e6 {
		problems = append(problems, fmt.Sprintf("budget epsilon must be > 0 and finite (at most 1e6), got %v", e))
	}
	if d := t.Budget.Delta; !(d >= 0 && d < 1) {
		problems = append(problems, fmt.Sprintf("budget delta must be in [0, 1), got %v", d))
	}
	if t.Period != "" && t.Period != PeriodMonth {
		problems = append(problems, fmt.Sprintf("period must be empty (one budget) or %q, got %q", PeriodMonth, t.Period))
	}
	switch t.Accounting {
	case "":
	case AccountingZCDP:
		if t.Budget.Delta <= 0 {
			problems = append(problems, "zcdp accounting needs a budget delta > 0, used to convert ρ to (ε, δ)")
		}
		if t.Period != "" {
			problems = append(problems, "zcdp accounting cannot be combined with data-period budgets yet")
		}
	default:
		problems = append(problems, fmt.Sprintf("accounting must be empty (basic composition) or %q, got %q", AccountingZCDP, t.Accounting))
	}
	problems = append(problems, t.privacyProblems()...)
	if err := ValidateRetention(t.RetentionDays); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return Errorf(EINVALID, "tenant: %s", strings.Join(problems, "; "))
	}
	return t.Schema.Validate()
}

// MaxRetentionDays is the longest retention period a tenant may declare (100 years).
const MaxRetentionDays = 36_500

// ValidateRetention checks a retention period in days (0: keep until erased).
func ValidateRetention(days int) error {
	if days < 0 || days > MaxRetentionDays {
		return Errorf(EINVALID, "retention_days must be 0 (keep until erased) or 1 to %d, got %d", MaxRetentionDays, days)
	}
	return nil
}

// RetentionCutoff is the time before which a tenant's events have expired at
// now, and false when the tenant keeps events until they are erased.
func (t *Tenant) RetentionCutoff(now time.Time) (time.Time, bool) {
	if t.RetentionDays <= 0 {
		return time.Time{}, false
	}
	return now.AddDate(0, 0, -t.RetentionDays), true
}

// APIKey is a credential. The secret is shown once at creation; only its SHA-256
// is stored (keys are 256-bit random, so a fast hash is enough).
type APIKey struct {
	ID        string     `json:"id"`
	TenantID  string     `json:"tenant_id,omitempty"` // empty for the operator key
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	Hash      []byte     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// MetaStore keeps tenants, API keys, the privacy ledger and consent records. Implementations:
// store/sqlite (embedded default) and, later, PostgreSQL.
type MetaStore interface {
	// CreateTenant stores t. ECONFLICT if the ID is taken; EINVALID for a bad tenant.
	CreateTenant(ctx context.Context, t *Tenant) error
	// Tenant returns the tenant. ENOTFOUND if none.
	Tenant(ctx context.Context, id string) (*Tenant, error)
	// Tenants lists all tenants by ID.
	Tenants(ctx context.Context) ([]*Tenant, error)
	// SetPrivacy replaces the tenant's privacy policy (validated by the caller
	// with Tenant.Validate) and bumps its consent version, so answers cached
	// under the old policy are not served again. ENOTFOUND if no such tenant.
	SetPrivacy(ctx context.Context, tenantID string, p PrivacyPolicy) (consentVersion int64, err error)

	// CreateKey stores k (with its hash). ECONFLICT if the ID is taken.
	CreateKey(ctx context.Context, k *APIKey) error
	// Key returns the key with the given ID, revoked or not. ENOTFOUND if none.
	Key(ctx context.Context, id string) (*APIKey, error)
	// Keys lists a tenant's keys ("" for operator keys), oldest first.
	Keys(ctx context.Context, tenantID string) ([]*APIKey, error)
	// RevokeKey marks the key revoked. ENOTFOUND if the key does not exist or belongs
	// to another tenant (so one tenant cannot probe another's key IDs).
	RevokeKey(ctx context.Context, tenantID, id string, at time.Time) error

	// SetRetention changes a tenant's retention period in days (0: keep until
	// erased). ENOTFOUND if no such tenant; EINVALID for a period out of range.
	SetRetention(ctx context.Context, tenantID string, days int) error

	Ledger
	ConsentStore
	Close() error
}
