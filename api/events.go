package api

import (
	"net/http"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
)

// ingestEvents accepts NDJSON or a JSON array of events, optionally gzipped. The
// batch is validated whole: one bad row rejects it, and the error names the row,
// field and reason. The answer comes only after the store has fsynced the batch.
func (s *Server) ingestEvents(c *gin.Context) {
	if err := requireContentType(c, "application/x-ndjson", "application/json", "application/jsonl", "text/plain"); err != nil {
		s.writeError(c, err)
		return
	}
	idem := c.GetHeader("Idempotency-Key")
	if len(idem) > 128 || !utf8.ValidString(idem) {
		s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "Idempotency-Key must be at most 128 bytes of UTF-8"))
		return
	}
	st, err := s.tenantState(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	body, err := readBody(c, s.limits.MaxBodyBytes, s.limits.MaxDecodedBytes)
	if err != nil {
		s.writeError(c, err)
		return
	}
	rec, err := st.conv.DecodeJSON(body.Bytes())
	releaseBody(body)
	if err != nil {
		s.writeError(c, err)
		return
	}
	res, err := s.events.Append(c.Request.Context(), st.tenant.ID, st.tenant.Schema, privalytics.Batch{Record: rec, IdempotencyKey: idem})
	if err != nil {
		s.writeError(c, err)
		return
	}
	if !res.Duplicate {
		s.metrics.rows.WithLabelValues(st.tenant.ID).Add(float64(res.Rows))
	}
	c.JSON(http.StatusOK, res)
}
