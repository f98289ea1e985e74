package api

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/rights"
)

// PrivacyHooks receive a record of each erasure, rectification and retention
// purge once it is done (rights.Hooks; the name is kept for api's callers).
type PrivacyHooks = rights.Hooks

// SubjectExport, RectifyRequest and RetentionRequest are the bodies of the
// subject routes, defined once in api/wire.
type (
	SubjectExport    = wire.SubjectExport
	RectifyRequest   = wire.RectifyRequest
	RetentionRequest = wire.RetentionRequest
)

// actor is the caller as the rights service records it in the audit trail.
func actor(c *gin.Context) rights.Actor {
	return rights.Actor{KeyID: callerOf(c).Key.ID, RequestID: requestID(c)}
}

// subjectOf resolves the caller's tenant and the customer the route names.
func (s *Server) subjectOf(c *gin.Context) (rights.Subject, *tenantState, error) {
	k := callerOf(c).Key
	if k.TenantID == "" {
		return rights.Subject{}, nil, privalytics.Errorf(privalytics.EFORBIDDEN, "use the tenant's admin key: the operator key holds no customer data")
	}
	id := c.Param("customer_id")
	if err := rights.CheckCustomerID(id); err != nil {
		return rights.Subject{}, nil, err
	}
	if s.rights == nil {
		return rights.Subject{}, nil, privalytics.Errorf(privalytics.EINTERNAL, "the event store does not support access and erasure")
	}
	st, err := s.tenantState(c.Request.Context(), k.TenantID)
	if err != nil {
		return rights.Subject{}, nil, err
	}
	return rights.Subject{Tenant: st.tenant, CustomerID: id, Pseudonym: st.pseudo.Subject([]byte(id))}, st, nil
}

// exportFormat is "json" (default) or "csv" (?format=csv or Accept: text/csv).
func exportFormat(c *gin.Context) (string, error) {
	switch f := c.Query("format"); {
	case f == "" && strings.Contains(c.GetHeader("Accept"), "text/csv"):
		return "csv", nil
	case f == "":
		return "json", nil
	case f != "json" && f != "csv":
		return "", privalytics.Errorf(privalytics.EINVALID, "format must be json or csv, got %q", f)
	default:
		return f, nil
	}
}

// exportSubject returns everything held about one customer, as JSON or CSV.
func (s *Server) exportSubject(c *gin.Context) {
	sub, _, err := s.subjectOf(c)
	var format string
	if err == nil {
		format, err = exportFormat(c)
	}
	var exp *rights.Export
	if err == nil {
		exp, err = s.rights.Export(c.Request.Context(), actor(c), sub)
	}
	var buf bytes.Buffer
	if err == nil && format == "csv" {
		err = exp.WriteCSV(&buf)
	}
	switch {
	case err != nil:
		s.writeError(c, err)
	case format == "json":
		c.JSON(http.StatusOK, wire.SubjectExport(*exp))
	default:
		c.Header("Content-Disposition", `attachment; filename="customer-export.csv"`)
		c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
	}
}

// rectifySubject corrects fields on every event of one customer.
func (s *Server) rectifySubject(c *gin.Context) (reply, error) {
	sub, st, err := s.subjectOf(c)
	if err != nil {
		return reply{}, err
	}
	var req wire.RectifyRequest
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		return reply{}, err
	}
	rc, err := s.rights.Rectify(c.Request.Context(), actor(c), sub, st.conv, req.Fields)
	return ok(wire.ErasureReceipt(rc)), err
}

// eraseSubject erases one customer: 202 with the receipt, whose status says
// when compaction has removed the events from disk (GET /v1/erasures/{id}).
func (s *Server) eraseSubject(c *gin.Context) (reply, error) {
	sub, _, err := s.subjectOf(c)
	if err != nil {
		return reply{}, err
	}
	rc, err := s.rights.Erase(c.Request.Context(), actor(c), sub)
	if err != nil {
		return reply{}, err
	}
	c.Header("Location", "/v1/erasures/"+rc.ID)
	return accepted(wire.ErasureReceipt(rc)), nil
}

