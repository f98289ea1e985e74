package api

import (
	"strconv"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/privalytics/privalytics"
)

// page reads ?offset and ?limit of a listing, with the page size limits of
// Limits; both refusals come from the request alone.
func (s *Server) page(c *gin.Context) (offset, limit int, err error) {
	size, most := s.limits.PageSize, s.limits.MaxPageSize
	if size <= 0 || most <= 0 { // a Limits built by hand without them
		size, most = DefaultLimits().PageSize, DefaultLimits().MaxPageSize
	}
	offset, err1 := strconv.Atoi(c.DefaultQuery("offset", "0"))
	limit, err2 := strconv.Atoi(c.DefaultQuery("limit", strconv.Itoa(size)))
	if err1 != nil || err2 != nil || offset < 0 || limit < 1 || limit > most {
		return 0, 0, privalytics.Errorf(privalytics.EINVALID, "offset must be ≥ 0 and limit 1..%d", most)
	}
	return offset, limit, nil
}

// idempotencyKey reads the Idempotency-Key header that makes a retried batch
// a no-op: at most Limits.MaxIdempotencyKeyBytes of UTF-8.
func (s *Server) idempotencyKey(c *gin.Context) (string, error) {
	most := s.limits.MaxIdempotencyKeyBytes
	if most <= 0 {
		most = DefaultLimits().MaxIdempotencyKeyBytes
	}
	k := c.GetHeader("Idempotency-Key")
	if len(k) > most || !utf8.ValidString(k) {
		return "", privalytics.Errorf(privalytics.EINVALID, "Idempotency-Key must be at most %d bytes of UTF-8", most)
	}
	return k, nil
}
