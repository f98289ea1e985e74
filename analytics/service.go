package analytics

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// The ports of the query use case, defined here where they are consumed; the
// API and the stores satisfy them, tests use fakes.

// Ledger is the part of the privacy ledger a query needs.
type Ledger interface {
	// Budget returns the tenant's status. ENOTFOUND if no such tenant.
	Budget(ctx context.Context, tenantID string) (privalytics.BudgetStatus, error)
	// KeyBudget returns what one key may spend.
	KeyBudget(ctx context.Context, tenantID, keyID string) (privalytics.KeyBudget, error)
	// Charge records c atomically with the budget check, filling c.ID; EBUDGET
	// (nothing recorded) when it does not fit.
	Charge(ctx context.Context, c *privalytics.Charge) (privalytics.BudgetStatus, error)
	// Reserved returns what the tenant's views other than exceptViewID reserve
	// of each of periods (privalytics.Ledger.Reserved).
	Reserved(ctx context.Context, tenantID, exceptViewID string, periods []string) (map[string]privalytics.Cost, error)
}

// Snapshots gives a tenant's current events (privalytics.EventStore).
type Snapshots interface {
	Snapshot(ctx context.Context, tenantID string, schema privalytics.Schema) (*privalytics.Snapshot, error)
}

// Consent says which customers a query for a purpose may not see.
type Consent interface {
	// ConsentVersion goes up with every consent change of the tenant; it keys
	// cached answers, so a withdrawal is never answered from the cache.
	ConsentVersion(ctx context.Context, tenantID string) (int64, error)
	// Hidden returns, by dense subject number of snap, the customers whose
	// consent does not cover purpose (nil: none), and the consent version it
	// reflects.
	Hidden(ctx context.Context, tenant *privalytics.Tenant, purpose string, snap *privalytics.Snapshot) ([]bool, int64, error)
}

// AnswerCache keeps released answers; returning one again is post-processing
// and costs nothing. *Cache satisfies it.
type AnswerCache interface {
	Get(key string) (*privalytics.Result, bool)
	Put(key string, res *privalytics.Result)
}

// AuditLog appends entries to the tamper-evident audit trail
// (privalytics.AuditLog satisfies it); an error means the entry is not in it.
type AuditLog interface {
	Append(ctx context.Context, e *privalytics.AuditEntry) error
}

// AuditActionQuery is the audit action of a query, answered or refused: the
// budget charge and the query are one entry.
const AuditActionQuery = "query.run"

// ServiceDeps are the Service's ports and settings.
type ServiceDeps struct {
	Ledger  Ledger
	Events  Snapshots
	Consent Consent
	// Mechanisms add the noise: dp.Secure() in the product, dptest.NoNoise() in
	// exactness tests.
	Mechanisms dp.Mechanisms
	Cache      AnswerCache // nil: NewCache(4096)
	Audit      AuditLog    // nil: nothing recorded
	Limits     Limits
	// Timeout stops a query's execution; the stopped query is charged (it has
	// read data). 0: 30 s.
	Timeout time.Duration
	Now     func() time.Time
	// Engines run queries that name them ("engine": "beam") elsewhere; the
	// Service charges before it submits the job. RemoteTimeout stops such a
	// job (charged); 0: 1 h.
	Engines       map[string]RemoteEngine
	RemoteTimeout time.Duration
}

// Service is the query use case, the one home of its privacy rules:
//
//		plan → snapshot → cache → pre-check → consent mask → execute → charge → release → audit
//
//	  - A refusal before execution costs nothing and is decided from public
//	    information only: the query, the schema and the tenant's settings and
//	    budget — never from the data.
//	  - A cached answer is returned before the budget pre-check: repeating an
//	    answered query is free even when the budget is spent.
//	  - Once execution has started, the query is charged whatever happens (time
//	    limit, too many data-derived groups, an internal error); nothing is
//	    ever refunded. Every mechanism's parameters were checked by NewPlan, so
//	    release cannot fail on them.
//	  - The ledger is charged before anything derived from the data leaves:
//	    release runs only after the charge, and an answer whose audit entry
//	    cannot be written is not returned (the charge stays).
type Service struct {
	ledger  Ledger
	events  Snapshots
	consent Consent
	mech    dp.Mechanisms
	cache   AnswerCache
	audit   AuditLog
	limits  Limits
	timeout time.Duration
	now     func() time.Time
	engines map[string]RemoteEngine
	remote  time.Duration
}

