package wire

import "time"

// Role is what an API key may do.
type Role string

// The roles of API keys.
const (
	RoleAdmin     Role = "admin"     // manage the tenant, its keys and budget; without a tenant, the operator
	RoleIngest    Role = "ingest"    // send events and consents
	RoleQuery     Role = "query"     // ask DP queries and read the budget
	RoleProcessor Role = "processor" // upload encrypted tables to a processor and run jobs on them
	RoleTrack     Role = "track"     // publishable: single events to /v1/track from the origins its name lists
)

// Cost is a privacy cost or budget: ε and δ, and ρ for zCDP tenants.
type Cost struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	Rho     float64 `json:"rho,omitempty"`
}

// Column declares one event field.
type Column struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"` // string, int, decimal, float, bool, timestamp
	Required    bool     `json:"required,omitempty"`
	Allowed     []string `json:"allowed,omitempty"`
	MaxLength   int      `json:"max_length,omitempty"`
	Scale       int      `json:"scale,omitempty"`
	FreeText    bool     `json:"free_text,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Schema declares a tenant's events.
type Schema struct {
	Subject string   `json:"subject"`
	Time    string   `json:"time"`
	Columns []Column `json:"columns"`
}

// PrivacyPolicy is a tenant's consent policy per purpose, its handling of
// stray personal data and its list of processors.
type PrivacyPolicy struct {
	Consent    map[string]string `json:"consent,omitempty"`    // purpose → "opt-in" or "opt-out"
	StrayData  string            `json:"stray_data,omitempty"` // "reject" or "redact"
	Processors []string          `json:"processors,omitempty"`
}

// Tenant is one business.
type Tenant struct {
	ID            string        `json:"id"`
	Name          string        `json:"name"`
	Schema        Schema        `json:"schema"`
	Budget        Cost          `json:"budget"`
	Purposes      []string      `json:"purposes"`
	Period        string        `json:"period,omitempty"`
	Accounting    string        `json:"accounting,omitempty"`
	Privacy       PrivacyPolicy `json:"privacy"`
	RetentionDays int           `json:"retention_days,omitempty"`
	CreatedAt     time.Time     `json:"created_at"`
}

// CreateTenantRequest is the body of POST /v1/tenants (operator key).
type CreateTenantRequest struct {
	ID       string   `json:"id"`
	Name     string   `json:"name,omitempty"`
	Schema   *Schema  `json:"schema,omitempty"`   // default: the retail schema
	Budget   Cost     `json:"budget"`             // total (ε, δ) over the data's lifetime
	Purposes []string `json:"purposes,omitempty"` // default: ["analytics"]
	// Period: "month" (each month of data has its own budget; the default
	// since views arrived, except with zCDP accounting) or "lifetime" (one
	// budget for all time; what an omitted period gave before).
	Period     string         `json:"period,omitempty"`
	Accounting string         `json:"accounting,omitempty"` // "zcdp" for ρ accounting of Gaussian noise
	Privacy    *PrivacyPolicy `json:"privacy,omitempty"`
	// RetentionDays > 0 purges events older than that many days.
	RetentionDays int `json:"retention_days,omitempty"`
}

// APIKey describes a key; its secret is never listed.
type APIKey struct {
	ID        string     `json:"id"`
	TenantID  string     `json:"tenant_id,omitempty"` // empty for the operator key
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// IssuedKey is a new key with its token, shown once.
type IssuedKey struct {
	APIKey
	Token string `json:"token"`
}

// CreateTenantResponse answers POST /v1/tenants.
type CreateTenantResponse struct {
	Tenant   *Tenant    `json:"tenant"`
	AdminKey *IssuedKey `json:"admin_key"`
}

// CreateKeyRequest is the body of POST /v1/keys.
type CreateKeyRequest struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// TenantList answers GET /v1/tenants (operator key).
type TenantList struct {
	Tenants []Tenant `json:"tenants"`
}

// KeyList answers GET /v1/keys.
type KeyList struct {
	Keys []APIKey `json:"keys"`
}

// RetentionRequest is the body of PUT /v1/tenant/retention.
type RetentionRequest struct {
	RetentionDays int `json:"retention_days"`
}

// DataKeyRotated answers POST /v1/tenant/data-keys.
type DataKeyRotated struct {
	Rotated bool `json:"rotated"`
}
