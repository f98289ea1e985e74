package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

var _ privalytics.ViewStore = (*Store)(nil)

// CreateView stores v.
func (s *Store) CreateView(ctx context.Context, v *privalytics.View) error {
	spec, err := json.Marshal(v.ViewSpec)
	if err != nil {
		return s.fail("create view", err)
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO views (id, tenant_id, key_id, spec, created_at) VALUES (?, ?, ?, ?, ?)`),
		v.ID, v.TenantID, v.KeyID, string(spec), s.d.Time(v.CreatedAt))
	if s.d.IsUnique(err) {
		return privalytics.Errorf(privalytics.ECONFLICT, "view %q already exists", v.ID)
	}
	return s.fail("create view", err)
}

func scanView(r interface{ Scan(...any) error }) (*privalytics.View, error) {
	var v privalytics.View
	var spec string
	if err := r.Scan(&v.ID, &v.TenantID, &v.KeyID, &spec, timeOf(&v.CreatedAt)); err != nil {
		return nil, err
	}
	return &v, json.Unmarshal([]byte(spec), &v.ViewSpec)
}

// View returns a tenant's view.
func (s *Store) View(ctx context.Context, tenantID, id string) (*privalytics.View, error) {
	v, err := scanView(s.db.QueryRowContext(ctx, s.q(`SELECT id, tenant_id, key_id, spec, created_at FROM views WHERE id = ? AND tenant_id = ?`), id, tenantID))
	if noRows(err) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no view %q", id)
	}
	return v, s.fail("view", err)
}

// Views lists a tenant's views, oldest first.
func (s *Store) Views(ctx context.Context, tenantID string) ([]*privalytics.View, error) {
	out, err := list(ctx, s.db, s.q(`SELECT id, tenant_id, key_id, spec, created_at FROM views WHERE tenant_id = ? ORDER BY created_at, id`), []any{tenantID}, scanView)
	return out, s.fail("views", err)
}

// DeleteView removes a view and its releases.
func (s *Store) DeleteView(ctx context.Context, tenantID, id string) error {
	err := s.tx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM view_releases WHERE view_id IN (SELECT id FROM views WHERE id = ? AND tenant_id = ?)`), id, tenantID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM views WHERE id = ? AND tenant_id = ?`), id, tenantID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no view %q", id)
		}
		return nil
	})
	return s.fail("delete view", err)
}

// ClaimRelease records a pending release unless the (view, bucket, kind) key
// is taken; see privalytics.ViewStore.
func (s *Store) ClaimRelease(ctx context.Context, tenantID string, r *privalytics.Release, staleBefore time.Time) error {
	taken := privalytics.Errorf(privalytics.ECONFLICT, "the %s release of bucket %s is already made or being made", r.State, r.Bucket)
	err := s.tx(ctx, nil, func(tx *sql.Tx) error {
		var owner string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT tenant_id FROM views WHERE id = ?`+s.d.Lock), r.ViewID).Scan(&owner); noRows(err) || (err == nil && owner != tenantID) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no view %q", r.ViewID)
		} else if err != nil {
			return err
		}
		var state string
		var claimed time.Time
		err := tx.QueryRowContext(ctx, s.q(`SELECT state, claimed_at FROM view_releases WHERE view_id = ? AND bucket = ? AND kind = ?`), r.ViewID, r.Bucket, r.State).Scan(&state, timeOf(&claimed))
		switch {
		case noRows(err):
			_, err = tx.ExecContext(ctx, s.q(`INSERT INTO view_releases (view_id, bucket, state, kind, start_at, end_at, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
				r.ViewID, r.Bucket, privalytics.ReleasePending, r.State, s.d.Time(r.Start), s.d.Time(r.End), s.d.Time(r.ClaimedAt))
			if s.d.IsUnique(err) {
				return taken
			}
			return err
		case err != nil:
			return err
		case state == privalytics.ReleasePending && claimed.Before(staleBefore):
			// The claimer died mid-release: take over. The new claimer charges
			// again, so the release is reserved again until it does.
			_, err = tx.ExecContext(ctx, s.q(`UPDATE view_releases SET claimed_at = ?, charged = ? WHERE view_id = ? AND bucket = ? AND kind = ?`), s.d.Time(r.ClaimedAt), false, r.ViewID, r.Bucket, r.State)
			return err
		}
		return taken
	})
	return s.fail("claim release", err)
}

// CompleteRelease stores a claimed release's result.
func (s *Store) CompleteRelease(ctx context.Context, tenantID string, r *privalytics.Release) error {
	res, err := json.Marshal(r.Result)
	if err != nil {
		return s.fail("complete release", err)
	}
	params, err := json.Marshal(r.Parameters)
	if err != nil {
		return s.fail("complete release", err)
	}
	return s.updateOne(ctx, "complete release", privalytics.Errorf(privalytics.ECONFLICT, "the %s release of bucket %s was not claimed", r.State, r.Bucket),
		`UPDATE view_releases SET state = ?, released_at = ?, result = ?, parameters = ? WHERE view_id = ? AND bucket = ? AND kind = ? AND state = ?
		AND view_id IN (SELECT id FROM views WHERE tenant_id = ?)`,
		r.State, s.d.Time(r.ReleasedAt), string(res), string(params), r.ViewID, r.Bucket, r.State, privalytics.ReleasePending, tenantID)
}

// AbandonRelease drops a pending claim.
func (s *Store) AbandonRelease(ctx context.Context, tenantID, viewID, bucket, state string) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM view_releases WHERE view_id = ? AND bucket = ? AND kind = ? AND state = ?
		AND view_id IN (SELECT id FROM views WHERE tenant_id = ?)`), viewID, bucket, state, privalytics.ReleasePending, tenantID)
	return s.fail("abandon release", err)
}

