package api

import (
	"crypto/subtle"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/keyring"
)

// principal is the authenticated caller of a request.
type principal struct {
	Key *privalytics.APIKey
}

// operator reports whether the caller is the server operator (an admin key of no tenant).
func (p principal) operator() bool {
	return p.Key.TenantID == "" && p.Key.Role == privalytics.RoleAdmin
}

// keyCache keeps recently verified keys so that a busy ingest client does not hit
// the metadata store on every batch. Revocations through this server evict at once;
// entries expire after keyCacheTTL so a revocation made by another process
// sharing the database takes effect within that time.
type keyCache struct {
	mu sync.Mutex
	m  map[string]cachedKey
}

type cachedKey struct {
	key     *privalytics.APIKey
	expires time.Time
}

const keyCacheTTL = 10 * time.Second

func (kc *keyCache) get(id string, now time.Time) *privalytics.APIKey {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if e, ok := kc.m[id]; ok && now.Before(e.expires) {
		return e.key
	}
	return nil
}

func (kc *keyCache) put(k *privalytics.APIKey, now time.Time) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if kc.m == nil || len(kc.m) > 10_000 {
		kc.m = make(map[string]cachedKey)
	}
	kc.m[k.ID] = cachedKey{key: k, expires: now.Add(keyCacheTTL)}
}

// clear drops every cached key (after a change that revoked several).
func (kc *keyCache) clear() {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	kc.m = nil
}

func (kc *keyCache) evict(id string) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	delete(kc.m, id)
}

var errUnauthorized = privalytics.Errorf(privalytics.EUNAUTHORIZED, "send a valid API key as 'Authorization: Bearer pvk_…'")

// authenticate resolves the bearer token to a key, or aborts with 401, then
// applies the key's rate limit (429 with Retry-After).
func (s *Server) authenticate(c *gin.Context) {
	now := s.now()
	k, err := s.keyOf(c, now)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Set(principalKey, principal{Key: k})
	if ok, retry := s.rate.allow(k.ID, now); !ok {
		secs := max(1, int(math.Ceil(retry.Seconds())))
		c.Header("Retry-After", strconv.Itoa(secs))
		s.writeError(c, privalytics.Errorf(privalytics.ERATELIMIT, "this key sent more than %g requests a second (bursts of %g); retry after %d s, or batch more events per request", s.rate.rate, s.rate.burst, secs))
		return
	}
	c.Next()
}

// keyOf is the live key whose token the request carries; errUnauthorized
// for none, an unknown, forged or revoked one.
func (s *Server) keyOf(c *gin.Context, now time.Time) (*privalytics.APIKey, error) {
	token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	id, parsed := keyring.ParseAPIKeyToken(token)
	if !ok || !parsed {
		return nil, errUnauthorized
	}
	k := s.keys.get(id, now)
	if k == nil {
		var err error
		if k, err = s.meta.Key(c.Request.Context(), id); privalytics.ErrorCode(err) == privalytics.ENOTFOUND {
			return nil, errUnauthorized
		} else if err != nil {
			return nil, err
		}
		s.keys.put(k, now)
	}
	if subtle.ConstantTimeCompare(k.Hash, keyring.HashAPIKeyToken(token)) != 1 || k.RevokedAt != nil {
		// The key ID is real, so the attempt belongs to a tenant's trail: a
		// revoked key still in use, or a forged token for a known ID. Tokens
		// naming no key are not recorded (anyone can send them, without limit).
		reason := "wrong secret"
		if k.RevokedAt != nil {
			reason = "revoked key"
		}
		_ = s.auditFor(c, k.TenantID, auditDenied, c.Request.Method+" "+c.FullPath(), errUnauthorized, map[string]string{"key_id": k.ID, "reason": reason})
		return nil, errUnauthorized
	}
	return k, nil
}

const principalKey = "privalytics.principal"

func callerOf(c *gin.Context) principal {
	p, _ := c.Get(principalKey)
	return p.(principal)
}

// require aborts unless the caller is a tenant key with one of the roles; every
// denial is audited.
// Operator keys are not tenant keys: they manage tenants, nothing else.
func (s *Server) require(roles ...privalytics.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := callerOf(c)
		if p.Key.TenantID == "" {
			s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "the operator key manages tenants only; use a key issued for a tenant"))
			return
		}
		for _, r := range roles {
			if p.Key.Role == r {
				c.Next()
				return
			}
		}
		s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "this %s key cannot do that; it needs a key with role %s", p.Key.Role, joinRoles(roles)))
	}
}

func joinRoles(roles []privalytics.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}
