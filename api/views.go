package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/api/wire"
)

// Views, dashboards and share links (issue 16): the handlers decode, call
// analytics.Views or the view store, and encode. Share keys (role share) pass
// the role check of the few routes that take them; viewAccess and
// dashboardAccess then hold them to their one dashboard.

func (s *Server) viewRoutes(v1 *gin.RouterGroup) {
	tenantKeys := s.require(privalytics.RoleQuery, privalytics.RoleAdmin)
	withShare := s.require(privalytics.RoleQuery, privalytics.RoleAdmin, privalytics.RoleShare)
	v1.POST("/views/preview", tenantKeys, s.handle(s.previewView))
	v1.POST("/views", tenantKeys, s.handle(s.createView))
	v1.GET("/views", tenantKeys, s.handle(s.listViews))
	v1.GET("/views/:id", withShare, s.handle(s.getView))
	v1.DELETE("/views/:id", tenantKeys, s.handle(s.deleteView))
	v1.GET("/views/:id/releases", withShare, s.handle(s.viewReleases))
	v1.GET("/views/:id/rollup", withShare, s.handle(s.viewRollup))
	v1.POST("/dashboards", tenantKeys, s.handle(s.createDashboard))
	v1.GET("/dashboards", tenantKeys, s.handle(s.listDashboards))
	v1.GET("/dashboards/:id", withShare, s.handle(s.getDashboard))
	v1.DELETE("/dashboards/:id", tenantKeys, s.handle(s.deleteDashboard))
	v1.POST("/dashboards/:id/share", tenantKeys, s.handle(s.shareDashboard))
	v1.DELETE("/dashboards/:id/share/:share_id", tenantKeys, s.handle(s.revokeShare))
}

var errNoViews = privalytics.Errorf(privalytics.EUNAVAILABLE, "views need the SQL metadata store (SQLite or PostgreSQL)")

// viewRequest is the caller's request context for analytics.Views.
func (s *Server) viewRequest(c *gin.Context) (analytics.ViewRequest, error) {
	if s.views == nil {
		return analytics.ViewRequest{}, errNoViews
	}
	key := callerOf(c).Key
	st, err := s.tenantState(c.Request.Context(), key.TenantID)
	if err != nil {
		return analytics.ViewRequest{}, err
	}
	return analytics.ViewRequest{Tenant: st.tenant, KeyID: key.ID, FingerprintKey: st.fingerprintKey, RequestID: requestID(c)}, nil
}

// viewSpec decodes a ViewSpec body; its query goes through the query decoder.
func (s *Server) viewSpec(c *gin.Context) (privalytics.ViewSpec, error) {
	var in wire.ViewSpec
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &in); err != nil {
		return privalytics.ViewSpec{}, err
	}
	if len(in.Query) == 0 {
		return privalytics.ViewSpec{}, privalytics.Errorf(privalytics.EINVALID, "view: query is required: the question to release, without a filter on the event time")
	}
	q, err := analytics.DecodeQuery(in.Query)
	if err != nil {
		return privalytics.ViewSpec{}, err
	}
	return privalytics.ViewSpec{Name: in.Name, Query: *q, Cadence: in.Cadence, Epsilon: in.Epsilon, Delta: in.Delta, SoFar: in.SoFar, Start: in.Start}, nil
}

func (s *Server) previewView(c *gin.Context) (reply, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return reply{}, err
	}
	spec, err := s.viewSpec(c)
	if err != nil {
		return reply{}, err
	}
	cost, err := s.views.Preview(c.Request.Context(), r, &spec)
	if err != nil {
		return reply{}, err
	}
	return ok(wireViewCost(cost)), nil
}

func (s *Server) createView(c *gin.Context) (reply, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return reply{}, err
	}
	spec, err := s.viewSpec(c)
	if err != nil {
		return reply{}, err
	}
	v, cost, err := s.views.Create(c.Request.Context(), r, spec)
	if err != nil {
		if cost != nil {
			err = privalytics.Errorf(privalytics.ECONFLICT, "%s", privalytics.ErrorMessage(err)).With("cost", wireViewCost(cost))
		}
		_ = s.audit(c, auditViewCreate, spec.Name, err, nil)
		return reply{}, err
	}
	_ = s.audit(c, auditViewCreate, v.ID, nil, map[string]string{"cadence": v.Cadence, "epsilon": fmtFloat(v.Epsilon)})
	return created(wireView(v, cost)), nil
}

func (s *Server) listViews(c *gin.Context) (reply, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return reply{}, err
	}
	vs, err := s.views.List(c.Request.Context(), r.Tenant.ID)
	if err != nil {
		return reply{}, err
	}
	out := wire.Views{Views: []wire.View{}}
	for _, v := range vs {
		cost, err := s.views.Cost(c.Request.Context(), r, v)
		if err != nil {
			return reply{}, err
		}
		out.Views = append(out.Views, wireView(v, cost))
	}
	return ok(out), nil
}