// callerTenant is the tenant of the caller's key. The operator key names no
// tenant: that is a recorded denial.
func (s *Server) callerTenant(c *gin.Context) (*tenantState, error) {
	k := callerOf(c).Key
	if k.TenantID == "" {
		return nil, s.denied(c, privalytics.Errorf(privalytics.EFORBIDDEN, "use the tenant's admin key"))
	}
	return s.tenantState(c.Request.Context(), k.TenantID)
}

func (s *Server) erasureReceipt(c *gin.Context) (reply, error) {
	st, err := s.callerTenant(c)
	if err != nil {
		return reply{}, err
	}
	if s.rights == nil {
		return reply{}, privalytics.Errorf(privalytics.EINTERNAL, "the event store does not support access and erasure")
	}
	rc, err := s.rights.Receipt(c.Request.Context(), st.tenant, c.Param("id"))
	return ok(wire.ErasureReceipt(rc)), err
}

// setRetention changes the caller's tenant's retention period; the next
// retention pass purges what it no longer allows.
func (s *Server) setRetention(c *gin.Context) (reply, error) {
	st, err := s.callerTenant(c)
	if err != nil {
		return reply{}, err
	}
	var req wire.RetentionRequest
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		return reply{}, err
	}
	if err := s.rights.SetRetention(c.Request.Context(), actor(c), st.tenant.ID, req.RetentionDays); err != nil {
		return reply{}, err
	}
	s.tenants.Delete(st.tenant.ID) // the cached tenant is stale now
	t, err := s.meta.Tenant(c.Request.Context(), st.tenant.ID)
	return ok(t), err
}

func (s *Server) encryptedStore() (privalytics.EncryptedStore, error) {
	es, ok := s.events.(privalytics.EncryptedStore)
	if !ok {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "the event store does not encrypt at rest")
	}
	return es, nil
}

// rotateDataKey gives the caller's tenant a new data key; ingest goes on, and
// files under the old key are re-encrypted in the background.
func (s *Server) rotateDataKey(c *gin.Context) (reply, error) {
	st, err := s.callerTenant(c)
	if err != nil {
		return reply{}, err
	}
	es, err := s.encryptedStore()
	if err != nil {
		return reply{}, err
	}
	err = es.RotateKey(c.Request.Context(), st.tenant.ID, st.tenant.Schema)
	_ = s.audit(c, auditKeyRotate, st.tenant.ID, err, nil)
	if err != nil {
		return reply{}, err
	}
	s.log.Info("tenant data key rotated", slog.String("tenant", st.tenant.ID))
	return ok(wire.DataKeyRotated{Rotated: true}), nil
}

// shredTenant crypto-shreds a tenant's events (operator key only): its data
// keys are destroyed, so no copy of its event files can be read again.
func (s *Server) shredTenant(c *gin.Context) (reply, error) {
	if !callerOf(c).operator() {
		return reply{}, s.denied(c, privalytics.Errorf(privalytics.EFORBIDDEN, "only the operator key shreds a tenant's events"))
	}
	es, err := s.encryptedStore()
	if err != nil {
		return reply{}, err
	}
	t, err := s.meta.Tenant(c.Request.Context(), c.Param("tenant"))
	if err != nil {
		return reply{}, err
	}
	err = es.Shred(c.Request.Context(), t.ID)
	_ = s.auditFor(c, t.ID, auditShred, t.ID, err, nil)
	if err != nil {
		return reply{}, err
	}
	s.log.Warn("tenant events crypto-shredded", slog.String("tenant", t.ID))
	return noContent(), nil
}

// PurgeExpired runs one retention purge at now (rights.Service.PurgeExpired);
// tests and operators' tools call it between the loop's passes.
func (s *Server) PurgeExpired(ctx context.Context, now time.Time) ([]privalytics.PurgeReceipt, error) {
	if s.rights == nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "the event store does not support retention")
	}
	return s.rights.PurgeExpired(ctx, now)
}

// Rights is the service behind the subject and retention routes; the binary
// starts its retention loop and closes it before the stores.
func (s *Server) Rights() *rights.Service { return s.rights }
