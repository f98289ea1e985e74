package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// errSharesWithPeriods refuses per-key shares where Decide has no place for them.
var errSharesWithPeriods = privalytics.Errorf(privalytics.EINVALID, "per-key shares are not available for tenants with data-period budgets or zCDP accounting yet")

// account reads the tenant's ledger row — locked until tx ends when lock is
// set — and what of the key's share and the periods' spending the policy needs.
func (s *Store) account(ctx context.Context, q querier, lock bool, tenantID, keyID string, periods []string) (dp.Account, error) {
	var a dp.Account
	l := ""
	if lock {
		l = s.d.Lock
	}
	err := q.QueryRowContext(ctx, s.q(`SELECT accounting, period, budget_eps, budget_delta, budget_rho, spent_eps, spent_delta, spent_rho, alloc_eps, alloc_delta, shared_eps, shared_delta FROM tenants WHERE id = ?`+l), tenantID).
		Scan(&a.Accounting, &a.Period, &a.Total.Eps, &a.Total.Delta, &a.Total.Rho, &a.Spent.Eps, &a.Spent.Delta, &a.Spent.Rho, &a.Allocated.Eps, &a.Allocated.Delta, &a.SharedSpent.Eps, &a.SharedSpent.Delta)
	if noRows(err) {
		return a, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	} else if err != nil {
		return a, err
	}
	if a.Accounting == "" && a.Period == "" && keyID != "" {
		var k dp.Share
		err := q.QueryRowContext(ctx, s.q(`SELECT budget_eps, budget_delta, spent_eps, spent_delta FROM key_budgets WHERE key_id = ? AND tenant_id = ?`), keyID, tenantID).
			Scan(&k.Total.Eps, &k.Total.Delta, &k.Spent.Eps, &k.Spent.Delta)
		if err == nil {
			a.Key = &k
		} else if !noRows(err) {
			return a, err
		}
	}
	if a.Period != "" {
		a.PeriodSpent = map[string]dp.Units{}
		for _, p := range periods {
			var u dp.Units
			err := q.QueryRowContext(ctx, s.q(`SELECT spent_eps, spent_delta FROM period_spent WHERE tenant_id = ? AND period = ?`), tenantID, p).Scan(&u.Eps, &u.Delta)
			if err != nil && !noRows(err) {
				return a, err
			}
			a.PeriodSpent[p] = u
		}
	}
	return a, nil
}

// setSpent writes the tenant's new sums, the shared pool's included.
func (s *Store) setSpent(ctx context.Context, tx *sql.Tx, tenantID string, spent, shared dp.Units) error {
	_, err := tx.ExecContext(ctx, s.q(`UPDATE tenants SET spent_eps = ?, spent_delta = ?, spent_rho = ?, shared_eps = ?, shared_delta = ? WHERE id = ?`),
		spent.Eps, spent.Delta, spent.Rho, shared.Eps, shared.Delta, tenantID)
	return err
}

func (s *Store) setKeySpent(ctx context.Context, tx *sql.Tx, keyID string, spent dp.Units) error {
	_, err := tx.ExecContext(ctx, s.q(`UPDATE key_budgets SET spent_eps = ?, spent_delta = ? WHERE key_id = ?`), spent.Eps, spent.Delta, keyID)
	return err
}

