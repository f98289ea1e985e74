package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
)

// decodeJSON reads one JSON object from the body into v: at most limit bytes,
// unknown fields rejected, nothing after the object. Errors say what to change.
func decodeJSON(c *gin.Context, limit int64, v any) error {
	if err := requireContentType(c, "application/json"); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return privalytics.Errorf(privalytics.EINVALID, "body must hold a single JSON object")
	}
	return nil
}

// jsonError turns an encoding/json error into a message a caller can act on.
func jsonError(err error) error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		maxErr    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &maxErr):
		return privalytics.Errorf(privalytics.ETOOLARGE, "body is over the limit of %d bytes", maxErr.Limit)
	case errors.As(err, &syntaxErr):
		return privalytics.Errorf(privalytics.EINVALID, "malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return privalytics.Errorf(privalytics.EINVALID, "malformed JSON: the body ends early")
	case errors.As(err, &typeErr):
		return privalytics.Errorf(privalytics.EINVALID, "field %q must be %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return privalytics.Errorf(privalytics.EINVALID, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.EOF):
		return privalytics.Errorf(privalytics.EINVALID, "body must not be empty")
	}
	return privalytics.Errorf(privalytics.EINVALID, "malformed JSON: %v", err)
}

// requireContentType accepts a missing Content-Type (curl's default for -d is
// form-encoded, which we also tolerate) or one of the allowed media types.
func requireContentType(c *gin.Context, allowed ...string) error {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return privalytics.Errorf(privalytics.EUNSUPPORTED, "cannot parse Content-Type %q", ct)
	}
	if mt == "application/x-www-form-urlencoded" {
		return nil
	}
	for _, a := range allowed {
		if mt == a {
			return nil
		}
	}
	return privalytics.Errorf(privalytics.EUNSUPPORTED, "Content-Type %s is not accepted here; use %s", mt, strings.Join(allowed, " or "))
}

var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads the whole body, decoding gzip when Content-Encoding says so, with
// a limit on the bytes sent and on the bytes after decoding. The caller returns the
// buffer to bodyBuffers when done with it.
func readBody(c *gin.Context, sentLimit, decodedLimit int64) (*bytes.Buffer, error) {
	var r io.Reader = http.MaxBytesReader(c.Writer, c.Request.Body, sentLimit)
	switch enc := strings.ToLower(strings.TrimSpace(c.GetHeader("Content-Encoding"))); enc {
	case "", "identity":
		decodedLimit = sentLimit
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "body says Content-Encoding: gzip but is not gzip: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, privalytics.Errorf(privalytics.EUNSUPPORTED, "Content-Encoding %q is not accepted; send gzip or nothing", enc)
	}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	if cl := c.Request.ContentLength; cl > 0 && cl <= sentLimit {
		buf.Grow(int(cl))
	}
	n, err := buf.ReadFrom(io.LimitReader(r, decodedLimit+1))
	if err != nil {
		bodyBuffers.Put(buf)
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, privalytics.Errorf(privalytics.ETOOLARGE, "body is over the limit of %d bytes; send smaller batches", maxErr.Limit)
		}
		return nil, privalytics.Errorf(privalytics.EINVALID, "reading the body failed: %v", err)
	}
	if n > decodedLimit {
		bodyBuffers.Put(buf)
		return nil, privalytics.Errorf(privalytics.ETOOLARGE, "decoded body is over the limit of %d bytes; send smaller batches", decodedLimit)
	}
	return buf, nil
}

func releaseBody(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<20 {
		bodyBuffers.Put(buf)
	}
}