// NewService returns the query service over its ports.
func NewService(d ServiceDeps) *Service {
	s := &Service{ledger: d.Ledger, events: d.Events, consent: d.Consent, mech: d.Mechanisms, cache: d.Cache, audit: d.Audit, limits: d.Limits, timeout: d.Timeout, now: d.Now, engines: d.Engines, remote: d.RemoteTimeout}
	if s.remote <= 0 {
		s.remote = time.Hour
	}
	if s.cache == nil {
		s.cache = NewCache(4096)
	}
	if s.limits.MaxGroups <= 0 {
		s.limits = DefaultLimits()
	}
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Request is one query of one API key.
type Request struct {
	Tenant *privalytics.Tenant
	KeyID  string
	Query  *privalytics.Query
	// FingerprintKey is the tenant's secret that keys query fingerprints
	// (HMAC): at least 16 bytes.
	FingerprintKey []byte
	// RequestID goes into the audit entry, to match it with logs.
	RequestID string
	// ViewID is set when the query is a view's release: its charge draws on
	// the view's own reservation instead of stopping at the views' line.
	// ViewBucket and ViewKind name the pending release it pays for.
	ViewID, ViewBucket, ViewKind string
}

// queryRecord is what the audit trail keeps of a query: no filter values, no
// group keys — the keyed fingerprint of the canonical query identifies it.
type queryRecord struct {
	purpose, fingerprint, mechanisms, chargeID, answerID string
	cost                                                 privalytics.Cost
	snapshot                                             uint64
	consent                                              int64
	cached                                               bool
}

func (r *queryRecord) details() map[string]string {
	d := map[string]string{}
	if r.fingerprint != "" {
		d["fingerprint"] = r.fingerprint
		d["mechanisms"] = r.mechanisms
		d["epsilon"] = fmtFloat(r.cost.Epsilon)
		d["delta"] = fmtFloat(r.cost.Delta)
	}
	if r.cost.Rho > 0 {
		d["rho"] = fmtFloat(r.cost.Rho)
	}
	if r.chargeID != "" {
		d["charge_id"] = r.chargeID
	}
	if r.answerID != "" {
		d["answer_id"] = r.answerID
	}
	if r.snapshot != 0 {
		d["snapshot"] = strconv.FormatUint(r.snapshot, 10)
	}
	if r.consent != 0 {
		d["consent_version"] = strconv.FormatInt(r.consent, 10)
	}
	if r.cached {
		d["cached"] = "true"
		d["epsilon"], d["delta"] = "0", "0"
		delete(d, "rho")
	}
	return d
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// Run answers one query (see Service for the order and its rules). Every query,
// answered or refused, is audited.
func (s *Service) Run(ctx context.Context, r Request) (*privalytics.Result, error) {
	var rec queryRecord
	res, cacheKey, err := s.run(ctx, r, &rec)
	if err != nil {
		_ = s.record(ctx, r, &rec, err)
		return nil, err
	}
	if err := s.record(ctx, r, &rec, nil); err != nil {
		// The answer is withheld; the charge stays — the data has been read.
		return nil, err
	}
	if !res.Cached {
		s.cache.Put(cacheKey, res)
	}
	return res, nil
}

// record appends the query's audit entry, even when the client has gone away.
func (s *Service) record(ctx context.Context, r Request, rec *queryRecord, outcome error) error {
	if s.audit == nil {
		return nil
	}
	e := &privalytics.AuditEntry{Time: s.now().UTC(), Actor: r.KeyID, Action: AuditActionQuery, Target: rec.purpose, Outcome: privalytics.AuditOK, Details: rec.details()}
	if r.Tenant != nil {
		e.TenantID = r.Tenant.ID
	}
	if outcome != nil {
		e.Outcome = privalytics.ErrorCode(outcome)
	}
	e.Details["request_id"] = r.RequestID
	if err := s.audit.Append(context.WithoutCancel(ctx), e); err != nil {
		return privalytics.Errorf(privalytics.EINTERNAL, "audit: %v", err)
	}
	return nil
}

func (s *Service) run(ctx context.Context, r Request, rec *queryRecord) (*privalytics.Result, string, error) {
	t := r.Tenant
	plan, err := s.plan(r)
	if err != nil {
		return nil, "", err
	}
	fp := plan.Fingerprint(r.FingerprintKey)
	rec.purpose, rec.fingerprint, rec.mechanisms = plan.Purpose(), fp, plan.Mechanisms()
	cost := plan.Cost()
	zcdp := t.Accounting == privalytics.AccountingZCDP
	if zcdp {
		cost = plan.ZCDPCost()
	}
	rec.cost = cost
	var periods []string
	if !zcdp && t.Period == privalytics.PeriodMonth {
		if periods = plan.Months(); len(periods) == 0 {
			return nil, "", invalid("this tenant budgets each month of data separately, so a query must say which months it reads: add a time filter on %s with both ends (gte and lt)", t.Schema.Time)
		}
	}

	snap, err := s.events.Snapshot(ctx, t.ID, t.Schema)
	if err != nil {
		return nil, "", err
	}
	rec.snapshot = snap.Version
	version, err := s.consent.ConsentVersion(ctx, t.ID)
	if err != nil {
		return nil, "", err
	}
	if res, ok := s.cache.Get(CacheKey(t.ID, fp, snap.Version, version)); ok {
		status, err := s.ledger.Budget(ctx, t.ID)
		if err != nil {
			return nil, "", err
		}
		rec.cached, rec.consent, rec.answerID = true, version, res.Snapshot
		PresentBudget(&status)
		res.Budget = &status
		return res, "", nil
	}

	// The pre-check: cheap, against the status now; the binding check is the
	// ledger's, atomic with the charge.
	status, err := s.ledger.Budget(ctx, t.ID)
	if err != nil {
		return nil, "", err
	}
	kb, err := s.ledger.KeyBudget(ctx, t.ID, r.KeyID)
	if err != nil {
		return nil, "", err
	}
	// What the views reserve of the months read: an ad-hoc query stops at it.
	var reserved map[string]privalytics.Cost
	if len(periods) > 0 {
		if reserved, err = s.ledger.Reserved(ctx, t.ID, r.ViewID, periods); err != nil {
			return nil, "", err
		}
	}
	// The same policy (dp.Decide) the ledger applies, with the same words.
	if err := dp.PreCheckReserved(status, kb, cost, periods, reserved); err != nil {
		return nil, "", err
	}
	hidden, version, err := s.consent.Hidden(ctx, t, plan.Purpose(), snap)
	if err != nil {
		return nil, "", err
	}
	rec.consent = version
	cacheKey := CacheKey(t.ID, fp, snap.Version, version)
	if plan.Engine() != "" {
		res, err := s.runRemote(ctx, r, plan, snap, hidden, cost, periods, rec)
		return res, cacheKey, err
	}

	// From here on the data is read: whatever happens, the query is charged.
	execCtx, cancel := context.WithTimeout(ctx, s.timeout)
	resolved, err := plan.ResolveBounds(execCtx, snap, hidden, s.mech)
	var part *Partial
	if err == nil {
		part, err = ExecuteHiding(execCtx, resolved, snap, hidden)
	}
	cancel()
	charge := &privalytics.Charge{TenantID: t.ID, KeyID: r.KeyID, Time: s.now().UTC(), Fingerprint: fp, Mechanisms: plan.Mechanisms(), Cost: cost, Periods: periods,
		ViewID: r.ViewID, ViewBucket: r.ViewBucket, ViewKind: r.ViewKind}
	status, cerr := s.ledger.Charge(context.WithoutCancel(ctx), charge)
	if cerr != nil {
		return nil, "", cerr // EBUDGET: nothing recorded, nothing released
	}
	rec.chargeID = charge.ID
	if err != nil {
		return nil, "", s.executionError(err)
	}
	res, err := release(resolved, part, s.mech)
	if err != nil {
		// NewPlan validated every mechanism, so this is a bug, not the data:
		// internal, and the charge stays.
		return nil, "", privalytics.Errorf(privalytics.EINTERNAL, "analytics: release after charge %s: %v", charge.ID, err)
	}
	res.Cost = cost
	res.Snapshot = newAnswerID()
	rec.answerID = res.Snapshot
	PresentBudget(&status)
	res.Budget = &status
	return res, cacheKey, nil
}

// runRemote runs a planned query on a remote engine: the ledger is charged
// before the job is submitted, so a failed or cancelled job stays charged.
func (s *Service) runRemote(ctx context.Context, r Request, plan *Plan, snap *privalytics.Snapshot, hidden []bool, cost privalytics.Cost, periods []string, rec *queryRecord) (*privalytics.Result, error) {
	t := r.Tenant
	charge := &privalytics.Charge{TenantID: t.ID, KeyID: r.KeyID, Time: s.now().UTC(), Fingerprint: rec.fingerprint, Mechanisms: plan.Mechanisms(), Cost: cost, Periods: periods}
	status, err := s.ledger.Charge(context.WithoutCancel(ctx), charge)
	if err != nil {
		return nil, err // EBUDGET: nothing recorded, nothing submitted
	}
	rec.chargeID = charge.ID
	jobCtx, cancel := context.WithTimeout(ctx, s.remote)
	cells, err := s.engines[plan.Engine()].Run(jobCtx, RemoteJob{TenantID: t.ID, Spec: plan.Remote(), Snapshot: snap, Hidden: hidden})
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, invalid("the %s job ran longer than %s and was stopped; it was charged, because it had read data", plan.Engine(), s.remote)
		}
		return nil, s.executionError(err)
	}
	res, err := releaseRemote(plan, cells)
	if err != nil {
		return nil, err
	}
	res.Cost = cost
	res.Snapshot = newAnswerID()
	rec.answerID = res.Snapshot
	PresentBudget(&status)
	res.Budget = &status
	return res, nil
}

