package api

import (
	"context"
	"log/slog"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

// Audit actions. Every route that changes something or reads data records one.
const (
	auditTenantCreate = "tenant.create"
	auditKeyIssue     = "key.issue"
	auditKeyRevoke    = "key.revoke"
	auditKeyBudget    = "key.budget"
	auditBudgetGrant  = "budget.grant"
	auditQuery        = "query.run" // with its cost and charge: the budget charge and the query are one entry
	auditConsent      = "consent.record"
	auditConsentRead  = "consent.read" // an admin looked at one customer's consent history
	auditPrivacy      = "tenant.privacy"
	auditDenied       = "access.denied" // a role or tenant refused (403/404), or a revoked or forged key of a tenant (401)
	auditRetention    = "tenant.retention"
	auditKeyRotate    = "tenant.data_key.rotate"
	auditShred        = "tenant.shred"
	auditPurge        = "retention.purge" // by the server's retention pass (actor "retention")
	auditErase        = "subject.erase"   // with the receipt ID and row count, never the customer
	auditRectify      = "subject.rectify"

	auditViewCreate      = "view.create"
	auditViewDelete      = "view.delete"
	auditDashboardCreate = "dashboard.create"
	auditDashboardDelete = "dashboard.delete"
	auditShareCreate     = "dashboard.share"
	auditShareRevoke     = "dashboard.share.revoke"
)

// audit records one action of the request's caller on the caller's tenant. err
// is the action's outcome (nil: "ok"). Details must hold no personal data.
// It returns the append error so that a route that must not act unaudited
// (queries) can fail closed; other routes may ignore it — it is logged here.
func (s *Server) audit(c *gin.Context, action, target string, err error, details map[string]string) error {
	tenant := ""
	if p, ok := c.Get(principalKey); ok {
		tenant = p.(principal).Key.TenantID
	}
	return s.auditFor(c, tenant, action, target, err, details)
}

// auditFor is audit for an action on a given tenant (the operator creating one).
func (s *Server) auditFor(c *gin.Context, tenantID, action, target string, err error, details map[string]string) error {
	if s.auditLog == nil {
		return nil
	}
	e := &privalytics.AuditEntry{Time: s.now().UTC(), TenantID: tenantID, Action: action, Target: target, Outcome: privalytics.AuditOK, Details: details}
	if p, ok := c.Get(principalKey); ok {
		e.Actor = p.(principal).Key.ID
	}
	if err != nil {
		e.Outcome = privalytics.ErrorCode(err)
	}
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	e.Details["request_id"] = requestID(c)
	// The entry must be written even when the client has gone away.
	if aerr := s.auditLog.Append(context.WithoutCancel(c.Request.Context()), e); aerr != nil {
		s.log.Error("audit append failed", slog.String("request_id", requestID(c)), slog.String("action", action), slog.Any("err", aerr))
		return privalytics.Errorf(privalytics.EINTERNAL, "audit: %v", aerr)
	}
	return nil
}

// deny writes a 403 (or the 404 that hides another tenant's things) and
// records the denial.
func (s *Server) deny(c *gin.Context, err error) {
	s.writeError(c, s.denied(c, err))
}

// denied records a refusal and returns it, for handlers behind s.handle.
func (s *Server) denied(c *gin.Context, err error) error {
	route := c.Request.Method + " " + c.FullPath()
	details := map[string]string{}
	if p, ok := c.Get(principalKey); ok {
		details["role"] = string(p.(principal).Key.Role)
	}
	_ = s.audit(c, auditDenied, route, err, details)
	return err
}

// AuditPage is the body of GET /v1/audit, defined once in api/wire.
type AuditPage = wire.AuditPage

// auditEntries pages through the tenant's audit trail, newest first (admin).
func (s *Server) auditEntries(c *gin.Context) (reply, error) {
	offset, limit, err := s.page(c)
	if err != nil {
		return reply{}, err
	}
	if s.auditLog == nil {
		return reply{}, privalytics.Errorf(privalytics.EUNAVAILABLE, "this server runs without an audit log")
	}
	list, err := s.auditLog.Entries(c.Request.Context(), callerOf(c).Key.TenantID, offset, limit)
	return ok(wire.AuditPage{Entries: wireAudit(list), Offset: offset, Limit: limit}), err
}