func (s *Store) setPeriodSpent(ctx context.Context, tx *sql.Tx, tenantID, period string, spent dp.Units) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO period_spent (tenant_id, period, spent_eps, spent_delta) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id, period) DO UPDATE SET spent_eps = excluded.spent_eps, spent_delta = excluded.spent_delta`), tenantID, period, spent.Eps, spent.Delta)
	return err
}

// Charge checks c against the tenant's budget with dp.Decide and records it,
// in one transaction that holds the tenant's ledger row.
func (s *Store) Charge(ctx context.Context, c *privalytics.Charge) (privalytics.BudgetStatus, error) {
	if err := dp.CheckCost(c.Cost); err != nil {
		return privalytics.BudgetStatus{}, err
	}
	need := dp.UnitsUp(c.Cost)
	// The caller's charge gets its ID only once it is recorded.
	id, err := NewID()
	if err != nil {
		return privalytics.BudgetStatus{}, s.fail("charge", err)
	}
	var st privalytics.BudgetStatus
	err = s.tx(ctx, nil, func(tx *sql.Tx) error {
		a, err := s.account(ctx, tx, true, c.TenantID, c.KeyID, c.Periods)
		if err != nil {
			return err
		}
		if a.Period != "" {
			// What the views reserve, read under the tenant's lock: an ad-hoc
			// charge may not eat into it; a view's release draws on its own.
			if a.Reserved, err = s.reservations(ctx, tx, c.TenantID, c.ViewID, c.Periods); err != nil {
				return err
			}
		}
		if err := dp.Decide(a, need, c.Periods); err != nil {
			return err
		}
		shared, periods := a.SharedSpent, ""
		switch {
		case a.Period != "":
			seen := map[string]bool{}
			for _, p := range c.Periods {
				if !seen[p] {
					seen[p] = true
					if err := s.setPeriodSpent(ctx, tx, c.TenantID, p, a.PeriodSpent[p].Plus(need)); err != nil {
						return err
					}
				}
			}
			periods = strings.Join(c.Periods, ",")
		case a.Key != nil:
			if err := s.setKeySpent(ctx, tx, c.KeyID, a.Key.Spent.Plus(need)); err != nil {
				return err
			}
		case a.Accounting == "":
			shared = shared.Plus(need)
		}
		if err := s.setSpent(ctx, tx, c.TenantID, a.Spent.Plus(need), shared); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO charges (id, tenant_id, key_id, time, fingerprint, mechanisms, eps, delta, rho, periods, from_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			id, c.TenantID, c.KeyID, s.d.Time(c.Time), c.Fingerprint, c.Mechanisms, need.Eps, need.Delta, need.Rho, periods, a.Key != nil); err != nil {
			return err
		}
		if c.ViewID != "" && c.ViewBucket != "" {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE view_releases SET charged = ? WHERE view_id = ? AND bucket = ? AND kind = ? AND state = ?`),
				true, c.ViewID, c.ViewBucket, c.ViewKind, privalytics.ReleasePending); err != nil {
				return err
			}
		}
		st, err = s.status(ctx, tx, c.TenantID)
		return err
	})
	if err != nil {
		return privalytics.BudgetStatus{}, s.fail("charge", err)
	}
	c.ID = id
	return st, nil
}

// Refund marks a charge refunded and gives its amount back, once.
func (s *Store) Refund(ctx context.Context, tenantID, chargeID string) error {
	err := s.tx(ctx, nil, func(tx *sql.Tx) error {
		var got dp.Units
		var keyID, periods string
		var fromKey bool
		// The charge's row lock makes a second refund of it wait and then find
		// it refunded.
		err := tx.QueryRowContext(ctx, s.q(`UPDATE charges SET refunded = ? WHERE id = ? AND tenant_id = ? AND refunded = ? RETURNING eps, delta, rho, key_id, from_key, periods`), true, chargeID, tenantID, false).
			Scan(&got.Eps, &got.Delta, &got.Rho, &keyID, &fromKey, &periods)
		if noRows(err) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no unrefunded charge %q", chargeID)
		} else if err != nil {
			return err
		}
		var ps []string
		if periods != "" {
			ps = strings.Split(periods, ",")
		}
		a, err := s.account(ctx, tx, true, tenantID, keyID, ps)
		if err != nil {
			return err
		}
		shared := a.SharedSpent
		switch {
		case a.Period != "":
			for p, spent := range a.PeriodSpent {
				if err := s.setPeriodSpent(ctx, tx, tenantID, p, spent.Minus(got)); err != nil {
					return err
				}
			}
		case fromKey:
			// A share removed since the charge took its spending to the shared
			// pool, which keeps it.
			if a.Key != nil {
				if err := s.setKeySpent(ctx, tx, keyID, a.Key.Spent.Minus(got)); err != nil {
					return err
				}
			}
		case a.Accounting == "":
			shared = shared.Minus(got)
		}
		return s.setSpent(ctx, tx, tenantID, a.Spent.Minus(got), shared)
	})
	return s.fail("refund", err)
}

