package api

import (
	"github.com/gin-gonic/gin"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

// ingestEvents accepts NDJSON or a JSON array of events, optionally gzipped. The
// batch is validated whole: one bad row rejects it, and the error names the row,
// field and reason. The answer comes only after the store has fsynced the batch.
func (s *Server) ingestEvents(c *gin.Context) (reply, error) {
	if err := requireContentType(c, "application/x-ndjson", "application/json", "application/jsonl", "text/plain"); err != nil {
		return reply{}, err
	}
	idem, err := s.idempotencyKey(c)
	if err != nil {
		return reply{}, err
	}
	st, err := s.tenantState(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		return reply{}, err
	}
	body, err := readBody(c, s.limits.MaxBodyBytes, s.limits.MaxDecodedBytes)
	if err != nil {
		return reply{}, err
	}
	rec, err := st.conv.DecodeJSON(body.Bytes())
	releaseBody(body)
	if err != nil {
		return reply{}, err
	}
	res, err := s.events.Append(c.Request.Context(), st.tenant.ID, st.tenant.Schema, privalytics.Batch{Record: rec, IdempotencyKey: idem})
	if err != nil {
		return reply{}, err
	}
	if !res.Duplicate {
		s.metrics.rows.WithLabelValues(st.tenant.ID).Add(float64(res.Rows))
	}
	return ok(wire.AppendResult(res)), nil
}
