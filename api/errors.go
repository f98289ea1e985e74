package api

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
)

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[string]int{
	privalytics.EINVALID:      http.StatusBadRequest,
	privalytics.ENOTFOUND:     http.StatusNotFound,
	privalytics.EUNAUTHORIZED: http.StatusUnauthorized,
	privalytics.EFORBIDDEN:    http.StatusForbidden,
	privalytics.ECONFLICT:     http.StatusConflict,
	privalytics.EBUDGET:       http.StatusForbidden,
	privalytics.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	privalytics.ERATELIMIT:    http.StatusTooManyRequests,
	privalytics.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	privalytics.EUNAVAILABLE:  http.StatusServiceUnavailable,
	privalytics.ESTORAGEFULL:  http.StatusInsufficientStorage,
	privalytics.EINTERNAL:     http.StatusInternalServerError,
}

// StatusOf returns the HTTP status for an error code.
func StatusOf(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries the code, a message that says what to change, structured
// details (line and field of a bad row, budget left) and the request ID to quote.
type ErrorDetail struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
}

// writeError writes err as JSON. Internal errors are logged with the request ID
// and shown only as "internal error".
// errorCodeKey holds the code of the error a request was answered with.
const errorCodeKey = "privalytics.error_code"

func (s *Server) writeError(c *gin.Context, err error) {
	code := privalytics.ErrorCode(err)
	rid := requestID(c)
	if code == privalytics.EINTERNAL {
		s.log.Error("internal error", slog.String("request_id", rid), slog.String("path", c.FullPath()), slog.Any("err", err))
	}
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		code = privalytics.ETOOLARGE
		err = privalytics.Errorf(code, "request body is over the limit of %d bytes; send smaller batches", maxErr.Limit)
	}
	c.Set(errorCodeKey, code) // for the access log
	body := ErrorDetail{Code: code, Message: privalytics.ErrorMessage(err), Details: privalytics.ErrorDetails(err), RequestID: rid}
	if code == privalytics.EINTERNAL {
		body.Message, body.Details = "internal error", nil
	}
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(StatusOf(code), ErrorBody{Error: body})
}