// executionError is what a caller learns of an execution that failed after
// reading data: it has been charged, and the message says so.
func (s *Service) executionError(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return invalid("the query ran longer than %s and was stopped; it was charged, because it had read data. Narrow the time range or filters, or use fewer groups", s.timeout)
	case errors.Is(err, context.Canceled):
		return privalytics.Errorf(privalytics.EUNAVAILABLE, "the query was cancelled; it was charged, because it had read data")
	case privalytics.ErrorCode(err) == privalytics.EINVALID:
		return invalid("%s; the query was charged, because it had read data", privalytics.ErrorMessage(err))
	}
	return err
}

// Explain answers what a query would cost and how precise it would be, from the
// plan alone: no data is read and nothing is spent.
func (s *Service) Explain(ctx context.Context, r Request) (*Explanation, error) {
	plan, err := s.plan(r)
	if err != nil {
		return nil, err
	}
	ex, err := plan.Explain(s.mech)
	if err != nil {
		return nil, err
	}
	status, err := s.ledger.Budget(ctx, r.Tenant.ID)
	if err != nil {
		return nil, err
	}
	if r.Tenant.Accounting == privalytics.AccountingZCDP {
		ex.Cost = plan.ZCDPCost()
	}
	PresentBudget(&status)
	ex.Budget = &status
	return ex, nil
}

