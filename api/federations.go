package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
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

// The federation's callers: a tenant admin of the franchisor, or a location
// of the path's federation. These run before the handlers and deny (audited)
// anyone else.

// fedAdmin lets through a tenant admin key.
func (s *Server) fedAdmin(c *gin.Context) {
	if _, ok := locationOf(c); ok {
		s.writeError(c, privalytics.Errorf(privalytics.EFORBIDDEN, "a location credential cannot do that; use the franchisor's tenant admin key"))
		c.Abort()
		return
	}
	p := callerOf(c)
	if p.Key.TenantID == "" || p.Key.Role != privalytics.RoleAdmin {
		s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "federations are managed with a tenant admin key"))
		c.Abort()
		return
	}
	c.Next()
}

// fedLocation lets through a location of the path's federation.
func (s *Server) fedLocation(c *gin.Context) {
	l, ok := locationOf(c)
	if !ok {
		s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "only a location of the federation can do that; use its pvl_… credential"))
		c.Abort()
		return
	}
	if l.fed != c.Param("fed") {
		s.writeError(c, privalytics.Errorf(privalytics.ENOTFOUND, "federation %q not found", c.Param("fed")))
		c.Abort()
		return
	}
	c.Next()
}

// fedMember lets through either.
func (s *Server) fedMember(c *gin.Context) {
	if _, ok := locationOf(c); ok {
		s.fedLocation(c)
		return
	}
	s.fedAdmin(c)
}

// fedTenant is the tenant to check access against: "" for a location (the
// middleware has checked it belongs to the federation).
func fedTenant(c *gin.Context) string {
	if _, ok := locationOf(c); ok {
		return ""
	}
	return callerOf(c).Key.TenantID
}