// viewAccess returns the view the route names, if the caller may read it: a
// tenant key any of its tenant's views, a share key only its dashboard's.
func (s *Server) viewAccess(c *gin.Context) (analytics.ViewRequest, *privalytics.View, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return r, nil, err
	}
	id := c.Param("id")
	if callerOf(c).Key.Role == privalytics.RoleShare {
		d, err := s.dashboardOfShare(c)
		if err != nil {
			return r, nil, err
		}
		if !slices.Contains(d.ViewIDs, id) {
			return r, nil, s.denied(c, privalytics.Errorf(privalytics.EFORBIDDEN, "this share link reads only the views of its dashboard"))
		}
	}
	v, err := s.views.View(c.Request.Context(), r.Tenant.ID, id)
	return r, v, err
}

// dashboardOfShare is the dashboard of the calling share key.
func (s *Server) dashboardOfShare(c *gin.Context) (*privalytics.Dashboard, error) {
	key := callerOf(c).Key
	sh, err := s.viewStore.ShareOf(c.Request.Context(), key.ID)
	if err != nil || sh.RevokedAt != nil || sh.TenantID != key.TenantID {
		return nil, s.denied(c, privalytics.Errorf(privalytics.EFORBIDDEN, "this share link has been revoked"))
	}
	return s.viewStore.Dashboard(c.Request.Context(), key.TenantID, sh.DashboardID)
}

func (s *Server) getView(c *gin.Context) (reply, error) {
	r, v, err := s.viewAccess(c)
	if err != nil {
		return reply{}, err
	}
	if callerOf(c).Key.Role == privalytics.RoleShare {
		return ok(wireView(v, nil)), nil // what the budget holds is not a share link's business
	}
	cost, err := s.views.Cost(c.Request.Context(), r, v)
	if err != nil {
		return reply{}, err
	}
	return ok(wireView(v, cost)), nil
}

func (s *Server) deleteView(c *gin.Context) (reply, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return reply{}, err
	}
	err = s.views.Delete(c.Request.Context(), r.Tenant.ID, c.Param("id"))
	_ = s.audit(c, auditViewDelete, c.Param("id"), err, nil)
	if err != nil {
		return reply{}, err
	}
	return noContent(), nil
}

// dayParam reads an optional YYYY-MM-DD query parameter.
func dayParam(c *gin.Context, name string) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, privalytics.Errorf(privalytics.EINVALID, "%s must be a day as YYYY-MM-DD, got %q", name, v)
	}
	return t, nil
}

func (s *Server) viewReleases(c *gin.Context) (reply, error) {
	from, err := dayParam(c, "from")
	if err != nil {
		return reply{}, err
	}
	to, err := dayParam(c, "to")
	if err != nil {
		return reply{}, err
	}
	if !to.IsZero() {
		to = to.AddDate(0, 0, 1) // "to" is the last day shown
	}
	r, v, err := s.viewAccess(c)
	if err != nil {
		return reply{}, err
	}
	rels, err := s.views.Releases(c.Request.Context(), r, v, from, to)
	if err != nil {
		return reply{}, err
	}
	out := wire.Releases{ViewID: v.ID, Releases: make([]wire.Release, 0, len(rels))}
	for _, rel := range rels {
		out.Releases = append(out.Releases, wire.Release{Bucket: rel.Bucket, Start: rel.Start, End: rel.End, State: rel.State, ReleasedAt: rel.ReleasedAt,
			Result: WireResult(rel.Result), Parameters: rel.Parameters})
	}
	return ok(out), nil
}

func (s *Server) viewRollup(c *gin.Context) (reply, error) {
	by := c.DefaultQuery("by", "quarter")
	r, v, err := s.viewAccess(c)
	if err != nil {
		return reply{}, err
	}
	rows, err := s.views.Rollup(c.Request.Context(), r, v, by)
	if err != nil {
		return reply{}, err
	}
	out := wire.Rollup{ViewID: v.ID, By: by, Rows: make([]wire.RollupRow, len(rows))}
	for i, row := range rows {
		out.Rows[i] = wire.RollupRow(row)
	}
	return ok(out), nil
}

func (s *Server) createDashboard(c *gin.Context) (reply, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return reply{}, err
	}
	var in wire.CreateDashboard
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &in); err != nil {
		return reply{}, err
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || len(in.Name) > 200 {
		return reply{}, privalytics.Errorf(privalytics.EINVALID, "dashboard: name must be 1 to 200 characters")
	}
	if len(in.ViewIDs) > 100 {
		return reply{}, privalytics.Errorf(privalytics.EINVALID, "dashboard: at most 100 views, got %d", len(in.ViewIDs))
	}
	for _, id := range in.ViewIDs {
		if _, err := s.views.View(c.Request.Context(), r.Tenant.ID, id); err != nil {
			return reply{}, err
		}
	}
	d := &privalytics.Dashboard{ID: "dash_" + newShortID(), TenantID: r.Tenant.ID, Name: in.Name, ViewIDs: append([]string{}, in.ViewIDs...), Layout: in.Layout, CreatedAt: s.now().UTC()}
	err = s.viewStore.CreateDashboard(c.Request.Context(), d)
	_ = s.audit(c, auditDashboardCreate, d.ID, err, nil)
	if err != nil {
		return reply{}, err
	}
	return created(wireDashboard(d)), nil
}

