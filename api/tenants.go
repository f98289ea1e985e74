package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/ingest"
	"github.com/privalytics/privalytics/store/keyring"
)

// tenantState is what a tenant's requests need at hand: the tenant and its
// converter, which holds the unwrapped pseudonymisation key. Tenants are immutable
// after creation, so the state is built once per process.
type tenantState struct {
	tenant *privalytics.Tenant
	conv   *ingest.Converter
	pseudo *ingest.Pseudonymiser // the same keyed hash ingest stores, for consent, access and erasure
	// fingerprintKey keys the tenant's query fingerprints (HMAC), derived from
	// its secret key so that fingerprints are stable across restarts.
	fingerprintKey []byte
}

func (s *Server) tenantState(ctx context.Context, id string) (*tenantState, error) {
	if v, ok := s.tenants.Load(id); ok {
		return v.(*tenantState), nil
	}
	t, err := s.meta.Tenant(ctx, id)
	if err != nil {
		return nil, err
	}
	key, err := s.wrap.Unwrap(t.WrappedKey, []byte("tenant:"+t.ID))
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "unwrap key of tenant %s: %v", t.ID, err)
	}
	p, err := ingest.NewPseudonymiser(key)
	if err != nil {
		return nil, err
	}
	conv, err := ingest.NewConverter(t.Schema, p, s.limits.Ingest)
	if err != nil {
		return nil, err
	}
	if err := conv.SetStrayData(t.Privacy.StrayData); err != nil {
		return nil, err
	}
	fk := hmac.New(sha256.New, key)
	fk.Write([]byte("privalytics query fingerprint v1"))
	st := &tenantState{tenant: t, conv: conv, pseudo: p, fingerprintKey: fk.Sum(nil)}
	v, _ := s.tenants.LoadOrStore(id, st)
	return v.(*tenantState), nil
}

// CreateTenantRequest is the body of POST /v1/tenants.
type CreateTenantRequest struct {
	ID       string              `json:"id"`
	Name     string              `json:"name"`
	Schema   *privalytics.Schema `json:"schema,omitempty"`   // default: the retail schema
	Budget   privalytics.Cost    `json:"budget"`             // total (ε, δ) over the data's lifetime
	Purposes []string            `json:"purposes,omitempty"` // default: ["analytics"]
	Period   string              `json:"period,omitempty"`   // "month": each month of data has its own budget
	// Accounting "zcdp" composes answers in ρ (zero-concentrated DP), much
	// tighter for many Gaussian answers; default basic composition.
	Accounting string `json:"accounting,omitempty"`
	// Privacy declares the consent policy per purpose (default: opt-out for
	// analytics, opt-in for every other purpose), what to do with stray
	// personal data in free text (reject, the default, or redact), and the
	// processors named in the privacy notice.
	Privacy *privalytics.PrivacyPolicy `json:"privacy,omitempty"`
	// RetentionDays, when > 0, purges events older than that many days
	// automatically; 0 keeps them until erased.
	RetentionDays int `json:"retention_days,omitempty"`
}

// CreateTenantResponse returns the tenant and its first admin key, shown once.
type CreateTenantResponse struct {
	Tenant   *privalytics.Tenant `json:"tenant"`
	AdminKey *IssuedKey          `json:"admin_key"`
}

// IssuedKey is a new API key with its secret token, shown only in this response.
type IssuedKey struct {
	privalytics.APIKey
	Token string `json:"token"`
}

func (s *Server) createTenant(c *gin.Context) {
	if !callerOf(c).operator() {
		s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "only the operator key (printed at the server's first start) creates tenants"))
		return
	}
	var req CreateTenantRequest
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		s.writeError(c, err)
		return
	}
	t := &privalytics.Tenant{ID: req.ID, Name: req.Name, Budget: req.Budget, Purposes: req.Purposes, Period: req.Period, Accounting: req.Accounting, RetentionDays: req.RetentionDays, CreatedAt: s.now().UTC()}
	if req.Schema != nil {
		t.Schema = *req.Schema
	} else {
		t.Schema = privalytics.DefaultRetailSchema()
	}
	if t.Name == "" {
		t.Name = t.ID
	}
	if req.Privacy != nil {
		t.Privacy = *req.Privacy
	}
	t.FillPrivacyDefaults()
	if err := t.Validate(); err != nil {
		s.writeError(c, err)
		return
	}
	if t.Accounting == privalytics.AccountingZCDP {
		// Half of δ converts ρ back to ε; the other half is for approximate parts.
		t.Budget.Rho = dp.RhoForEpsilon(t.Budget.Epsilon, t.Budget.Delta/2)
	}
	dataKey, err := keyring.NewDataKey()
	if err != nil {
		s.writeError(c, err)
		return
	}
	if t.WrappedKey, err = s.wrap.Wrap(dataKey, []byte("tenant:"+t.ID)); err != nil {
		s.writeError(c, err)
		return
	}
	err = s.meta.CreateTenant(c.Request.Context(), t)
	_ = s.auditFor(c, t.ID, auditTenantCreate, t.ID, err, map[string]string{"epsilon": fmtFloat(t.Budget.Epsilon), "delta": fmtFloat(t.Budget.Delta), "purposes": strings.Join(t.Purposes, ",")})
	if err != nil {
		s.writeError(c, err)
		return
	}
	key, err := s.issueKey(c.Request.Context(), t.ID, "admin", privalytics.RoleAdmin)
	if err != nil {
		s.writeError(c, err)
		return
	}
	_ = s.auditFor(c, t.ID, auditKeyIssue, key.ID, nil, map[string]string{"role": string(key.Role), "name": key.Name})
	c.JSON(http.StatusCreated, CreateTenantResponse{Tenant: t, AdminKey: key})
}