func fedIndex(c *gin.Context) int {
	l, _ := locationOf(c)
	return l.index
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
type ShareAccepted = wire.ShareAccepted

func (s *Server) createFederation(c *gin.Context) (reply, error) {
	var req wire.CreateFederationRequest
	if err := decodeJSON(c, maxFederationJSON, &req); err != nil {
		return reply{}, err
	}
	out, err := s.feds.Create(callerOf(c).Key.TenantID, req)
	if err != nil {
		return reply{}, err
	}
	c.Header("Cache-Control", "no-store") // the location tokens are shown once
	return created(out), nil
}

func (s *Server) getFederation(c *gin.Context) (reply, error) {
	v, err := s.feds.Get(c.Param("fed"), fedTenant(c))
	return ok(v), err
}

// upload handles a location's binary share; round is 0 outside a round.
func (s *Server) upload(accept func(fed string, loc, round int, body []byte) (bool, error), inRound bool) apiFunc {
	return func(c *gin.Context) (reply, error) {
		n := 0
		if inRound {
			var err error
			if n, err = roundParam(c); err != nil {
				return reply{}, err
			}
		}
		body, err := s.readShare(c)
		if err != nil {
			return reply{}, err
		}
		dup, err := accept(c.Param("fed"), fedIndex(c), n, body)
		if err != nil {
			return reply{}, err
		}
		return ok(wire.ShareAccepted{Accepted: true, Duplicate: dup}), nil
	}
}

// binary answers with the bytes f returns (keys, shares, ciphertexts).
func (s *Server) binary(f func(c *gin.Context) ([]byte, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		b, err := f(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.Data(http.StatusOK, "application/octet-stream", b)
	}
}

// createRound publishes a round. A round releases a DP aggregate: its (ε, δ)
// is charged to the franchisor's budget before the round exists. The query is
// checked first (public information only, nothing charged); the charge is
// refunded only if the round then cannot be created, when no location has
// been asked for anything and nothing can have been released.
func (s *Server) createRound(c *gin.Context) (reply, error) {
	tenant := callerOf(c).Key.TenantID
	var req wire.RoundRequest
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		return reply{}, err
	}
	if err := s.feds.CheckRound(c.Param("fed"), tenant, req); err != nil {
		return reply{}, err
	}
	ctx := c.Request.Context()
	st, err := s.tenantState(ctx, tenant)
	if err != nil {
		return reply{}, err
	}
	if st.tenant.Accounting == privalytics.AccountingZCDP || st.tenant.Period != "" {
		return reply{}, privalytics.Errorf(privalytics.EINVALID, "federated rounds are charged in (ε, δ) to a whole-lifetime budget; this tenant accounts in zCDP or per data period, which rounds do not support yet")
	}
	charge := &privalytics.Charge{TenantID: tenant, KeyID: callerOf(c).Key.ID, Time: s.now().UTC(), Fingerprint: "federation:" + c.Param("fed"),
		Mechanisms: "distributed gaussian (federated round)", Cost: privalytics.Cost{Epsilon: req.Query.Epsilon, Delta: req.Query.Delta}}
	if _, err := s.meta.Charge(ctx, charge); err != nil {
		return reply{}, err
	}
	v, err := s.feds.CreateRound(c.Param("fed"), tenant, req)
	if err != nil {
		if rerr := s.meta.Refund(context.WithoutCancel(ctx), tenant, charge.ID); rerr != nil {
			s.log.Error("refund after a failed round", "charge", charge.ID, "err", rerr)
		}
		return reply{}, err
	}
	return created(v), nil
}

func (s *Server) getRound(c *gin.Context) (reply, error) {
	n, err := roundParam(c)
	if err != nil {
		return reply{}, err
	}
	v, err := s.feds.Round(c.Param("fed"), fedTenant(c), n)
	return ok(v), err
}

func (s *Server) roundReady(c *gin.Context) (reply, error) {
	n, err := roundParam(c)
	if err != nil {
		return reply{}, err
	}
	v, err := s.feds.Ready(c.Param("fed"), fedIndex(c), n)
	return ok(v), err
}

func (s *Server) federationRoutes(r *gin.Engine) {
	g := r.Group("/v1/federations", s.authFederation)
	admin, loc, member := s.fedAdmin, s.fedLocation, s.fedMember
	g.POST("", admin, s.handle(s.createFederation))
	g.GET("/:fed", member, s.handle(s.getFederation))
	g.POST("/:fed/key-shares", loc, s.handle(s.upload(func(fed string, l, _ int, b []byte) (bool, error) { return s.feds.PostKeyShare(fed, l, b) }, false)))
	g.POST("/:fed/shamir-shares", loc, s.handle(s.upload(func(fed string, l, _ int, b []byte) (bool, error) { return s.feds.PostSealed(fed, l, b) }, false)))
	g.GET("/:fed/shamir-shares", loc, s.binary(func(c *gin.Context) ([]byte, error) { return s.feds.Inbox(c.Param("fed"), fedIndex(c)) }))
	g.GET("/:fed/public-key", member, s.binary(func(c *gin.Context) ([]byte, error) { return s.feds.PublicKey(c.Param("fed"), fedTenant(c)) }))
	g.GET("/:fed/franchisor-key", loc, s.binary(func(c *gin.Context) ([]byte, error) { return s.feds.FranchisorKey(c.Param("fed")) }))
	g.POST("/:fed/rounds", admin, s.handle(s.createRound))
	g.GET("/:fed/rounds/:round", member, s.handle(s.getRound))
	g.POST("/:fed/rounds/:round/contributions", loc, s.handle(s.upload(s.feds.Contribute, true)))
	g.POST("/:fed/rounds/:round/ready", loc, s.handle(s.roundReady))
	g.GET("/:fed/rounds/:round/aggregate", loc, s.binary(func(c *gin.Context) ([]byte, error) {
		n, err := roundParam(c)
		if err != nil {
			return nil, err
		}
		return s.feds.Aggregate(c.Param("fed"), fedIndex(c), n)
	}))
	g.POST("/:fed/rounds/:round/decryption-shares", loc, s.handle(s.upload(s.feds.PostDecryptionShare, true)))
	g.GET("/:fed/rounds/:round/result", admin, s.binary(func(c *gin.Context) ([]byte, error) {
		n, err := roundParam(c)
		if err != nil {
			return nil, err
		}
		b, _, err := s.feds.Result(c.Param("fed"), callerOf(c).Key.TenantID, n)
		return b, err
	}))
}
