package api

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/he/federation"
)

// Federation routes: the server relays the franchise protocol (he/federation)
// and keeps each round's state. Tenant admins create federations and rounds
// and fetch results; locations authenticate with their own credentials
// (pvl_…), issued once at creation, and may touch only their federation.

const (
	maxFederationJSON   = 2 << 20  // a creation body carries the franchisor's public key
	maxFederationBinary = 16 << 20 // the largest share: N−1 sealed Shamir shares at N = 64
)

const locationKey = "privalytics.location"

type locationCaller struct {
	fed   string
	index int
}

// authFederation accepts a location credential or, failing that, a tenant key.
func (s *Server) authFederation(c *gin.Context) {
	token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if ok && strings.HasPrefix(strings.TrimSpace(token), federation.LocationTokenPrefix) {
		fed, idx, err := s.feds.Authenticate(strings.TrimSpace(token))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.Set(locationKey, locationCaller{fed: fed, index: idx})
		c.Next()
		return
	}
	s.authenticate(c)
}

func locationOf(c *gin.Context) (locationCaller, bool) {
	v, ok := c.Get(locationKey)
	if !ok {
		return locationCaller{}, false
	}
	return v.(locationCaller), true
}

// fedAdmin returns the caller's tenant when it is a tenant admin key.
func (s *Server) fedAdmin(c *gin.Context) (string, bool) {
	if _, ok := locationOf(c); ok {
		s.writeError(c, privalytics.Errorf(privalytics.EFORBIDDEN, "a location credential cannot do that; use the franchisor's tenant admin key"))
		return "", false
	}
	p := callerOf(c)
	if p.Key.TenantID == "" || p.Key.Role != privalytics.RoleAdmin {
		s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "federations are managed with a tenant admin key"))
		return "", false
	}
	return p.Key.TenantID, true
}

// fedLocation returns the calling location's index in the path's federation.
func (s *Server) fedLocation(c *gin.Context) (int, bool) {
	l, ok := locationOf(c)
	if !ok {
		s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "only a location of the federation can do that; use its pvl_… credential"))
		return 0, false
	}
	if l.fed != c.Param("fed") {
		s.writeError(c, privalytics.Errorf(privalytics.ENOTFOUND, "federation %q not found", c.Param("fed")))
		return 0, false
	}
	return l.index, true
}

// fedMember returns the tenant to check ("" for a location of this federation).
func (s *Server) fedMember(c *gin.Context) (string, bool) {
	if _, ok := locationOf(c); ok {
		_, ok := s.fedLocation(c)
		return "", ok
	}
	return s.fedAdmin(c)
}

func roundParam(c *gin.Context) (int, error) {
	n, err := strconv.Atoi(c.Param("round"))
	if err != nil || n < 1 {
		return 0, privalytics.Errorf(privalytics.EINVALID, "round must be a positive integer, got %q", c.Param("round"))
	}
	return n, nil
}

func (s *Server) readShare(c *gin.Context) ([]byte, error) {
	if err := requireContentType(c, "application/octet-stream"); err != nil {
		return nil, err
	}
	buf, err := readBody(c, maxFederationBinary, maxFederationBinary)
	if err != nil {
		return nil, err
	}
	defer releaseBody(buf)
	return append([]byte(nil), buf.Bytes()...), nil
}

// ShareAccepted answers every share upload.
type ShareAccepted struct {
	Accepted bool `json:"accepted"`
	// Duplicate is true when the same bytes had been accepted before.
	Duplicate bool `json:"duplicate"`
}

func (s *Server) createFederation(c *gin.Context) {
	tenant, ok := s.fedAdmin(c)
	if !ok {
		return
	}
	var req federation.CreateRequest
	if err := decodeJSON(c, maxFederationJSON, &req); err != nil {
		s.writeError(c, err)
		return
	}
	out, err := s.feds.Create(tenant, req)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, out)
}

