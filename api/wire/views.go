package wire

import (
	"encoding/json"
	"time"
)

// ViewSpec is the body of POST /v1/views and /v1/views/preview: a saved
// question (Query, with no filter on the event time — the view adds each
// bucket's) released once per Cadence bucket ("day", "week" or "month", UTC)
// at Epsilon (and Delta) per release, from the bucket holding Start
// (YYYY-MM-DD). SoFar adds one release of the open bucket.
type ViewSpec struct {
	Name    string          `json:"name"`
	Query   json.RawMessage `json:"query"`
	Cadence string          `json:"cadence"`
	Epsilon float64         `json:"epsilon"`
	Delta   float64         `json:"delta,omitempty"`
	SoFar   bool            `json:"so_far,omitempty"`
	Start   string          `json:"start"`
}

// ViewCost is what a view costs and whether the budget carries it.
type ViewCost struct {
	PerRelease        Cost   `json:"per_release"`
	ReleasesPerPeriod int    `json:"releases_per_period"`
	PerPeriod         Cost   `json:"per_period"`
	AllViewsPerPeriod Cost   `json:"all_views_per_period"`
	Period            string `json:"period"` // "month"
	// PeriodBudget is each month's budget, or what remains of a tenant's one
	// budget for all time.
	PeriodBudget Cost `json:"period_budget"`
	// PeriodsBudgetLasts is null when the budget renews every month.
	PeriodsBudgetLasts *int   `json:"periods_budget_lasts"`
	Fits               bool   `json:"fits"`
	Message            string `json:"message"`
}

// View is a stored view.
type View struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Query     json.RawMessage `json:"query"`
	Cadence   string          `json:"cadence"`
	Epsilon   float64         `json:"epsilon"`
	Delta     float64         `json:"delta,omitempty"`
	SoFar     bool            `json:"so_far,omitempty"`
	Start     string          `json:"start"`
	CreatedAt time.Time       `json:"created_at"`
	Cost      *ViewCost       `json:"cost,omitempty"` // absent for share links
}

// Views lists a tenant's views.
type Views struct {
	Views []View `json:"views"`
}

// Release is one bucket's answer: "closed" (final, free to read forever) or
// "so_far" (the open bucket, replaced by the closed release when it ends).
// A release that failed after reading data has no result and an "error"
// parameter.
type Release struct {
	Bucket     string         `json:"bucket"`
	Start      time.Time      `json:"start"`
	End        time.Time      `json:"end"`
	State      string         `json:"state"`
	ReleasedAt time.Time      `json:"released_at"`
	Result     *Result        `json:"result"`
	Parameters map[string]any `json:"parameters"`
}

// Releases answers GET /v1/views/{id}/releases.
type Releases struct {
	ViewID   string    `json:"view_id"`
	Releases []Release `json:"releases"`
}

// RollupRow is a quarter's, a year's or the total's sum of a view's closed
// releases for one group ({} is all groups together); Intervals are
// [lower, upper] per value.
type RollupRow struct {
	Bucket    string                `json:"bucket"`
	Group     map[string]string     `json:"group"`
	Values    map[string]float64    `json:"values"`
	Intervals map[string][2]float64 `json:"intervals"`
	Buckets   int                   `json:"buckets"`
	Complete  bool                  `json:"complete"`
}

// Rollup answers GET /v1/views/{id}/rollup.
type Rollup struct {
	ViewID string      `json:"view_id"`
	By     string      `json:"by"`
	Rows   []RollupRow `json:"rows"`
}

// CreateDashboard is the body of POST /v1/dashboards.
type CreateDashboard struct {
	Name    string         `json:"name"`
	ViewIDs []string       `json:"view_ids"`
	Layout  map[string]any `json:"layout,omitempty"`
}

// Dashboard is a saved list of views.
type Dashboard struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	ViewIDs   []string       `json:"view_ids"`
	Layout    map[string]any `json:"layout,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
}

// Dashboards lists a tenant's dashboards.
type Dashboards struct {
	Dashboards []Dashboard `json:"dashboards"`
}

// ShareLink is a new share link: Token (shown once) reads the dashboard, its
// views, their releases and roll-ups, and nothing else.
type ShareLink struct {
	ID          string `json:"id"`
	DashboardID string `json:"dashboard_id"`
	Token       string `json:"token"`
	URL         string `json:"url"` // "/dashboard/#share=<token>"
}