// Releases lists a view's releases by bucket start, so_far after closed.
func (s *Store) Releases(ctx context.Context, tenantID, viewID string) ([]privalytics.Release, error) {
	out, err := list(ctx, s.db, s.q(`SELECT r.view_id, r.bucket, r.state, r.kind, r.start_at, r.end_at, r.claimed_at, r.released_at, r.result, r.parameters
		FROM view_releases r JOIN views v ON v.id = r.view_id WHERE r.view_id = ? AND v.tenant_id = ? ORDER BY r.start_at, r.kind`), []any{viewID, tenantID},
		func(row interface{ Scan(...any) error }) (privalytics.Release, error) {
			var r privalytics.Release
			var kind string
			var res, params sql.NullString
			if err := row.Scan(&r.ViewID, &r.Bucket, &r.State, &kind, timeOf(&r.Start), timeOf(&r.End), timeOf(&r.ClaimedAt), timeOf(&r.ReleasedAt), &res, &params); err != nil {
				return r, err
			}
			if r.State == privalytics.ReleasePending {
				r.Parameters = map[string]any{"kind": kind}
				return r, nil
			}
			if res.Valid {
				if err := json.Unmarshal([]byte(res.String), &r.Result); err != nil {
					return r, err
				}
			}
			if params.Valid {
				if err := json.Unmarshal([]byte(params.String), &r.Parameters); err != nil {
					return r, err
				}
			}
			return r, nil
		})
	return out, s.fail("releases", err)
}

// CreateDashboard stores d.
func (s *Store) CreateDashboard(ctx context.Context, d *privalytics.Dashboard) error {
	ids, err := json.Marshal(d.ViewIDs)
	if err != nil {
		return s.fail("create dashboard", err)
	}
	layout, err := json.Marshal(d.Layout)
	if err != nil {
		return s.fail("create dashboard", err)
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO dashboards (id, tenant_id, name, view_ids, layout, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
		d.ID, d.TenantID, d.Name, string(ids), string(layout), s.d.Time(d.CreatedAt))
	if s.d.IsUnique(err) {
		return privalytics.Errorf(privalytics.ECONFLICT, "dashboard %q already exists", d.ID)
	}
	return s.fail("create dashboard", err)
}

func scanDashboard(r interface{ Scan(...any) error }) (*privalytics.Dashboard, error) {
	var d privalytics.Dashboard
	var ids, layout string
	if err := r.Scan(&d.ID, &d.TenantID, &d.Name, &ids, &layout, timeOf(&d.CreatedAt)); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(ids), &d.ViewIDs); err != nil {
		return nil, err
	}
	return &d, json.Unmarshal([]byte(layout), &d.Layout)
}

// Dashboard returns a tenant's dashboard.
func (s *Store) Dashboard(ctx context.Context, tenantID, id string) (*privalytics.Dashboard, error) {
	d, err := scanDashboard(s.db.QueryRowContext(ctx, s.q(`SELECT id, tenant_id, name, view_ids, layout, created_at FROM dashboards WHERE id = ? AND tenant_id = ?`), id, tenantID))
	if noRows(err) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no dashboard %q", id)
	}
	return d, s.fail("dashboard", err)
}

// Dashboards lists a tenant's dashboards, oldest first.
func (s *Store) Dashboards(ctx context.Context, tenantID string) ([]*privalytics.Dashboard, error) {
	out, err := list(ctx, s.db, s.q(`SELECT id, tenant_id, name, view_ids, layout, created_at FROM dashboards WHERE tenant_id = ? ORDER BY created_at, id`), []any{tenantID}, scanDashboard)
	return out, s.fail("dashboards", err)
}

// DeleteDashboard removes a dashboard and revokes its share links' keys.
func (s *Store) DeleteDashboard(ctx context.Context, tenantID, id string, at time.Time) error {
	err := s.tx(ctx, nil, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM dashboards WHERE id = ? AND tenant_id = ?`), id, tenantID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no dashboard %q", id)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE tenant_id = ? AND id IN (SELECT key_id FROM dashboard_shares WHERE dashboard_id = ? AND tenant_id = ?)`),
			s.d.Time(at), tenantID, id, tenantID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE dashboard_shares SET revoked_at = COALESCE(revoked_at, ?) WHERE dashboard_id = ? AND tenant_id = ?`), s.d.Time(at), id, tenantID)
		return err
	})
	return s.fail("delete dashboard", err)
}

// CreateShare stores a share link of an issued share key.
func (s *Store) CreateShare(ctx context.Context, sh *privalytics.Share) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO dashboard_shares (key_id, tenant_id, dashboard_id, created_at) VALUES (?, ?, ?, ?)`),
		sh.ID, sh.TenantID, sh.DashboardID, s.d.Time(sh.CreatedAt))
	return s.fail("create share", err)
}

