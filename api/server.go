// Package api is the HTTP face of Privalytics: routing, authentication, the thin
// handlers that decode a request, call the domain (ingest, analytics, the stores)
// and encode the answer, and the one table that maps error codes to statuses.
// It holds no business rules of its own; limits are set in Limits and documented
// in the OpenAPI spec.
package api

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/he"
	"github.com/privalytics/privalytics/he/federation"
	"github.com/privalytics/privalytics/ingest"
	"github.com/privalytics/privalytics/learn/registry"
	"github.com/privalytics/privalytics/rights"
)

// Limits are every request limit of the API in one place.
type Limits struct {
	MaxBodyBytes    int64         // an ingest body as sent (compressed or not); 413 above
	MaxDecodedBytes int64         // an ingest body after gzip decoding; 413 above
	MaxQueryBytes   int64         // a query body; 413 above
	MaxImportBytes  int64         // a whole file sent to /v1/imports; 413 above
	QueryTimeout    time.Duration // a query running longer is cancelled, is charged (it has read data) and gets 400
	// RatePerKey is the sustained requests per second one API key may send, with
	// bursts up to RateBurst; above it the answer is 429 with Retry-After. 0: no limit.
	RatePerKey float64
	RateBurst  int
	Ingest     ingest.Limits
	Query      analytics.Limits

	// MaxIdempotencyKeyBytes bounds the Idempotency-Key header of ingest and
	// imports; 400 above.
	MaxIdempotencyKeyBytes int
	// PageSize is a listing's page (audit trail, charges, budget changes)
	// without ?limit; MaxPageSize the largest ?limit accepted (400 above).
	PageSize, MaxPageSize int
	Track                 TrackLimits // /v1/track (api/track.go); zero fields take DefaultTrackLimits
}

// DefaultLimits are the documented defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxBodyBytes:    64 << 20,
		MaxDecodedBytes: 256 << 20,
		MaxQueryBytes:   1 << 20,
		MaxImportBytes:  4 << 30,
		QueryTimeout:    30 * time.Second,
		RatePerKey:      200,
		RateBurst:       400,
		Ingest:          ingest.DefaultLimits(),
		Query:           analytics.DefaultLimits(),

		MaxIdempotencyKeyBytes: 128,
		PageSize:               50,
		MaxPageSize:            500,
	}
}

// KeyWrapper encrypts and decrypts tenants' secret keys under the server's master key.
type KeyWrapper interface {
	Wrap(plaintext, associatedData []byte) ([]byte, error)
	Unwrap(wrapped, associatedData []byte) ([]byte, error)
}

// Deps is what the server needs; cmd/privalytics wires the real ones.
type Deps struct {
	Meta   privalytics.MetaStore
	Events privalytics.EventStore
	Keys   KeyWrapper
	// Audit records administrative actions, queries, consent changes and
	// denials. The binary always sets it; nil (tests of other parts) records nothing.
	Audit privalytics.AuditLog
	// Mechanisms add the noise. Always dp.Secure() in the binary; tests may pass
	// dptest.NoNoise() to assert exact values.
	Mechanisms dp.Mechanisms
	Limits     Limits
	// MetricsToken, when set, is a bearer token that reads GET /metrics and
	// nothing else (the operator key still works there too).
	MetricsToken string
	// HE configures the processor role (encrypted datasets); off by default.
	HE HELimits
	// HEDatasets, when set, is the processor's state kept on disk
	// (he.OpenDatasets); nil keeps datasets in memory with limits HE.
	HEDatasets *he.Datasets
	// Federations, when set, is the federations' state kept on disk
	// (federation.OpenRegistry); nil keeps them in memory.
	Federations *federation.Registry
	Logger      *slog.Logger
	Now         func() time.Time
	// Privacy receives a record of every erasure, rectification and retention
	// purge (the audit log attaches here).
	Privacy PrivacyHooks
	// Rights serves the subject and retention routes. Nil: New builds one over
	// Events (when it is a SubjectStore), Meta, Audit and Privacy; the caller
	// then starts and closes its retention loop through Server.Rights.
	Rights *rights.Service
	// Models stores tenants' released models and fairness audits (the
	// /v1/models and /v1/fairness-audits routes); nil answers 503.
	Models *registry.Service
	// Engines run queries that name an engine ("engine": "beam") outside this
	// process; the query service charges before it submits a job.
	Engines map[string]analytics.RemoteEngine
	// Readiness, when set, must return nil for /readyz to answer 200: the
	// event store reports tenants still loading or failed to load.
	Readiness func() error
}

