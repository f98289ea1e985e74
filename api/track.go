package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	_ "embed"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/keyring"
)

// The tracking endpoint takes single events from a shop's web pages: the
// snippet (/track.js) sends each event as its own request, with a publishable
// key of role "track". Such a key is in the page for anyone to read, so it can
// do one thing only, send events to /v1/track, and only from the origins listed
// in it (the key's name holds them, space-separated: a key attribute without a
// store change). Browsers send the Origin header and cannot forge it; other
// clients can, so each key and each origin is also rate limited.
//
// Every request is durable before its 204: concurrent requests of a tenant are
// appended as one batch with one fsync (group commit), so throughput follows
// the number of senders, not the disk's fsync rate.

//go:embed track/track.js
var trackScript []byte

// TrackLimits bound the tracking endpoint.
type TrackLimits struct {
	MaxEventBytes  int64   // one event's body; default 8 KiB
	PerKeyRate     float64 // requests a second per key; default 50,000
	PerKeyBurst    int     // default 100,000
	PerOriginRate  float64 // requests a second per origin; default 50,000
	PerOriginBurst int     // default 100,000
}

// DefaultTrackLimits are sized for a busy shop on one server: the per-key rate
// is above the 20,000 requests a second one server stores, so a limit is hit
// by abuse, not by traffic.
func DefaultTrackLimits() TrackLimits {
	return TrackLimits{MaxEventBytes: 8 << 10, PerKeyRate: 50_000, PerKeyBurst: 100_000, PerOriginRate: 50_000, PerOriginBurst: 100_000}
}

// tracker serves /v1/track and the snippet, /track.js.
type tracker struct {
	s         *Server
	limits    TrackLimits
	perKey    *rateLimiter
	perOrigin *rateLimiter

	mu      sync.Mutex
	commits map[string]*groupCommit // tenant ID → its group commit
}

func newTracker(s *Server, lim TrackLimits) *tracker {
	def := DefaultTrackLimits()
	if lim.MaxEventBytes <= 0 {
		lim.MaxEventBytes = def.MaxEventBytes
	}
	if lim.PerKeyRate <= 0 {
		lim.PerKeyRate, lim.PerKeyBurst = def.PerKeyRate, def.PerKeyBurst
	}
	if lim.PerOriginRate <= 0 {
		lim.PerOriginRate, lim.PerOriginBurst = def.PerOriginRate, def.PerOriginBurst
	}
	return &tracker{s: s, limits: lim, perKey: newRateLimiter(lim.PerKeyRate, lim.PerKeyBurst),
		perOrigin: newRateLimiter(lim.PerOriginRate, lim.PerOriginBurst), commits: map[string]*groupCommit{}}
}

// routes adds the endpoint outside the /v1 group: it authenticates by the key
// in the URL, as a beacon cannot send an Authorization header.
func (t *tracker) routes(r *gin.Engine) {
	r.POST("/v1/track", t.bearer, t.event)
	r.OPTIONS("/v1/track", t.preflight)
	r.GET("/track.js", t.script)
}

// bearer authenticates a request that carries an API key the usual way, so
// event can refuse it (audited): a secret key has no business on a page.
func (t *tracker) bearer(c *gin.Context) {
	if c.GetHeader("Authorization") == "" {
		c.Next()
		return
	}
	t.s.authenticate(c)
}

// TrackOrigins parses the origins a track key allows (its name): scheme and
// host, with a port if not the default, e.g. "https://shop.example
// https://www.shop.example". It reports every malformed one.
func TrackOrigins(name string) ([]string, error) {
	var out, problems []string
	for _, o := range strings.Fields(name) {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
			problems = append(problems, fmt.Sprintf("%q is not an origin like https://shop.example", o))
			continue
		}
		// Browsers leave default ports out of Origin, so the key does too.
		host := strings.ToLower(u.Host)
		if (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80") {
			host = strings.TrimSuffix(host, ":"+u.Port())
		}
		out = append(out, u.Scheme+"://"+host)
	}
	if len(problems) > 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "a track key's name lists the origins it accepts, separated by spaces: %s", strings.Join(problems, "; "))
	}
	if len(out) == 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "a track key's name lists the origins it accepts, separated by spaces, e.g. \"https://shop.example https://www.shop.example\"")
	}
	return out, nil
}