// getTenant shows a tenant to the operator or to that tenant's admin. Anyone else
// gets 404, so a key of one tenant cannot learn which other tenants exist.
func (s *Server) getTenant(c *gin.Context) {
	p, id := callerOf(c), c.Param("tenant")
	if !p.operator() && (p.Key.TenantID != id || p.Key.Role != privalytics.RoleAdmin) {
		s.deny(c, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", id))
		return
	}
	t, err := s.meta.Tenant(c.Request.Context(), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

func (s *Server) ownTenant(c *gin.Context) {
	st, err := s.tenantState(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, st.tenant)
}

// CreateKeyRequest is the body of POST /v1/keys.
type CreateKeyRequest struct {
	Name string           `json:"name"`
	Role privalytics.Role `json:"role"`
}

func (s *Server) createKey(c *gin.Context) {
	var req CreateKeyRequest
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if !req.Role.Valid() {
		s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "role must be admin, ingest, query or processor, got %q", req.Role))
		return
	}
	if req.Name = strings.TrimSpace(req.Name); req.Name == "" || len(req.Name) > 64 {
		s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "name must be 1 to 64 characters"))
		return
	}
	k, err := s.issueKey(c.Request.Context(), callerOf(c).Key.TenantID, req.Name, req.Role)
	target := ""
	if k != nil {
		target = k.ID
	}
	_ = s.audit(c, auditKeyIssue, target, err, map[string]string{"role": string(req.Role), "name": req.Name})
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, k)
}

// IssueKey creates a key for the tenant ("" for an operator key) and returns it
// with its token. cmd/privalytics uses it for the operator key at first start.
func (s *Server) IssueKey(ctx context.Context, tenantID, name string, role privalytics.Role) (*IssuedKey, error) {
	return s.issueKey(ctx, tenantID, name, role)
}

func (s *Server) issueKey(ctx context.Context, tenantID, name string, role privalytics.Role) (*IssuedKey, error) {
	id, token, hash, err := keyring.NewAPIKeyToken()
	if err != nil {
		return nil, err
	}
	k := privalytics.APIKey{ID: id, TenantID: tenantID, Name: name, Role: role, Hash: hash, CreatedAt: s.now().UTC()}
	if err := s.meta.CreateKey(ctx, &k); err != nil {
		return nil, err
	}
	return &IssuedKey{APIKey: k, Token: token}, nil
}

func (s *Server) listKeys(c *gin.Context) {
	keys, err := s.meta.Keys(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"keys": keys})
}

func (s *Server) revokeKey(c *gin.Context) {
	id := c.Param("id")
	err := s.meta.RevokeKey(c.Request.Context(), callerOf(c).Key.TenantID, id, s.now().UTC())
	_ = s.audit(c, auditKeyRevoke, id, err, nil)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.keys.evict(id)
	c.Status(http.StatusNoContent)
}

// fmtFloat formats a number for audit details: shortest exact form.
func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// setPrivacy replaces the tenant's privacy policy (admin): the consent policy
// per purpose, the stray personal data policy and the processors. Purposes
// left out of the consent map get the defaults. The change applies to every
// request after the answer on this server; answers cached under the old
// policy are not served again (the consent version moves). Other servers
// sharing a PostgreSQL database pick it up when they restart.
func (s *Server) setPrivacy(c *gin.Context) {
	var req privalytics.PrivacyPolicy
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		s.writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	id := callerOf(c).Key.TenantID
	cur, err := s.meta.Tenant(ctx, id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	t := *cur
	t.Privacy = req
	t.FillPrivacyDefaults()
	if err := t.Validate(); err != nil {
		s.writeError(c, err)
		return
	}
	details := map[string]string{"stray_data": t.Privacy.StrayData, "processors": strconv.Itoa(len(t.Privacy.Processors))}
	for p, pol := range t.Privacy.Consent {
		details["consent."+p] = pol
	}
	_, err = s.meta.SetPrivacy(ctx, id, t.Privacy)
	_ = s.audit(c, auditPrivacy, id, err, details)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.tenants.Delete(id)
	c.JSON(http.StatusOK, t)
}