// Server serves the Privalytics HTTP API.
type Server struct {
	meta     privalytics.MetaStore
	events   privalytics.EventStore
	wrap     KeyWrapper
	auditLog privalytics.AuditLog
	mech     dp.Mechanisms
	limits   Limits
	log      *slog.Logger
	now      func() time.Time
	rights   *rights.Service

	he           *he.Datasets
	readiness    func() error // Deps.Readiness
	metricsToken string

	keys    keyCache
	rate    *rateLimiter
	metrics *metrics
	ready   atomic.Bool
	tenants sync.Map // tenant ID → *tenantState
	queries *analytics.Service
	// views and viewStore serve views, dashboards and share links; nil when
	// the metadata store keeps no views.
	views     *analytics.Views
	viewStore privalytics.ViewStore
	feds      *federation.Registry
	models    *registry.Service
	engine    *gin.Engine
}

// New returns a server that is not ready until SetReady(true).
func New(d Deps) *Server {
	s := &Server{meta: d.Meta, events: d.Events, wrap: d.Keys, auditLog: d.Audit, mech: d.Mechanisms, limits: d.Limits, log: d.Logger, now: d.Now, rights: d.Rights, readiness: d.Readiness, metricsToken: d.MetricsToken}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.limits == (Limits{}) {
		s.limits = DefaultLimits()
	}
	if ss, ok := d.Events.(privalytics.SubjectStore); ok && s.rights == nil {
		s.rights = rights.New(rights.Deps{Events: ss, Tenants: d.Meta, Audit: d.Audit, Hooks: d.Privacy, Logger: s.log, Now: s.now})
	}
	qd := analytics.ServiceDeps{
		Ledger: s.meta, Events: s.events, Consent: analytics.NewConsentMasks(s.meta), Mechanisms: s.mech,
		Cache: analytics.NewCache(4096), Limits: s.limits.Query, Timeout: s.limits.QueryTimeout, Now: s.now,
		Engines: d.Engines,
	}
	if s.auditLog != nil { // leave the port a nil interface, not a typed nil: "records nothing"
		qd.Audit = s.auditLog
	}
	s.queries = analytics.NewService(qd)
	if vs, ok := d.Meta.(privalytics.ViewStore); ok {
		s.viewStore = vs
		s.views = analytics.NewViews(analytics.ViewsDeps{Store: vs, Queries: s.queries, Ledger: s.meta, Limits: s.limits.Query, Now: s.now, Logger: s.log})
	}
	s.rate = newRateLimiter(s.limits.RatePerKey, s.limits.RateBurst)
	s.metrics = newMetrics(s)
	s.feds, s.he = d.Federations, d.HEDatasets
	if s.feds == nil {
		s.feds = federation.NewRegistry(s.now, s.log)
	}
	if s.he == nil {
		s.he = he.NewDatasets(d.HE, s.now)
	}
	s.models = d.Models
	s.engine = s.routes()
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

// SetReady flips /readyz between 200 and 503 (start-up recovery, shutdown drain).
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(s.requestIDs, s.accessLog, s.metrics.observe, s.recover)
	r.NoRoute(func(c *gin.Context) {
		s.writeError(c, privalytics.Errorf(privalytics.ENOTFOUND, "no route %s %s; see /openapi.yaml", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusMethodNotAllowed, ErrorBody{Error: ErrorDetail{Code: privalytics.EINVALID, Message: "method not allowed on " + c.Request.URL.Path, RequestID: requestID(c)}})
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", func(c *gin.Context) {
		if !s.ready.Load() {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "starting or draining"})
			return
		}
		if s.readiness != nil {
			if err := s.readiness(); err != nil {
				c.JSON(http.StatusServiceUnavailable, gin.H{"status": privalytics.ErrorMessage(err), "details": privalytics.ErrorDetails(err)})
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	r.GET("/openapi.yaml", s.openAPI)
	r.GET("/metrics", s.metricsAuth, s.serveMetrics)
	r.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/dashboard/") })
	r.GET("/dashboard/*filepath", s.serveDashboard())

	// Single events from web shops, with publishable keys (api/track.go).
	newTracker(s, s.limits.Track).routes(r)

	v1 := r.Group("/v1", s.authenticate)
	v1.POST("/tenants", s.handle(s.createTenant))
	v1.GET("/tenants", s.handle(s.listTenants))
	v1.GET("/tenants/:tenant", s.handle(s.getTenant))
	v1.GET("/tenant", s.require(privalytics.RoleAdmin, privalytics.RoleIngest, privalytics.RoleQuery), s.handle(s.ownTenant))
	v1.PUT("/tenant/privacy", s.require(privalytics.RoleAdmin), s.handle(s.setPrivacy))
	v1.GET("/privacy-notice", s.require(privalytics.RoleAdmin, privalytics.RoleIngest, privalytics.RoleQuery), s.privacyNotice)

	v1.POST("/keys", s.require(privalytics.RoleAdmin), s.handle(s.createKey))
	v1.GET("/keys", s.require(privalytics.RoleAdmin), s.handle(s.listKeys))
	v1.DELETE("/keys/:id", s.require(privalytics.RoleAdmin), s.handle(s.revokeKey))
	v1.PUT("/keys/:id/budget", s.require(privalytics.RoleAdmin), s.allocate)

	v1.POST("/events", s.require(privalytics.RoleIngest, privalytics.RoleAdmin), s.handle(s.ingestEvents))
	v1.POST("/imports", s.require(privalytics.RoleIngest, privalytics.RoleAdmin), s.handle(s.importFile))

	v1.POST("/queries", s.require(privalytics.RoleQuery, privalytics.RoleAdmin), s.handle(s.runQuery))
	v1.POST("/queries:explain", s.require(privalytics.RoleQuery, privalytics.RoleAdmin), s.handle(s.explainQuery))
	v1.POST("/workloads:explain", s.require(privalytics.RoleQuery, privalytics.RoleAdmin), s.handle(s.explainWorkload))
	// The same two in SQL (BigQuery's differential-privacy clause; analytics/dpsql).
	v1.POST("/sql", s.require(privalytics.RoleQuery, privalytics.RoleAdmin), s.handle(s.runQuery))
	v1.POST("/sql:explain", s.require(privalytics.RoleQuery, privalytics.RoleAdmin), s.handle(s.explainQuery))
	v1.GET("/budget", s.require(privalytics.RoleQuery, privalytics.RoleAdmin), s.budget)
	v1.GET("/budget/charges", s.require(privalytics.RoleQuery, privalytics.RoleAdmin), s.charges)
	v1.POST("/budget/grants", s.require(privalytics.RoleAdmin), s.grant)
	v1.GET("/budget/changes", s.require(privalytics.RoleAdmin), s.budgetChanges)
	s.federationRoutes(r)
	v1.GET("/audit", s.require(privalytics.RoleAdmin), s.handle(s.auditEntries))

	v1.POST("/consents", s.require(privalytics.RoleIngest, privalytics.RoleAdmin), s.handle(s.recordConsents))
	v1.GET("/consents/:customer_id", s.require(privalytics.RoleAdmin), s.handle(s.consentStatus))

	s.heRoutes(v1)
	s.viewRoutes(v1)

	// A customer's rights, exercised through the business: admin keys only (a
	// query key cannot read one customer's events).
	v1.GET("/subjects/:customer_id", s.require(privalytics.RoleAdmin), s.exportSubject)
	v1.PATCH("/subjects/:customer_id", s.require(privalytics.RoleAdmin), s.handle(s.rectifySubject))
	v1.DELETE("/subjects/:customer_id", s.require(privalytics.RoleAdmin), s.handle(s.eraseSubject))
	v1.GET("/erasures/:id", s.require(privalytics.RoleAdmin), s.handle(s.erasureReceipt))
	v1.PUT("/tenant/retention", s.require(privalytics.RoleAdmin), s.handle(s.setRetention))
	v1.POST("/tenant/data-keys", s.require(privalytics.RoleAdmin), s.handle(s.rotateDataKey))
	v1.DELETE("/tenants/:tenant/events", s.handle(s.shredTenant))

	v1.GET("/models", s.require(privalytics.RoleAdmin, privalytics.RoleQuery), s.handle(s.listModels))
	v1.GET("/models/:name", s.require(privalytics.RoleAdmin, privalytics.RoleQuery), s.handle(s.getModel))
	v1.POST("/models/:name", s.require(privalytics.RoleAdmin), s.handle(s.uploadModel))
	v1.POST("/fairness-audits", s.require(privalytics.RoleAdmin, privalytics.RoleQuery), s.handle(s.createFairnessAudit))
	v1.GET("/fairness-audits/:id", s.require(privalytics.RoleAdmin, privalytics.RoleQuery), s.handle(s.getFairnessAudit))
	return r
}

const requestIDKey = "privalytics.request_id"

// requestIDs takes a sane X-Request-ID from the client or makes one, and echoes it.
func (s *Server) requestIDs(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if len(id) == 0 || len(id) > 64 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// accessLog writes one structured line per request: no bodies, no query strings,
// nothing that could carry personal data.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestID(c)),
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.Int("status", c.Writer.Status()),
		slog.Duration("duration", time.Since(start)),
	}
	// Who asked, as the operator needs it to answer "which key is failing":
	// the tenant and the key's ID (an identifier, never the secret).
	if p, ok := c.Get(principalKey); ok {
		k := p.(principal).Key
		attrs = append(attrs, slog.String("tenant", k.TenantID), slog.String("key_id", k.ID))
	} else if c.GetBool(metricsCallerKey) {
		attrs = append(attrs, slog.String("key_id", "metrics-token"))
	}
	if code := c.GetString(errorCodeKey); code != "" {
		attrs = append(attrs, slog.String("error_code", code))
	}
	s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
}

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.writeError(c, privalytics.Errorf(privalytics.EINTERNAL, "panic: %v", v))
		}
	}()
	c.Next()
}