func (t *tracker) script(c *gin.Context) {
	// Served from the analytics server, ideally under the shop's own domain
	// (a reverse proxy): first-party, and cached for an hour.
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, "text/javascript; charset=utf-8", trackScript)
}

// preflight answers CORS preflights of fetch() with a JSON content type.
func (t *tracker) preflight(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if origin == "" {
		c.Status(http.StatusNoContent)
		return
	}
	// The key is checked on the request itself; a preflight only says the
	// method and header are fine, for any origin: an origin the key does not
	// list gets no Access-Control-Allow-Origin on the real request.
	c.Header("Access-Control-Allow-Origin", origin)
	c.Header("Access-Control-Allow-Methods", "POST")
	c.Header("Access-Control-Allow-Headers", "Content-Type")
	c.Header("Access-Control-Max-Age", "86400")
	c.Header("Vary", "Origin")
	c.Status(http.StatusNoContent)
}

var errTrackKey = privalytics.Errorf(privalytics.EUNAUTHORIZED, "send a track key as ?key=pvk_…; create one with role track and the shop's origins as its name")

// key resolves and checks the publishable key of the request.
func (t *tracker) key(c *gin.Context) (*privalytics.APIKey, error) {
	token := strings.TrimSpace(c.Query("key"))
	id, ok := keyring.ParseAPIKeyToken(token)
	if !ok {
		return nil, errTrackKey
	}
	s, now := t.s, t.s.now()
	k := s.keys.get(id, now)
	if k == nil {
		var err error
		if k, err = s.meta.Key(c.Request.Context(), id); privalytics.ErrorCode(err) == privalytics.ENOTFOUND {
			return nil, errTrackKey
		} else if err != nil {
			return nil, err
		}
		s.keys.put(k, now)
	}
	if subtle.ConstantTimeCompare(k.Hash, keyring.HashAPIKeyToken(token)) != 1 || k.RevokedAt != nil {
		return nil, errTrackKey
	}
	if k.Role != privalytics.RoleTrack {
		// Any other key is a secret: it must not sit in a web page.
		return nil, privalytics.Errorf(privalytics.EFORBIDDEN, "/v1/track takes track keys only (publishable, origin-restricted); this is a %s key, which must stay secret: revoke it if it was in a web page", k.Role)
	}
	return k, nil
}

// event takes one event from a web page: the key and origin are admitted,
// the body is checked alone, then joins the tenant's group commit.
func (t *tracker) event(c *gin.Context) {
	if p, ok := c.Get(principalKey); ok {
		t.s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "/v1/track takes a track key in ?key=, not an Authorization header; a %s key must stay secret and never be sent from a web page", p.(principal).Key.Role))
		return
	}
	k, err := t.admit(c)
	if err != nil {
		t.s.writeError(c, err)
		return
	}
	st, body, err := t.readEvent(c, k)
	if err == nil {
		err = t.commit(st.tenant.ID).submit(c.Request.Context(), t.s, st, body)
	}
	if err != nil {
		t.s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// admit resolves the track key, checks the request's origin against the
// origins the key lists (then allows that origin by CORS) and applies the rate
// limits; a rate-limited request gets its Retry-After header here.
func (t *tracker) admit(c *gin.Context) (*privalytics.APIKey, error) {
	k, err := t.key(c)
	if err != nil {
		return nil, err
	}
	origin := strings.ToLower(c.GetHeader("Origin"))
	allowed, err := TrackOrigins(k.Name)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EFORBIDDEN, "this track key lists no valid origin; issue a new one")
	}
	if origin == "" || !contains(allowed, origin) {
		return nil, privalytics.Errorf(privalytics.EFORBIDDEN, "this track key accepts events from %s only, not from origin %q", strings.Join(allowed, ", "), origin)
	}
	c.Header("Access-Control-Allow-Origin", origin)
	c.Header("Vary", "Origin")
	now := t.s.now()
	for _, l := range []struct {
		lim  *rateLimiter
		id   string
		what string
	}{
		// The origin first: one abusive origin must not drain the key's budget
		// for the shop's other origins.
		{t.perOrigin, origin, "origin " + origin}, {t.perKey, k.ID, "this key"},
	} {
		if ok, retry := l.lim.allow(l.id, now); !ok {
			secs := max(1, int(math.Ceil(retry.Seconds())))
			c.Header("Retry-After", strconv.Itoa(secs))
			return nil, privalytics.Errorf(privalytics.ERATELIMIT, "%s sent more than %g events a second; retry after %d s", l.what, l.lim.rate, secs)
		}
	}
	return k, nil
}