// ShareOf returns the share of a share key.
func (s *Store) ShareOf(ctx context.Context, keyID string) (*privalytics.Share, error) {
	var sh privalytics.Share
	var revoked time.Time
	rt := timeOf(&revoked)
	err := s.db.QueryRowContext(ctx, s.q(`SELECT key_id, tenant_id, dashboard_id, created_at, revoked_at FROM dashboard_shares WHERE key_id = ?`), keyID).
		Scan(&sh.ID, &sh.TenantID, &sh.DashboardID, timeOf(&sh.CreatedAt), rt)
	if noRows(err) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no share %q", keyID)
	}
	if rt.valid {
		sh.RevokedAt = &revoked
	}
	return &sh, s.fail("share", err)
}

// RevokeShare revokes a dashboard's share link and its key.
func (s *Store) RevokeShare(ctx context.Context, tenantID, dashboardID, id string, at time.Time) error {
	err := s.tx(ctx, nil, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE dashboard_shares SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ? AND dashboard_id = ? AND tenant_id = ?`), s.d.Time(at), id, dashboardID, tenantID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no share link %q of dashboard %q", id, dashboardID)
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND tenant_id = ?`), s.d.Time(at), id, tenantID)
		return err
	})
	return s.fail("revoke share", err)
}

// reservations reads what the tenant's views other than exceptViewID reserve
// of each of periods (dp.Reserved): their declared cost per release and the
// releases already made, failed or charged in those months. A pending
// release not charged yet is still reserved.
func (s *Store) reservations(ctx context.Context, q querier, tenantID, exceptViewID string, periods []string) (map[string]dp.Units, error) {
	out := map[string]dp.Units{}
	var from, to time.Time
	for _, p := range periods {
		f, err := time.Parse("2006-01", p)
		if err != nil {
			continue // Decide refuses what CheckPeriods does not take
		}
		if from.IsZero() || f.Before(from) {
			from = f
		}
		if t := f.AddDate(0, 1, 0); t.After(to) {
			to = t
		}
	}
	if from.IsZero() {
		return out, nil
	}
	views, err := list(ctx, q, s.q(`SELECT id, tenant_id, key_id, spec, created_at FROM views WHERE tenant_id = ? AND id <> ? ORDER BY id`), []any{tenantID, exceptViewID}, scanView)
	if err != nil || len(views) == 0 {
		return out, err
	}
	type done struct{ view, bucket, kind string }
	rows, err := list(ctx, q, s.q(`SELECT r.view_id, r.bucket, r.kind FROM view_releases r JOIN views v ON v.id = r.view_id
		WHERE v.tenant_id = ? AND (r.state <> ? OR r.charged = ?) AND r.start_at < ? AND r.end_at > ?`), []any{tenantID, privalytics.ReleasePending, true, s.d.Time(to), s.d.Time(from)},
		func(r interface{ Scan(...any) error }) (done, error) {
			var d done
			return d, r.Scan(&d.view, &d.bucket, &d.kind)
		})
	if err != nil {
		return out, err
	}
	byView := map[string]map[string]bool{}
	for _, d := range rows {
		if byView[d.view] == nil {
			byView[d.view] = map[string]bool{}
		}
		byView[d.view][d.bucket+"/"+d.kind] = true
	}
	rs := make([]dp.ViewReservation, 0, len(views))
	for _, v := range views {
		// The declared cost, rounded up like the charge; an unchargeable one
		// reserves the most a budget can hold, so it never lets others pass.
		per := dp.Units{Eps: math.MaxInt64 / 4, Delta: math.MaxInt64 / 4}
		if c := (privalytics.Cost{Epsilon: v.Epsilon, Delta: v.Delta}); dp.CheckCost(c) == nil {
			per = dp.UnitsUp(c)
			per.Rho = 0
		}
		rs = append(rs, dp.ViewReservation{Cadence: v.Cadence, Start: v.Start, SoFar: v.SoFar, PerRelease: per, Done: byView[v.ID]})
	}
	for _, p := range periods {
		out[p] = dp.Reserved(rs, p)
	}
	return out, nil
}

// Reserved returns what the tenant's views other than exceptViewID reserve of
// each of periods; see privalytics.Ledger.
func (s *Store) Reserved(ctx context.Context, tenantID, exceptViewID string, periods []string) (map[string]privalytics.Cost, error) {
	a, err := s.account(ctx, s.db, false, tenantID, "", nil)
	if err != nil {
		return nil, s.fail("reserved", err)
	}
	out := map[string]privalytics.Cost{}
	if a.Period == "" {
		return out, nil
	}
	r, err := s.reservations(ctx, s.db, tenantID, exceptViewID, periods)
	for p, u := range r {
		out[p] = u.Cost()
	}
	return out, s.fail("reserved", err)
}
