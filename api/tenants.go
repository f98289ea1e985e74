package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
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

// The bodies of the tenant and key routes, defined once in api/wire.
type (
	CreateTenantRequest  = wire.CreateTenantRequest
	CreateTenantResponse = wire.CreateTenantResponse
	IssuedKey            = wire.IssuedKey
	CreateKeyRequest     = wire.CreateKeyRequest
)

// createTenant creates a tenant and its first admin key (operator key only).
func (s *Server) createTenant(c *gin.Context) (reply, error) {
	if !callerOf(c).operator() {
		return reply{}, s.denied(c, privalytics.Errorf(privalytics.EFORBIDDEN, "only the operator key (printed at the server's first start) creates tenants"))
	}
	var req wire.CreateTenantRequest
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		return reply{}, err
	}
	t, err := s.newTenant(req)
	if err != nil {
		return reply{}, err
	}
	err = s.meta.CreateTenant(c.Request.Context(), t)
	_ = s.auditFor(c, t.ID, auditTenantCreate, t.ID, err, map[string]string{"epsilon": fmtFloat(t.Budget.Epsilon), "delta": fmtFloat(t.Budget.Delta), "purposes": strings.Join(t.Purposes, ",")})
	if err != nil {
		return reply{}, err
	}
	key, err := s.issueKey(c.Request.Context(), t.ID, "admin", privalytics.RoleAdmin)
	if err != nil {
		return reply{}, err
	}
	_ = s.auditFor(c, t.ID, auditKeyIssue, key.ID, nil, map[string]string{"role": string(key.Role), "name": key.Name})
	return created(wire.CreateTenantResponse{Tenant: wireTenant(t), AdminKey: key}), nil
}

// newTenant is the tenant a request asks for, with the defaults filled in,
// checked, and with a new data key wrapped under the master key.
func (s *Server) newTenant(req wire.CreateTenantRequest) (*privalytics.Tenant, error) {
	// New tenants budget each month of data unless they ask for one budget
	// ("lifetime") or zCDP accounting, which does not combine with periods.
	period := req.Period
	switch {
	case period == "lifetime":
		period = ""
	case period == "" && req.Accounting != privalytics.AccountingZCDP:
		period = privalytics.PeriodMonth
	}
	t := &privalytics.Tenant{ID: req.ID, Name: req.Name, Budget: rootCost(req.Budget), Purposes: req.Purposes, Period: period,
		Accounting: req.Accounting, RetentionDays: req.RetentionDays, CreatedAt: s.now().UTC(), Schema: privalytics.DefaultRetailSchema()}
	if req.Schema != nil {
		t.Schema = rootSchema(*req.Schema)
	}
	if t.Name == "" {
		t.Name = t.ID
	}
	if req.Privacy != nil {
		t.Privacy = rootPolicy(*req.Privacy)
	}
	t.FillPrivacyDefaults()
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if t.Accounting == privalytics.AccountingZCDP {
		// Half of δ converts ρ back to ε; the other half is for approximate parts.
		t.Budget.Rho = dp.RhoForEpsilon(t.Budget.Epsilon, t.Budget.Delta/2)
	}
	dataKey, err := keyring.NewDataKey()
	if err != nil {
		return nil, err
	}
	t.WrappedKey, err = s.wrap.Wrap(dataKey, []byte("tenant:"+t.ID))
	return t, err
}

// getTenant shows a tenant to the operator or to that tenant's admin. Anyone else
// gets 404, so a key of one tenant cannot learn which other tenants exist.
// listTenants is the operator's view of every business on the server: what a
// support request or a migration starts from.
func (s *Server) listTenants(c *gin.Context) (reply, error) {
	if !callerOf(c).operator() {
		return reply{}, s.denied(c, privalytics.Errorf(privalytics.EFORBIDDEN, "only the operator key lists tenants; a tenant key reads its own tenant at GET /v1/tenant"))
	}
	tenants, err := s.meta.Tenants(c.Request.Context())
	if err != nil {
		return reply{}, err
	}
	out := wire.TenantList{Tenants: make([]wire.Tenant, len(tenants))}
	for i, t := range tenants {
		out.Tenants[i] = *wireTenant(t)
	}
	return ok(out), nil
}