// status builds a tenant's BudgetStatus from its ledger row, adding every
// period's spending for a tenant with data-period budgets.
func (s *Store) status(ctx context.Context, q querier, tenantID string) (privalytics.BudgetStatus, error) {
	a, err := s.account(ctx, q, false, tenantID, "", nil)
	if err != nil {
		return privalytics.BudgetStatus{}, err
	}
	eps := func(u dp.Units) dp.Units { return dp.Units{Eps: u.Eps, Delta: u.Delta} }
	st := privalytics.BudgetStatus{TenantID: tenantID, Total: eps(a.Total).Cost(), Spent: eps(a.Spent).Cost(),
		Remaining: dp.Units{Eps: a.Total.Eps - a.Spent.Eps, Delta: a.Total.Delta - a.Spent.Delta}.Cost(), Allocated: eps(a.Allocated).Cost()}
	st.Spent.Rho = a.Spent.Cost().Rho
	if a.Accounting == privalytics.AccountingZCDP {
		// ρ is what binds; the δ left is half the δ budget (the other half
		// converts ρ to ε) minus what approximate parts spent.
		st.Accounting = a.Accounting
		st.Total.Rho, st.Remaining.Rho = a.Total.Cost().Rho, dp.Units{Rho: a.Total.Rho - a.Spent.Rho}.Cost().Rho
		st.Remaining.Delta = dp.Units{Delta: a.Total.Delta/2 - a.Spent.Delta}.Cost().Delta
	}
	if a.Period == "" {
		return st, nil
	}
	// Total is each period's budget; Remaining the least any period has left.
	st.Period, st.Remaining = a.Period, eps(a.Total).Cost()
	ps, err := list(ctx, q, s.q(`SELECT period, spent_eps, spent_delta FROM period_spent WHERE tenant_id = ? ORDER BY period`), []any{tenantID},
		func(r interface{ Scan(...any) error }) (privalytics.PeriodStatus, error) {
			var p privalytics.PeriodStatus
			var u dp.Units
			err := r.Scan(&p.Period, &u.Eps, &u.Delta)
			p.Spent, p.Remaining = u.Cost(), dp.Units{Eps: a.Total.Eps - u.Eps, Delta: a.Total.Delta - u.Delta}.Cost()
			return p, err
		})
	if err != nil {
		return st, err
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Period
	}
	reserved, err := s.reservations(ctx, q, tenantID, "", names)
	for _, p := range ps {
		p.Reserved = reserved[p.Period].Cost()
		st.Periods = append(st.Periods, p)
		st.Remaining.Epsilon = min(st.Remaining.Epsilon, p.Remaining.Epsilon)
		st.Remaining.Delta = min(st.Remaining.Delta, p.Remaining.Delta)
	}
	return st, err
}

// Budget returns the tenant's status.
func (s *Store) Budget(ctx context.Context, tenantID string) (privalytics.BudgetStatus, error) {
	st, err := s.status(ctx, s.db, tenantID)
	return st, s.fail("budget", err)
}

// KeyBudget returns what the key may spend: its own share, or the shared pool.
func (s *Store) KeyBudget(ctx context.Context, tenantID, keyID string) (privalytics.KeyBudget, error) {
	a, err := s.account(ctx, s.db, false, tenantID, keyID, nil)
	if err != nil {
		return privalytics.KeyBudget{}, s.fail("key budget", err)
	}
	kb := privalytics.KeyBudget{KeyID: keyID, Shared: a.Key == nil}
	total, spent := dp.Units{Eps: a.Total.Eps - a.Allocated.Eps, Delta: a.Total.Delta - a.Allocated.Delta}, a.SharedSpent
	if a.Key != nil {
		total, spent = a.Key.Total, a.Key.Spent
	}
	kb.Total, kb.Spent = total.Cost(), spent.Cost()
	kb.Remaining = dp.Units{Eps: total.Eps - spent.Eps, Delta: total.Delta - spent.Delta}.Cost()
	return kb, nil
}

// Allocate sets or removes a key's own share.
func (s *Store) Allocate(ctx context.Context, tenantID, keyID string, share privalytics.Cost, actorKeyID string) error {
	if err := dp.CheckCost(privalytics.Cost{Epsilon: share.Epsilon, Delta: share.Delta}); err != nil {
		return err
	}
	u := dp.UnitsDown(privalytics.Cost{Epsilon: share.Epsilon, Delta: share.Delta})
	err := s.tx(ctx, nil, func(tx *sql.Tx) error {
		var owner string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT tenant_id FROM api_keys WHERE id = ?`), keyID).Scan(&owner); noRows(err) || (err == nil && owner != tenantID) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no key %q", keyID)
		} else if err != nil {
			return err
		}
		// The tenant's row first: allocations and charges of the shared pool
		// must not interleave.
		a, err := s.account(ctx, tx, true, tenantID, keyID, nil)
		if err != nil {
			return err
		}
		if a.Period != "" || a.Accounting != "" {
			return errSharesWithPeriods
		}
		var old dp.Share
		if a.Key != nil {
			old = *a.Key
		}
		plan, err := dp.Reallocate(dp.Allocation{Budget: a.Total, Allocated: a.Allocated, SharedSpent: a.SharedSpent}, a.Key != nil, old.Total, old.Spent, u)
		if err != nil {
			return err
		}
		if plan.Remove {
			_, err = tx.ExecContext(ctx, s.q(`DELETE FROM key_budgets WHERE key_id = ?`), keyID)
		} else {
			_, err = tx.ExecContext(ctx, s.q(`INSERT INTO key_budgets (key_id, tenant_id, budget_eps, budget_delta) VALUES (?, ?, ?, ?)
				ON CONFLICT (key_id) DO UPDATE SET budget_eps = excluded.budget_eps, budget_delta = excluded.budget_delta`), keyID, tenantID, u.Eps, u.Delta)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE tenants SET alloc_eps = ?, alloc_delta = ?, shared_eps = ?, shared_delta = ? WHERE id = ?`),
			plan.Allocated.Eps, plan.Allocated.Delta, plan.SharedSpent.Eps, plan.SharedSpent.Delta, tenantID); err != nil {
			return err
		}
		return s.recordChange(ctx, tx, tenantID, "allocate", keyID, actorKeyID, u)
	})
	return s.fail("allocate", err)
}