func (s *Server) getFederation(c *gin.Context) {
	tenant, ok := s.fedMember(c)
	if !ok {
		return
	}
	v, err := s.feds.Get(c.Param("fed"), tenant)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// locationUpload handles a location's binary share for one slot.
func (s *Server) locationUpload(accept func(fed string, loc int, c *gin.Context, body []byte) (bool, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		loc, ok := s.fedLocation(c)
		if !ok {
			return
		}
		body, err := s.readShare(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		dup, err := accept(c.Param("fed"), loc, c, body)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, ShareAccepted{Accepted: true, Duplicate: dup})
	}
}

func withRound(f func(fed string, loc, n int, body []byte) (bool, error)) func(string, int, *gin.Context, []byte) (bool, error) {
	return func(fed string, loc int, c *gin.Context, body []byte) (bool, error) {
		n, err := roundParam(c)
		if err != nil {
			return false, err
		}
		return f(fed, loc, n, body)
	}
}

func (s *Server) shamirInbox(c *gin.Context) {
	loc, ok := s.fedLocation(c)
	if !ok {
		return
	}
	b, err := s.feds.Inbox(c.Param("fed"), loc)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/octet-stream", b)
}

func (s *Server) collectiveKey(c *gin.Context) {
	tenant, ok := s.fedMember(c)
	if !ok {
		return
	}
	b, err := s.feds.PublicKey(c.Param("fed"), tenant)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/octet-stream", b)
}

func (s *Server) franchisorKey(c *gin.Context) {
	if _, ok := s.fedLocation(c); !ok {
		return
	}
	b, err := s.feds.FranchisorKey(c.Param("fed"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/octet-stream", b)
}

func (s *Server) createRound(c *gin.Context) {
	tenant, ok := s.fedAdmin(c)
	if !ok {
		return
	}
	var req federation.RoundRequest
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		s.writeError(c, err)
		return
	}
	// A round releases a DP aggregate: its (ε, δ) is charged to the
	// franchisor's budget before the round exists, and refunded if it cannot
	// be created (nothing has been released then).
	ctx := c.Request.Context()
	st, err := s.tenantState(ctx, tenant)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if st.tenant.Accounting == privalytics.AccountingZCDP || st.tenant.Period != "" {
		s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "federated rounds are charged in (ε, δ) to a whole-lifetime budget; this tenant accounts in zCDP or per data period, which rounds do not support yet"))
		return
	}
	q := req.Query
	if !(q.Epsilon > 0) || math.IsInf(q.Epsilon, 0) || !(q.Delta > 0) || q.Delta >= 1 {
		// Not chargeable; CreateRound refuses it with the full list of problems.
		_, err := s.feds.CreateRound(c.Param("fed"), tenant, req)
		if err == nil {
			err = privalytics.Errorf(privalytics.EINTERNAL, "a round with ε = %v, δ = %v was accepted", q.Epsilon, q.Delta)
		}
		s.writeError(c, err)
		return
	}
	charge := &privalytics.Charge{TenantID: tenant, KeyID: callerOf(c).Key.ID, Time: s.now().UTC(), Fingerprint: "federation:" + c.Param("fed"),
		Mechanisms: "distributed gaussian (federated round)", Cost: privalytics.Cost{Epsilon: q.Epsilon, Delta: q.Delta}}
	if _, err := s.meta.Charge(ctx, charge); err != nil {
		s.writeError(c, err)
		return
	}
	v, err := s.feds.CreateRound(c.Param("fed"), tenant, req)
	if err != nil {
		if rerr := s.meta.Refund(context.WithoutCancel(ctx), tenant, charge.ID); rerr != nil {
			s.log.Error("refund after a failed round", "charge", charge.ID, "err", rerr)
		}
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, v)
}

func (s *Server) getRound(c *gin.Context) {
	tenant, ok := s.fedMember(c)
	if !ok {
		return
	}
	n, err := roundParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	v, err := s.feds.Round(c.Param("fed"), tenant, n)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) roundReady(c *gin.Context) {
	loc, ok := s.fedLocation(c)
	if !ok {
		return
	}
	n, err := roundParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	v, err := s.feds.Ready(c.Param("fed"), loc, n)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) roundAggregate(c *gin.Context) {
	loc, ok := s.fedLocation(c)
	if !ok {
		return
	}
	n, err := roundParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	b, err := s.feds.Aggregate(c.Param("fed"), loc, n)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/octet-stream", b)
}

func (s *Server) roundResult(c *gin.Context) {
	tenant, ok := s.fedAdmin(c)
	if !ok {
		return
	}
	n, err := roundParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	b, _, err := s.feds.Result(c.Param("fed"), tenant, n)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/octet-stream", b)
}

func (s *Server) federationRoutes(r *gin.Engine) {
	g := r.Group("/v1/federations", s.authFederation)
	g.POST("", s.createFederation)
	g.GET("/:fed", s.getFederation)
	g.POST("/:fed/key-shares", s.locationUpload(func(fed string, loc int, _ *gin.Context, b []byte) (bool, error) {
		return s.feds.PostKeyShare(fed, loc, b)
	}))
	g.POST("/:fed/shamir-shares", s.locationUpload(func(fed string, loc int, _ *gin.Context, b []byte) (bool, error) {
		return s.feds.PostSealed(fed, loc, b)
	}))
	g.GET("/:fed/shamir-shares", s.shamirInbox)
	g.GET("/:fed/public-key", s.collectiveKey)
	g.GET("/:fed/franchisor-key", s.franchisorKey)
	g.POST("/:fed/rounds", s.createRound)
	g.GET("/:fed/rounds/:round", s.getRound)
	g.POST("/:fed/rounds/:round/contributions", s.locationUpload(withRound(s.feds.Contribute)))
	g.POST("/:fed/rounds/:round/ready", s.roundReady)
	g.GET("/:fed/rounds/:round/aggregate", s.roundAggregate)
	g.POST("/:fed/rounds/:round/decryption-shares", s.locationUpload(withRound(s.feds.PostDecryptionShare)))
	g.GET("/:fed/rounds/:round/result", s.roundResult)
}