func (s *Server) getTenant(c *gin.Context) (reply, error) {
	p, id := callerOf(c), c.Param("tenant")
	if !p.operator() && (p.Key.TenantID != id || p.Key.Role != privalytics.RoleAdmin) {
		return reply{}, s.denied(c, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", id))
	}
	t, err := s.meta.Tenant(c.Request.Context(), id)
	if err != nil {
		return reply{}, err
	}
	return ok(wireTenant(t)), nil
}

func (s *Server) ownTenant(c *gin.Context) (reply, error) {
	st, err := s.tenantState(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		return reply{}, err
	}
	return ok(wireTenant(st.tenant)), nil
}

func (s *Server) createKey(c *gin.Context) (reply, error) {
	var req wire.CreateKeyRequest
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		return reply{}, err
	}
	role := privalytics.Role(req.Role)
	if !role.Valid() || role == privalytics.RoleShare {
		if role == privalytics.RoleShare {
			return reply{}, privalytics.Errorf(privalytics.EINVALID, "a share key belongs to one dashboard: create it with POST /v1/dashboards/{id}/share")
		}
		return reply{}, privalytics.Errorf(privalytics.EINVALID, "role must be admin, ingest, query, processor or track, got %q", req.Role)
	}
	name, err := keyName(role, req.Name)
	if err != nil {
		return reply{}, err
	}
	req.Name = name
	k, err := s.issueKey(c.Request.Context(), callerOf(c).Key.TenantID, req.Name, privalytics.Role(req.Role))
	target := ""
	if k != nil {
		target = k.ID
	}
	_ = s.audit(c, auditKeyIssue, target, err, map[string]string{"role": string(req.Role), "name": req.Name})
	return created(k), err
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
	return &wire.IssuedKey{APIKey: wireKey(k), Token: token}, nil
}

func (s *Server) listKeys(c *gin.Context) (reply, error) {
	keys, err := s.meta.Keys(c.Request.Context(), callerOf(c).Key.TenantID)
	out := wire.KeyList{Keys: make([]wire.APIKey, len(keys))}
	for i, k := range keys {
		out.Keys[i] = wireKey(*k)
	}
	return ok(out), err
}

func (s *Server) revokeKey(c *gin.Context) (reply, error) {
	id := c.Param("id")
	err := s.meta.RevokeKey(c.Request.Context(), callerOf(c).Key.TenantID, id, s.now().UTC())
	_ = s.audit(c, auditKeyRevoke, id, err, nil)
	if err != nil {
		return reply{}, err
	}
	s.keys.evict(id)
	return noContent(), nil
}

// fmtFloat formats a number for audit details: shortest exact form.
func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// setPrivacy replaces the tenant's privacy policy (admin): the consent policy
// per purpose, the stray personal data policy and the processors. Purposes
// left out of the consent map get the defaults. The change applies to every
// request after the answer on this server; answers cached under the old
// policy are not served again (the consent version moves). Other servers
// sharing a PostgreSQL database pick it up when they restart.
func (s *Server) setPrivacy(c *gin.Context) (reply, error) {
	var req wire.PrivacyPolicy
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		return reply{}, err
	}
	ctx, id := c.Request.Context(), callerOf(c).Key.TenantID
	cur, err := s.meta.Tenant(ctx, id)
	if err != nil {
		return reply{}, err
	}
	t := *cur
	t.Privacy = rootPolicy(req)
	t.FillPrivacyDefaults()
	if err := t.Validate(); err != nil {
		return reply{}, err
	}
	details := map[string]string{"stray_data": t.Privacy.StrayData, "processors": strconv.Itoa(len(t.Privacy.Processors))}
	for p, pol := range t.Privacy.Consent {
		details["consent."+p] = pol
	}
	_, err = s.meta.SetPrivacy(ctx, id, t.Privacy)
	_ = s.audit(c, auditPrivacy, id, err, details)
	if err != nil {
		return reply{}, err
	}
	s.tenants.Delete(id)
	return ok(wireTenant(&t)), nil
}

// keyName checks a new key's name: 1 to 64 characters, except for a track
// key, whose name is the origins it accepts (api/track.go).
func keyName(role privalytics.Role, name string) (string, error) {
	if role != privalytics.RoleTrack {
		if name = strings.TrimSpace(name); name == "" || len(name) > 64 {
			return "", privalytics.Errorf(privalytics.EINVALID, "name must be 1 to 64 characters")
		}
		return name, nil
	}
	origins, err := TrackOrigins(name)
	if err != nil {
		return "", err
	}
	if joined := strings.Join(origins, " "); len(joined) <= 512 {
		return joined, nil
	}
	return "", privalytics.Errorf(privalytics.EINVALID, "a track key lists at most 512 characters of origins")
}
