package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/analytics/dpsql"
	"github.com/privalytics/privalytics/dp"
)

// runQuery answers a DP query. The order is the privacy model's: plan (bad queries
// cost nothing), a cheap budget pre-check, exact execution inside the process, then
// the ledger is charged atomically, and only then is noise added and the answer
// released. If release fails after the charge, nothing left the process and the
// charge is refunded. Every query, answered or not, is audited with its cost; an
// answer whose audit entry cannot be written is not released (and is refunded).
func (s *Server) runQuery(c *gin.Context) {
	res, qa, err := s.answer(c)
	details := qa.details()
	if err != nil {
		_ = s.audit(c, auditQuery, qa.purpose, err, details)
		s.metrics.queries.WithLabelValues(callerOf(c).Key.TenantID, "refused").Inc()
		s.writeError(c, err)
		return
	}
	if aerr := s.audit(c, auditQuery, qa.purpose, nil, details); aerr != nil {
		if qa.chargeID != "" {
			if rerr := s.meta.Refund(context.WithoutCancel(c.Request.Context()), callerOf(c).Key.TenantID, qa.chargeID); rerr != nil {
				s.log.Error("refund after failed audit", "charge", qa.chargeID, "err", rerr)
			}
		}
		s.writeError(c, aerr)
		return
	}
	tenant := callerOf(c).Key.TenantID
	if res.Cached {
		s.metrics.queries.WithLabelValues(tenant, "cached").Inc()
	} else {
		s.cache.Put(qa.cacheKey, res)
		s.metrics.queries.WithLabelValues(tenant, "answered").Inc()
		s.metrics.epsilon.WithLabelValues(tenant).Add(res.Cost.Epsilon)
	}
	c.JSON(http.StatusOK, res)
}

// queryAudit is what the audit trail records of a query: no filter values, no
// group keys — the fingerprint of the canonical query identifies it.
type queryAudit struct {
	purpose, fingerprint, mechanisms, chargeID, cacheKey string
	cost                                                 privalytics.Cost
	snapshot                                             uint64
	consent                                              int64
	cached                                               bool
}

func (qa *queryAudit) details() map[string]string {
	d := map[string]string{}
	if qa.fingerprint != "" {
		d["fingerprint"] = qa.fingerprint
		d["mechanisms"] = qa.mechanisms
		d["epsilon"] = fmtFloat(qa.cost.Epsilon)
		d["delta"] = fmtFloat(qa.cost.Delta)
	}
	if qa.cost.Rho > 0 {
		d["rho"] = fmtFloat(qa.cost.Rho)
	}
	if qa.chargeID != "" {
		d["charge_id"] = qa.chargeID
	}
	if qa.snapshot != 0 {
		d["snapshot"] = strconv.FormatUint(qa.snapshot, 10)
	}
	if qa.consent != 0 {
		d["consent_version"] = strconv.FormatInt(qa.consent, 10)
	}
	if qa.cached {
		d["cached"] = "true"
		d["epsilon"], d["delta"] = "0", "0"
	}
	return d
}

// answer plans, executes, charges and releases one query; the caller audits
// and, once audited, caches and sends the result.
func (s *Server) answer(c *gin.Context) (*privalytics.Result, queryAudit, error) {
	var qa queryAudit
	ctx := c.Request.Context()
	key := callerOf(c).Key
	st, plan, err := s.plan(c)
	if plan != nil {
		qa.purpose, qa.fingerprint, qa.mechanisms = plan.Purpose(), plan.Fingerprint(), plan.Mechanisms()
	}
	if err != nil {
		return nil, qa, err
	}
	cost := plan.Cost()
	qa.cost = cost
	status, err := s.meta.Budget(ctx, st.tenant.ID)
	if err != nil {
		return nil, qa, err
	}
	var periods []string
	if st.tenant.Accounting == privalytics.AccountingZCDP {
		cost = plan.ZCDPCost()
		qa.cost = cost
		if cost.Rho > status.Remaining.Rho || cost.Delta > status.Remaining.Delta {
			return nil, qa, budgetError(status.Remaining, cost)
		}
	} else if st.tenant.Period == privalytics.PeriodMonth {
		if periods = plan.Months(); len(periods) == 0 {
			return nil, qa, privalytics.Errorf(privalytics.EINVALID, "this tenant budgets each month of data separately, so a query must say which months it reads: add a time filter on %s with both ends (gte and lt)", st.tenant.Schema.Time)
		}
	} else {
		// A cheap pre-check against what this key may spend, before any work;
		// the binding check is the ledger's, atomic with the charge.
		kb, err := s.meta.KeyBudget(ctx, st.tenant.ID, key.ID)
		if err != nil {
			return nil, qa, err
		}
		if cost.Epsilon > kb.Remaining.Epsilon || cost.Delta > kb.Remaining.Delta {
			return nil, qa, budgetError(kb.Remaining, cost)
		}
	}
	snap, err := s.events.Snapshot(ctx, st.tenant.ID, st.tenant.Schema)
	if err != nil {
		return nil, qa, err
	}
	qa.snapshot = snap.Version
	// The query sees only customers whose consent covers its purpose now.
	hidden, consentVersion, err := s.hiddenFor(ctx, st, plan.Purpose(), snap)
	if err != nil {
		return nil, qa, err
	}
	qa.consent = consentVersion
	qa.cacheKey = analytics.CacheKey(st.tenant.ID, plan, snap.Version, consentVersion)
	if res, ok := s.cache.Get(qa.cacheKey); ok {
		qa.cached = true
		present(&status)
		res.Budget = &status
		return res, qa, nil
	}
	execCtx, cancel := context.WithTimeout(ctx, s.limits.QueryTimeout)
	// Automatic bounds draw noise now; like the release's, it leaves the process
	// only after the charge below succeeds.
	plan, err = plan.ResolveBounds(execCtx, snap, hidden, s.mech)
	var part *analytics.Partial
	if err == nil {
		part, err = analytics.ExecuteHiding(execCtx, plan, snap, hidden)
	}
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, qa, privalytics.Errorf(privalytics.EINVALID, "the query ran longer than %s and was stopped; nothing was charged. Narrow the time range or filters, or use fewer groups", s.limits.QueryTimeout)
	} else if err != nil {
		return nil, qa, err
	}

	charge := &privalytics.Charge{TenantID: st.tenant.ID, KeyID: key.ID, Time: s.now().UTC(), Fingerprint: plan.Fingerprint(), Mechanisms: plan.Mechanisms(), Cost: cost, Periods: periods}
	status, err = s.meta.Charge(ctx, charge)
	if err != nil {
		return nil, qa, err
	}
	qa.chargeID = charge.ID
	res, err := analytics.Release(plan, part, s.mech)
	if err != nil {
		// Nothing derived from the charged computation has left the process.
		if rerr := s.meta.Refund(context.WithoutCancel(ctx), st.tenant.ID, charge.ID); rerr != nil {
			s.log.Error("refund after failed release", "charge", charge.ID, "err", rerr)
		}
		qa.chargeID = ""
		return nil, qa, err
	}
	res.Cost = cost
	res.Snapshot = snap.Version
	present(&status)
	res.Budget = &status
	return res, qa, nil
}