// plan validates the request's query against the tenant: public information only.
func (s *Service) plan(r Request) (*Plan, error) {
	if len(r.FingerprintKey) < 16 {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: the tenant's fingerprint key is missing")
	}
	plan, err := NewPlan(r.Query, r.Tenant.Schema, s.limits)
	if err != nil {
		return nil, err
	}
	if e := plan.Engine(); e != "" && s.engines[e] == nil {
		return nil, invalid("query: engine %q is not configured on this server; leave engine out, or start the server with it (for beam: --beam-binary)", e)
	}
	if !slices.Contains(r.Tenant.Purposes, plan.Purpose()) {
		return nil, invalid("purpose %q is not declared by this tenant; declared: %s (a query without one serves %q)", plan.Purpose(), strings.Join(r.Tenant.Purposes, ", "), privalytics.DefaultPurpose)
	}
	return plan, nil
}

// newAnswerID is an opaque, random identifier of one released answer: it lets
// a caller tell answers apart and quote one, and tells nothing of the data or
// of when it changed (the snapshot version is not shown to query keys).
func newAnswerID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("analytics: no randomness for an answer id: %v", err))
	}
	return "ans_" + hex.EncodeToString(b[:])
}

// PresentBudget fills the ε figures of a zCDP tenant's status with conversions
// of ρ at half the δ budget, so every tenant can be read in ε: spent is
// ε(ρ spent), and remaining is the total less that.
func PresentBudget(st *privalytics.BudgetStatus) {
	if st.Accounting != privalytics.AccountingZCDP || st.Total.Delta <= 0 {
		return
	}
	st.Spent.Epsilon = dp.EpsilonOfRho(st.Spent.Rho, st.Total.Delta/2)
	st.Remaining.Epsilon = math.Max(0, st.Total.Epsilon-st.Spent.Epsilon)
}
