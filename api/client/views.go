package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/privalytics/privalytics/api/wire"
)

// PreviewView answers what a view would cost per month, with all the
// tenant's views, and whether it fits: nothing is stored or spent.
func (c *Client) PreviewView(ctx context.Context, spec wire.ViewSpec) (*wire.ViewCost, error) {
	var out wire.ViewCost
	return &out, c.do(ctx, http.MethodPost, "/v1/views/preview", spec, &out)
}

// CreateView saves a view. An over-budget view is refused with a *wire.Error
// of code conflict whose Details["cost"] is the ViewCost.
func (c *Client) CreateView(ctx context.Context, spec wire.ViewSpec) (*wire.View, error) {
	var out wire.View
	return &out, c.do(ctx, http.MethodPost, "/v1/views", spec, &out)
}

// Views lists the tenant's views with their costs.
func (c *Client) Views(ctx context.Context) ([]wire.View, error) {
	var out wire.Views
	return out.Views, c.do(ctx, http.MethodGet, "/v1/views", nil, &out)
}

// View returns one view (share links: a view of their dashboard).
func (c *Client) View(ctx context.Context, id string) (*wire.View, error) {
	var out wire.View
	return &out, c.do(ctx, http.MethodGet, "/v1/views/"+url.PathEscape(id), nil, &out)
}

// DeleteView deletes a view and its releases.
func (c *Client) DeleteView(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/views/"+url.PathEscape(id), nil, nil)
}

// ViewReleases returns a view's releases whose bucket starts between from and
// to (days as YYYY-MM-DD, inclusive; "" for no bound).
func (c *Client) ViewReleases(ctx context.Context, id, from, to string) (*wire.Releases, error) {
	q := url.Values{}
	if from != "" {
		q.Set("from", from)
	}
	if to != "" {
		q.Set("to", to)
	}
	path := "/v1/views/" + url.PathEscape(id) + "/releases"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out wire.Releases
	return &out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// ViewRollup returns a view's roll-up by "quarter", "year" or "total".
func (c *Client) ViewRollup(ctx context.Context, id, by string) (*wire.Rollup, error) {
	var out wire.Rollup
	return &out, c.do(ctx, http.MethodGet, "/v1/views/"+url.PathEscape(id)+"/rollup?by="+url.QueryEscape(by), nil, &out)
}

// CreateDashboard saves a dashboard of views.
func (c *Client) CreateDashboard(ctx context.Context, d wire.CreateDashboard) (*wire.Dashboard, error) {
	var out wire.Dashboard
	return &out, c.do(ctx, http.MethodPost, "/v1/dashboards", d, &out)
}

// Dashboards lists the tenant's dashboards.
func (c *Client) Dashboards(ctx context.Context) ([]wire.Dashboard, error) {
	var out wire.Dashboards
	return out.Dashboards, c.do(ctx, http.MethodGet, "/v1/dashboards", nil, &out)
}

// Dashboard returns one dashboard.
func (c *Client) Dashboard(ctx context.Context, id string) (*wire.Dashboard, error) {
	var out wire.Dashboard
	return &out, c.do(ctx, http.MethodGet, "/v1/dashboards/"+url.PathEscape(id), nil, &out)
}

// DeleteDashboard deletes a dashboard and revokes its share links.
func (c *Client) DeleteDashboard(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/dashboards/"+url.PathEscape(id), nil, nil)
}

// ShareDashboard creates a share link: a read-only token for the dashboard.
func (c *Client) ShareDashboard(ctx context.Context, id string) (*wire.ShareLink, error) {
	var out wire.ShareLink
	return &out, c.do(ctx, http.MethodPost, "/v1/dashboards/"+url.PathEscape(id)+"/share", nil, &out)
}

// RevokeShare revokes a dashboard's share link.
func (c *Client) RevokeShare(ctx context.Context, dashboardID, shareID string) error {
	return c.do(ctx, http.MethodDelete, "/v1/dashboards/"+url.PathEscape(dashboardID)+"/share/"+url.PathEscape(shareID), nil, nil)
}