func (s *Server) listDashboards(c *gin.Context) (reply, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return reply{}, err
	}
	ds, err := s.viewStore.Dashboards(c.Request.Context(), r.Tenant.ID)
	if err != nil {
		return reply{}, err
	}
	out := wire.Dashboards{Dashboards: make([]wire.Dashboard, len(ds))}
	for i, d := range ds {
		out.Dashboards[i] = wireDashboard(d)
	}
	return ok(out), nil
}

func (s *Server) getDashboard(c *gin.Context) (reply, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return reply{}, err
	}
	if callerOf(c).Key.Role == privalytics.RoleShare {
		d, err := s.dashboardOfShare(c)
		if err != nil {
			return reply{}, err
		}
		if d.ID != c.Param("id") {
			return reply{}, s.denied(c, privalytics.Errorf(privalytics.EFORBIDDEN, "this share link reads only its own dashboard"))
		}
		return ok(wireDashboard(d)), nil
	}
	d, err := s.viewStore.Dashboard(c.Request.Context(), r.Tenant.ID, c.Param("id"))
	if err != nil {
		return reply{}, err
	}
	return ok(wireDashboard(d)), nil
}

func (s *Server) deleteDashboard(c *gin.Context) (reply, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return reply{}, err
	}
	err = s.viewStore.DeleteDashboard(c.Request.Context(), r.Tenant.ID, c.Param("id"), s.now().UTC())
	_ = s.audit(c, auditDashboardDelete, c.Param("id"), err, nil)
	if err != nil {
		return reply{}, err
	}
	// The shares' keys were revoked in the store; drop any cached copy.
	s.keys.clear()
	return noContent(), nil
}

func (s *Server) shareDashboard(c *gin.Context) (reply, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return reply{}, err
	}
	d, err := s.viewStore.Dashboard(c.Request.Context(), r.Tenant.ID, c.Param("id"))
	if err != nil {
		return reply{}, err
	}
	key, err := s.issueKey(c.Request.Context(), r.Tenant.ID, "share "+d.ID, privalytics.RoleShare)
	if err == nil {
		err = s.viewStore.CreateShare(c.Request.Context(), &privalytics.Share{ID: key.ID, TenantID: r.Tenant.ID, DashboardID: d.ID, CreatedAt: s.now().UTC()})
		if err != nil {
			_ = s.meta.RevokeKey(c.Request.Context(), r.Tenant.ID, key.ID, s.now().UTC())
		}
	}
	target := d.ID
	if key != nil {
		target = key.ID
	}
	_ = s.audit(c, auditShareCreate, target, err, map[string]string{"dashboard_id": d.ID})
	if err != nil {
		return reply{}, err
	}
	return created(wire.ShareLink{ID: key.ID, DashboardID: d.ID, Token: key.Token, URL: "/dashboard/#share=" + key.Token}), nil
}

func (s *Server) revokeShare(c *gin.Context) (reply, error) {
	r, err := s.viewRequest(c)
	if err != nil {
		return reply{}, err
	}
	id := c.Param("share_id")
	err = s.viewStore.RevokeShare(c.Request.Context(), r.Tenant.ID, c.Param("id"), id, s.now().UTC())
	_ = s.audit(c, auditShareRevoke, id, err, map[string]string{"dashboard_id": c.Param("id")})
	if err != nil {
		return reply{}, err
	}
	s.keys.evict(id)
	return noContent(), nil
}

func wireViewCost(c *analytics.ViewCost) *wire.ViewCost {
	if c == nil {
		return nil
	}
	return &wire.ViewCost{PerRelease: wireCost(c.PerRelease), ReleasesPerPeriod: c.ReleasesPerPeriod, PerPeriod: wireCost(c.PerPeriod),
		AllViewsPerPeriod: wireCost(c.AllViewsPerPeriod), Period: c.Period, PeriodBudget: wireCost(c.PeriodBudget),
		PeriodsBudgetLasts: c.PeriodsBudgetLasts, Fits: c.Fits, Message: c.Message}
}

func wireView(v *privalytics.View, cost *analytics.ViewCost) wire.View {
	q, _ := json.Marshal(v.Query)
	return wire.View{ID: v.ID, Name: v.Name, Query: q, Cadence: v.Cadence, Epsilon: v.Epsilon, Delta: v.Delta, SoFar: v.SoFar, Start: v.Start,
		CreatedAt: v.CreatedAt, Cost: wireViewCost(cost)}
}

func wireDashboard(d *privalytics.Dashboard) wire.Dashboard {
	return wire.Dashboard{ID: d.ID, Name: d.Name, ViewIDs: d.ViewIDs, Layout: d.Layout, CreatedAt: d.CreatedAt}
}

// newShortID is a random 64-bit hex identifier.
func newShortID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("api: no randomness for an id: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}
