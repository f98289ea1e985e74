package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/ingest"
)

// importBatchRows is how many rows an import stores per durable append.
const importBatchRows = 100_000

// ImportResponse reports a finished import.
type ImportResponse struct {
	ingest.ImportReport
	Batches int     `json:"batches"`
	Seconds float64 `json:"seconds"`
}

// importFile takes a whole file (CSV, NDJSON or Parquet) in the body and stores it
// in durable batches of importBatchRows. ?format=csv|ndjson|parquet;
// ?mapping=<preset> or a JSON mapping in the Privalytics-Mapping header. With an
// Idempotency-Key, each batch gets a derived key, so re-running a failed import
// stores only what is missing. Rows are validated as they stream; a bad row stops
// the import with its line named, and the batches before it stay stored (the
// response says how many).
func (s *Server) importFile(c *gin.Context) {
	ctx := c.Request.Context()
	st, err := s.tenantState(ctx, callerOf(c).Key.TenantID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	m, err := importMapping(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	idem := c.GetHeader("Idempotency-Key")
	batches := 0
	emit := func(rec arrow.Record) error {
		key := ""
		if idem != "" {
			key = fmt.Sprintf("%s#%d", idem, batches)
		}
		batches++
		_, err := s.events.Append(ctx, st.tenant.ID, st.tenant.Schema, privalytics.Batch{Record: rec, IdempotencyKey: key})
		return err
	}
	start := time.Now()
	body := http.MaxBytesReader(c.Writer, c.Request.Body, s.limits.MaxImportBytes)
	var rep ingest.ImportReport
	switch f := c.DefaultQuery("format", "csv"); f {
	case "csv":
		rep, err = ingest.ImportCSV(ctx, body, st.conv, m, importBatchRows, emit, nil)
	case "ndjson":
		rep, err = ingest.ImportNDJSON(ctx, body, st.conv, m, importBatchRows, emit, nil)
	case "parquet":
		rep, err = ingest.ImportParquetReader(ctx, body, st.conv, m, importBatchRows, emit, nil)
	default:
		err = privalytics.Errorf(privalytics.EINVALID, "format must be csv, ndjson or parquet, got %q", f)
	}
	if err != nil {
		s.writeError(c, addBatches(err, batches))
		return
	}
	c.JSON(http.StatusOK, ImportResponse{ImportReport: rep, Batches: batches, Seconds: time.Since(start).Seconds()})
}

// addBatches tells the caller how much of a failed import is stored.
func addBatches(err error, batches int) error {
	if e, ok := err.(*privalytics.Error); ok {
		return e.With("batches_stored", batches)
	}
	return err
}

func importMapping(c *gin.Context) (*ingest.Mapping, error) {
	if raw := c.GetHeader("Privalytics-Mapping"); raw != "" {
		var m ingest.Mapping
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "Privalytics-Mapping header: %v", err)
		}
		return &m, nil
	}
	p := c.Query("mapping")
	if p == "" {
		return nil, nil
	}
	m, err := ingest.PresetMapping(p)
	if err != nil {
		return nil, err
	}
	return &m, nil
}