// recordChange appends to the record of grants and allocations.
func (s *Store) recordChange(ctx context.Context, tx *sql.Tx, tenantID, kind, keyID, actor string, u dp.Units) error {
	id, err := NewID()
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO budget_changes (id, tenant_id, time, kind, key_id, actor_key_id, eps, delta) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		id, tenantID, s.d.Time(time.Now()), kind, keyID, actor, u.Eps, u.Delta)
	return err
}

// Grant raises the tenant's total.
func (s *Store) Grant(ctx context.Context, tenantID string, add privalytics.Cost, actorKeyID string) (privalytics.BudgetStatus, error) {
	var st privalytics.BudgetStatus
	err := s.tx(ctx, nil, func(tx *sql.Tx) error {
		a, err := s.account(ctx, tx, true, tenantID, "", nil)
		if err != nil {
			return err
		}
		u, err := dp.CheckGrant(add, a.Total)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE tenants SET budget_eps = ?, budget_delta = ? WHERE id = ?`), a.Total.Eps+u.Eps, a.Total.Delta+u.Delta, tenantID); err != nil {
			return err
		}
		if err := s.recordChange(ctx, tx, tenantID, "grant", "", actorKeyID, u); err != nil {
			return err
		}
		st, err = s.status(ctx, tx, tenantID)
		return err
	})
	return st, s.fail("grant", err)
}

// Charges lists a tenant's charges — only keyID's when it is not empty —
// newest first.
func (s *Store) Charges(ctx context.Context, tenantID, keyID string, offset, limit int) ([]privalytics.Charge, error) {
	where, args := `tenant_id = ?`, []any{tenantID}
	if keyID != "" {
		where, args = where+` AND key_id = ?`, append(args, keyID)
	}
	out, err := list(ctx, s.db, s.q(`SELECT id, key_id, time, fingerprint, mechanisms, eps, delta, refunded, rho, periods FROM charges
		WHERE `+where+` ORDER BY time DESC, id DESC LIMIT ? OFFSET ?`), append(args, limit, offset),
		func(r interface{ Scan(...any) error }) (privalytics.Charge, error) {
			c := privalytics.Charge{TenantID: tenantID}
			var u dp.Units
			var periods string
			err := r.Scan(&c.ID, &c.KeyID, timeOf(&c.Time), &c.Fingerprint, &c.Mechanisms, &u.Eps, &u.Delta, &c.Refunded, &u.Rho, &periods)
			c.Cost = u.Cost()
			if periods != "" {
				c.Periods = strings.Split(periods, ",")
			}
			return c, err
		})
	return out, s.fail("charges", err)
}

// BudgetChanges lists grants and allocations, newest first.
func (s *Store) BudgetChanges(ctx context.Context, tenantID string, offset, limit int) ([]privalytics.BudgetChange, error) {
	out, err := list(ctx, s.db, s.q(`SELECT id, time, kind, key_id, actor_key_id, eps, delta FROM budget_changes
		WHERE tenant_id = ? ORDER BY time DESC, `+s.d.ChangeOrder+` DESC LIMIT ? OFFSET ?`), []any{tenantID, limit, offset},
		func(r interface{ Scan(...any) error }) (privalytics.BudgetChange, error) {
			c := privalytics.BudgetChange{TenantID: tenantID}
			var u dp.Units
			err := r.Scan(&c.ID, timeOf(&c.Time), &c.Kind, &c.KeyID, &c.ActorKeyID, &u.Eps, &u.Delta)
			c.Amount = u.Cost()
			return c, err
		})
	return out, s.fail("budget changes", err)
}