// readEvent reads and validates the request's one event for the key's
// tenant. It is validated alone, so a bad event gets its own 400 and never
// fails the batch it would have joined.
func (t *tracker) readEvent(c *gin.Context, k *privalytics.APIKey) (*tenantState, []byte, error) {
	if err := requireContentType(c, "text/plain", "application/json"); err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, t.limits.MaxEventBytes))
	if err != nil {
		return nil, nil, privalytics.Errorf(privalytics.ETOOLARGE, "an event is at most %d bytes", t.limits.MaxEventBytes)
	}
	st, err := t.s.tenantState(c.Request.Context(), k.TenantID)
	if err != nil {
		return nil, nil, err
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, nil, privalytics.Errorf(privalytics.EINVALID, "send one event as a JSON object")
	}
	n, err := st.conv.CheckEvent(body)
	if err != nil {
		return nil, nil, err
	}
	if n != 1 {
		return nil, nil, privalytics.Errorf(privalytics.EINVALID, "send one event per request, got %d; files go to /v1/imports", n)
	}
	return st, body, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (t *tracker) commit(tenantID string) *groupCommit {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.commits[tenantID]
	if g == nil {
		g = &groupCommit{}
		t.commits[tenantID] = g
	}
	return g
}

// groupCommit appends a tenant's concurrent single events as one batch. The
// first event of a batch leads it: it waits for the batch before to be on
// disk (the flush lock), meanwhile later events join its batch; then it closes
// the batch, appends it with one fsync and wakes everyone in it. No goroutine
// outlives a request.
type groupCommit struct {
	mu    sync.Mutex
	open  *pendingBatch
	flush sync.Mutex
}

type pendingBatch struct {
	lines [][]byte
	done  chan struct{}
	err   error
}

// maxGroup bounds one batch: beyond it a new batch starts.
const maxGroup = 10_000

func (g *groupCommit) submit(ctx context.Context, s *Server, st *tenantState, event []byte) error {
	g.mu.Lock()
	b, leader := g.open, false
	if b == nil || len(b.lines) >= maxGroup {
		b, leader = &pendingBatch{done: make(chan struct{})}, true
		g.open = b
	}
	b.lines = append(b.lines, event)
	g.mu.Unlock()
	if leader {
		g.flush.Lock()
		g.mu.Lock()
		if g.open == b {
			g.open = nil
		}
		lines := b.lines
		g.mu.Unlock()
		// Detached from the leader's request: the batch holds other requests'
		// events, which must be stored even if the leader's client goes away.
		b.err = appendLines(context.WithoutCancel(ctx), s, st, lines)
		g.flush.Unlock()
		close(b.done)
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// appendLines stores validated events as one durable batch.
func appendLines(ctx context.Context, s *Server, st *tenantState, lines [][]byte) error {
	size := 0
	for _, l := range lines {
		size += len(l) + 1
	}
	body := make([]byte, 0, size)
	for _, l := range lines {
		// Raw newlines in JSON are whitespace only (strings escape them), so
		// they can become spaces and each event stays one NDJSON line.
		start := len(body)
		body = append(body, l...)
		for i := start; i < len(body); i++ {
			if body[i] == '\n' || body[i] == '\r' {
				body[i] = ' '
			}
		}
		body = append(body, '\n')
	}
	rec, err := st.conv.DecodeJSON(body)
	if err != nil {
		return privalytics.Errorf(privalytics.EINTERNAL, "track: a batch of validated events failed: %v", err)
	}
	res, err := s.events.Append(ctx, st.tenant.ID, st.tenant.Schema, privalytics.Batch{Record: rec})
	if err != nil {
		return err
	}
	s.metrics.rows.WithLabelValues(st.tenant.ID).Add(float64(res.Rows))
	return nil
}
