package api

import (
	"context"
	"crypto/subtle"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/privalytics/privalytics"
)

// metrics are the server's Prometheus metrics, in a registry of its own (two
// servers in one process do not share counters). Labels are routes, methods,
// statuses, outcomes and tenant IDs — never a customer, a filter value or a key.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	rows     *prometheus.CounterVec
	queries  *prometheus.CounterVec
	epsilon  *prometheus.CounterVec
}

// tenantStats is implemented by event stores that can report a tenant's sizes
// (store/events); the segment gauge needs it.
type tenantStats interface {
	Segments(tenantID string) (int, error)
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "privalytics_http_requests_total",
			Help: "HTTP requests by route, method and status."}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "privalytics_http_request_duration_seconds",
			Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}, []string{"route"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "privalytics_ingest_rows_total",
			Help: "Events stored (duplicates of an idempotency key not counted), by tenant."}, []string{"tenant"}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "privalytics_queries_total",
			Help: "DP queries by tenant and outcome: answered, cached or refused."}, []string{"tenant", "outcome"}),
		epsilon: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "privalytics_budget_spent_epsilon_total",
			Help: "Privacy budget ε charged by queries answered through this server, by tenant."}, []string{"tenant"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.rows, m.queries, m.epsilon,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&segmentCollector{s: s, desc: prometheus.NewDesc("privalytics_segments", "Sealed Parquet segments per tenant (tenants loaded in memory).", []string{"tenant"}, nil)},
		&budgetCollector{s: s,
			epsilon: prometheus.NewDesc("privalytics_budget_remaining_epsilon", "Privacy budget ε the tenant has left over its data's lifetime (for zCDP tenants, converted from ρ).", []string{"tenant"}, nil),
			delta:   prometheus.NewDesc("privalytics_budget_remaining_delta", "Privacy budget δ the tenant has left.", []string{"tenant"}, nil)})
	b := Build()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{Name: "privalytics_build_info", Help: "Always 1; its labels name the running binary.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "go_version": b.GoVersion}})
	buildInfo.Set(1)
	m.reg.MustRegister(buildInfo)
	return m
}

// observe is the middleware that counts and times every request.
func (m *metrics) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
	m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

const metricsCallerKey = "privalytics.metrics_token"

// metricsAuth lets the metrics token through to /metrics and sends anything
// else to the ordinary key check. The token exists so that Prometheus's config
// holds a credential that can read figures and do nothing else, instead of the
// operator key that creates tenants.
func (s *Server) metricsAuth(c *gin.Context) {
	if s.metricsToken != "" {
		token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.metricsToken)) == 1 {
			c.Set(metricsCallerKey, true)
			c.Next()
			return
		}
	}
	s.authenticate(c)
}

// serveMetrics answers GET /metrics for the metrics token or the operator key
// (Prometheus sends either as a bearer token): per-tenant figures are the
// business's, not the public's.
func (s *Server) serveMetrics(c *gin.Context) {
	if !c.GetBool(metricsCallerKey) && !callerOf(c).operator() {
		s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "metrics are for the metrics token (PRIVALYTICS_METRICS_TOKEN) or the operator key"))
		return
	}
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(c.Writer, c.Request)
}

// budgetCollector reports each tenant's remaining budget at scrape time, read
// from the ledger, so the gauge agrees with GET /v1/budget whichever server
// of a shared database charged the queries.
type budgetCollector struct {
	s              *Server
	epsilon, delta *prometheus.Desc
}

func (bc *budgetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- bc.epsilon; ch <- bc.delta }

func (bc *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tenants, err := bc.s.meta.Tenants(ctx)
	if err != nil {
		bc.s.log.Warn("metrics: list tenants", "err", err)
		return
	}
	for _, t := range tenants {
		st, err := bc.s.meta.Budget(ctx, t.ID)
		if err != nil {
			bc.s.log.Warn("metrics: budget", "tenant", t.ID, "err", err)
			continue
		}
		present(&st) // ε of a zCDP tenant is the conversion of its ρ, as the API shows it
		ch <- prometheus.MustNewConstMetric(bc.epsilon, prometheus.GaugeValue, st.Remaining.Epsilon, t.ID)
		ch <- prometheus.MustNewConstMetric(bc.delta, prometheus.GaugeValue, st.Remaining.Delta, t.ID)
	}
}

type segmentCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func (sc *segmentCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sc.desc }

func (sc *segmentCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := sc.s.events.(tenantStats)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tenants, err := sc.s.meta.Tenants(ctx)
	if err != nil {
		sc.s.log.Warn("metrics: list tenants", "err", err)
		return
	}
	for _, t := range tenants {
		if n, err := st.Segments(t.ID); err == nil {
			ch <- prometheus.MustNewConstMetric(sc.desc, prometheus.GaugeValue, float64(n), t.ID)
		}
	}
}

// BuildInfo names the binary a server runs: its module version, the VCS
// commit it was built from and the Go toolchain, as the Go linker recorded
// them. The build_info gauge and `privalytics version` both read it, so an
// operator can match a running server to a release.
type BuildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

// linkedVersion and linkedCommit are set by a release build whose VCS stamp
// is unavailable (-buildvcs=false, a source tarball, a Docker context without
// .git):
//
//	go build -ldflags "-X github.com/privalytics/privalytics/api.linkedVersion=v1.2.0 -X github.com/privalytics/privalytics/api.linkedCommit=$(git rev-parse HEAD)"
var linkedVersion, linkedCommit string

// Build reads the binary's build information. A binary built outside a VCS
// checkout (or by `go run`) has no commit; it reads "unknown".
func Build() BuildInfo {
	b := buildFromInfo()
	if linkedVersion != "" {
		b.Version = linkedVersion
	}
	if linkedCommit != "" {
		b.Commit = linkedCommit
	}
	return b
}

func buildFromInfo() BuildInfo {
	b := BuildInfo{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if v := info.Main.Version; v != "" {
		b.Version = v
	}
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && b.Commit != "unknown" {
		b.Commit += "+dirty"
	}
	return b
}
