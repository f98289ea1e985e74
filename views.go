package privalytics

import (
	"context"
	"time"
)

// Cadences of a view: one release per bucket of this length (UTC).
const (
	CadenceDay   = "day"
	CadenceWeek  = "week" // ISO weeks, Monday to Monday
	CadenceMonth = "month"
)

// Release states.
const (
	// ReleaseClosed is the one release of a bucket that has ended: durable,
	// read free forever, never recomputed.
	ReleaseClosed = "closed"
	// ReleaseSoFar is the one release of the still-open bucket, replaced by
	// the closed release once the bucket ends.
	ReleaseSoFar = "so_far"
	// ReleasePending marks a claimed release whose query is running (never
	// shown).
	ReleasePending = "pending"
)

// ViewSpec is a saved question: a Query without a time filter on the event
// time (the view adds one per bucket), released once per Cadence bucket at
// Epsilon (and Delta) per release, starting with the bucket holding Start.
type ViewSpec struct {
	Name    string  `json:"name"`
	Query   Query   `json:"query"`
	Cadence string  `json:"cadence"`
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta,omitempty"`
	// SoFar asks for one release of the still-open bucket (at the same cost as
	// a closed one), shown until the bucket closes.
	SoFar bool `json:"so_far,omitempty"`
	// Start is the first bucket's day, YYYY-MM-DD (UTC).
	Start string `json:"start"`
}

// View is a stored ViewSpec. KeyID is the key that created it: its releases
// are charged and audited under that key.
type View struct {
	ViewSpec
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id"`
	KeyID     string    `json:"key_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Release is one bucket's answer of a view.
type Release struct {
	ViewID     string    `json:"view_id"`
	Bucket     string    `json:"bucket"` // "2026-03-14", "2026-W11", "2026-03"
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	State      string    `json:"state"` // ReleaseClosed or ReleaseSoFar
	ReleasedAt time.Time `json:"released_at"`
	Result     *Result   `json:"result"`
	// Parameters are what the release used: the query as run (with its time
	// filter), its cost and mechanisms, and the charge that paid for it.
	Parameters map[string]any `json:"parameters"`
	// ClaimedAt is when a pending release was claimed (store-internal).
	ClaimedAt time.Time `json:"-"`
}

// Dashboard is a saved list of views with layout hints.
type Dashboard struct {
	ID        string         `json:"id"`
	TenantID  string         `json:"-"` // implied by the key that reads it
	Name      string         `json:"name"`
	ViewIDs   []string       `json:"view_ids"`
	Layout    map[string]any `json:"layout,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
}

// Share is a read-only link to one dashboard: an API key of role RoleShare
// (its ID is KeyID, its secret stored hashed like every key's).
type Share struct {
	ID          string     `json:"id"` // the key's ID
	TenantID    string     `json:"tenant_id"`
	DashboardID string     `json:"dashboard_id"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// ViewStore keeps views, their releases, dashboards and share links.
type ViewStore interface {
	// CreateView stores v. ECONFLICT if the ID is taken.
	CreateView(ctx context.Context, v *View) error
	// View returns a tenant's view. ENOTFOUND if none.
	View(ctx context.Context, tenantID, id string) (*View, error)
	// Views lists a tenant's views, oldest first.
	Views(ctx context.Context, tenantID string) ([]*View, error)
	// DeleteView removes a view and its releases. ENOTFOUND if none.
	DeleteView(ctx context.Context, tenantID, id string) error

	// ClaimRelease records a pending release of (view, bucket, state) unless
	// one exists: the unique key makes exactly one caller win. ECONFLICT when
	// another holds it (released, or pending since after staleBefore); a
	// pending claim older than staleBefore is taken over.
	ClaimRelease(ctx context.Context, tenantID string, r *Release, staleBefore time.Time) error
	// CompleteRelease stores the result of a claimed release; a closed
	// release removes the bucket's so_far release.
	CompleteRelease(ctx context.Context, tenantID string, r *Release) error
	// AbandonRelease drops a pending claim whose query was refused before it
	// was charged, so a later read may try again.
	AbandonRelease(ctx context.Context, tenantID, viewID, bucket, state string) error
	// Releases lists a view's releases (pending ones included), by bucket start.
	Releases(ctx context.Context, tenantID, viewID string) ([]Release, error)

	// CreateDashboard stores d; DeleteDashboard removes it and revokes its shares.
	CreateDashboard(ctx context.Context, d *Dashboard) error
	Dashboard(ctx context.Context, tenantID, id string) (*Dashboard, error)
	Dashboards(ctx context.Context, tenantID string) ([]*Dashboard, error)
	DeleteDashboard(ctx context.Context, tenantID, id string, at time.Time) error

	// CreateShare stores the share of an issued share key.
	CreateShare(ctx context.Context, s *Share) error
	// ShareOf returns the share whose key is keyID. ENOTFOUND if none.
	ShareOf(ctx context.Context, keyID string) (*Share, error)
	// RevokeShare revokes the share and its key. ENOTFOUND if none.
	RevokeShare(ctx context.Context, tenantID, dashboardID, id string, at time.Time) error
}