// plan decodes and plans the request's query against the caller's tenant.
func (s *Server) plan(c *gin.Context) (*tenantState, *analytics.Plan, error) {
	st, err := s.tenantState(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		return nil, nil, err
	}
	body, err := readBody(c, s.limits.MaxQueryBytes, s.limits.MaxQueryBytes)
	if err != nil {
		return nil, nil, err
	}
	var q *privalytics.Query
	if strings.HasPrefix(c.FullPath(), "/v1/sql") {
		q, err = sqlQuery(c.ContentType(), body.Bytes(), st.tenant.Schema)
	} else {
		q, err = analytics.DecodeQuery(body.Bytes())
	}
	releaseBody(body)
	if err != nil {
		return nil, nil, err
	}
	plan, err := analytics.NewPlan(q, st.tenant.Schema, s.limits.Query)
	if err == nil && !slices.Contains(st.tenant.Purposes, plan.Purpose()) {
		err = privalytics.Errorf(privalytics.EINVALID, "purpose %q is not declared by this tenant; declared: %s (a query without one serves %q)", plan.Purpose(), strings.Join(st.tenant.Purposes, ", "), privalytics.DefaultPurpose)
	}
	return st, plan, err
}

// explainQuery answers what a query would cost and how precise it would be,
// without reading data or spending budget.
func (s *Server) explainQuery(c *gin.Context) {
	st, plan, err := s.plan(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ex, err := plan.Explain(s.mech)
	if err != nil {
		s.writeError(c, err)
		return
	}
	status, err := s.meta.Budget(c.Request.Context(), st.tenant.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if st.tenant.Accounting == privalytics.AccountingZCDP {
		ex.Cost = plan.ZCDPCost()
	}
	present(&status)
	ex.Budget = &status
	c.JSON(http.StatusOK, ex)
}

// present fills the ε figures of a zCDP tenant's status with conversions of ρ at
// half the δ budget, so every tenant can be read in ε: spent is ε(ρ spent), and
// remaining is the total less that.
func present(st *privalytics.BudgetStatus) {
	if st.Accounting != privalytics.AccountingZCDP || st.Total.Delta <= 0 {
		return
	}
	st.Spent.Epsilon = dp.EpsilonOfRho(st.Spent.Rho, st.Total.Delta/2)
	st.Remaining.Epsilon = math.Max(0, st.Total.Epsilon-st.Spent.Epsilon)
}

// budgetError says what is left and what the query needed.
func budgetError(remaining, needed privalytics.Cost) error {
	if needed.Rho > 0 && remaining.Rho > 0 || needed.Rho > remaining.Rho {
		return privalytics.Errorf(privalytics.EBUDGET,
			"privacy budget exhausted: the query needs ρ=%g, δ=%g but ρ=%g, δ=%g remain; ask the tenant admin for more budget or spend less ε",
			needed.Rho, needed.Delta, remaining.Rho, remaining.Delta).With("remaining", remaining).With("needed", needed)
	}
	return privalytics.Errorf(privalytics.EBUDGET,
		"privacy budget exhausted: the query needs ε=%g, δ=%g but ε=%g, δ=%g remain; ask the tenant admin for more budget or spend less ε",
		needed.Epsilon, needed.Delta, remaining.Epsilon, remaining.Delta).
		With("remaining", remaining).With("needed", needed)
}

// sqlQuery reads the body of POST /v1/sql: the SQL text as text/plain (or
// application/sql), or {"sql": "…"} as application/json.
func sqlQuery(contentType string, body []byte, schema privalytics.Schema) (*privalytics.Query, error) {
	text := string(body)
	if contentType == "application/json" {
		var req struct {
			SQL string `json:"sql"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.SQL == "" {
			return nil, privalytics.Errorf(privalytics.EINVALID, `send the SQL as text/plain, or as JSON {"sql": "SELECT WITH DIFFERENTIAL_PRIVACY …"}`)
		}
		text = req.SQL
	}
	return dpsql.Parse(text, schema)
}
