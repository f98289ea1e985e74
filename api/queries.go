package api

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/analytics/dpsql"
)

// runQuery answers a DP query through analytics.Service, which holds every
// privacy rule of the use case (plan, cache, pre-check, consent, execute,
// charge, release, audit); the handler decodes, calls it and encodes.
func (s *Server) runQuery(c *gin.Context) (reply, error) {
	req, err := s.queryRequest(c)
	if err != nil {
		// Refused before a query could be read: audited like any refusal.
		_ = s.audit(c, auditQuery, "", err, map[string]string{})
		s.metrics.queries.WithLabelValues(callerOf(c).Key.TenantID, "refused").Inc()
		return reply{}, err
	}
	res, err := s.queries.Run(c.Request.Context(), req)
	tenant := req.Tenant.ID
	switch {
	case err != nil:
		s.metrics.queries.WithLabelValues(tenant, "refused").Inc()
		return reply{}, err
	case res.Cached:
		s.metrics.queries.WithLabelValues(tenant, "cached").Inc()
	default:
		s.metrics.queries.WithLabelValues(tenant, "answered").Inc()
		s.metrics.epsilon.WithLabelValues(tenant).Add(res.Cost.Epsilon)
	}
	return ok(res), nil
}

// explainQuery answers what a query would cost and how precise it would be,
// without reading data or spending budget.
func (s *Server) explainQuery(c *gin.Context) (reply, error) {
	req, err := s.queryRequest(c)
	if err != nil {
		return reply{}, err
	}
	ex, err := s.queries.Explain(c.Request.Context(), req)
	if err != nil {
		return reply{}, err
	}
	return ok(ex), nil
}

// explainWorkload explains a list of queries and their total cost:
// {"queries": [query, …]}, each decoded as strictly as POST /v1/queries.
func (s *Server) explainWorkload(c *gin.Context) (reply, error) {
	key := callerOf(c).Key
	st, err := s.tenantState(c.Request.Context(), key.TenantID)
	if err != nil {
		return reply{}, err
	}
	body, err := readBody(c, 64*s.limits.MaxQueryBytes, 64*s.limits.MaxQueryBytes)
	if err != nil {
		return reply{}, err
	}
	var w struct {
		Queries []json.RawMessage `json:"queries"`
	}
	dec := json.NewDecoder(bytes.NewReader(body.Bytes()))
	dec.DisallowUnknownFields()
	err = dec.Decode(&w)
	releaseBody(body)
	if err != nil {
		return reply{}, privalytics.Errorf(privalytics.EINVALID, `workload: send {"queries": [query, …]}: %v`, err)
	}
	rs := make([]analytics.Request, len(w.Queries))
	for i, raw := range w.Queries {
		q, err := analytics.DecodeQuery(raw)
		if err != nil {
			return reply{}, privalytics.Errorf(privalytics.EINVALID, "workload: queries[%d]: %s", i, privalytics.ErrorMessage(err))
		}
		rs[i] = analytics.Request{Tenant: st.tenant, KeyID: key.ID, Query: q, FingerprintKey: st.fingerprintKey, RequestID: requestID(c)}
	}
	ex, err := s.queries.ExplainWorkload(c.Request.Context(), rs)
	if err != nil {
		return reply{}, err
	}
	return ok(ex), nil
}

// queryRequest decodes the request's query (JSON, or SQL on /v1/sql) for the
// caller's tenant.
func (s *Server) queryRequest(c *gin.Context) (analytics.Request, error) {
	key := callerOf(c).Key
	st, err := s.tenantState(c.Request.Context(), key.TenantID)
	if err != nil {
		return analytics.Request{}, err
	}
	body, err := readBody(c, s.limits.MaxQueryBytes, s.limits.MaxQueryBytes)
	if err != nil {
		return analytics.Request{}, err
	}
	var q *privalytics.Query
	if strings.HasPrefix(c.FullPath(), "/v1/sql") {
		q, err = sqlQuery(c.ContentType(), body.Bytes(), st.tenant.Schema)
	} else {
		q, err = analytics.DecodeQuery(body.Bytes())
	}
	releaseBody(body)
	if err != nil {
		return analytics.Request{}, err
	}
	return analytics.Request{Tenant: st.tenant, KeyID: key.ID, Query: q, FingerprintKey: st.fingerprintKey, RequestID: requestID(c)}, nil
}

// present fills the ε figures of a zCDP tenant's status (analytics.PresentBudget).
func present(st *privalytics.BudgetStatus) { analytics.PresentBudget(st) }

// sqlQuery reads the body of POST /v1/sql: the SQL text as text/plain (or
// application/sql), or {"sql": "…"} as application/json.
func sqlQuery(contentType string, body []byte, schema privalytics.Schema) (*privalytics.Query, error) {
	text := string(body)
	if contentType == "application/json" {
		var req struct {
			SQL string `json:"sql"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.SQL == "" {
			return nil, privalytics.Errorf(privalytics.EINVALID, `send the SQL as text/plain, or as JSON {"sql": "SELECT WITH DIFFERENTIAL_PRIVACY …"}`)
		}
		text = req.SQL
	}
	return dpsql.Parse(text, schema)
}
