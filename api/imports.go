package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/ingest"
)

// importBatchRows is how many rows an import stores per durable append.
const importBatchRows = 100_000

// ImportResponse reports a finished import (wire.ImportReport).
type ImportResponse = wire.ImportReport

// importer reads a whole file of one format and emits its rows in batches.
type importer func(ctx context.Context, r io.Reader, c *ingest.Converter, m *ingest.Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ingest.ImportReport, error)

// importerOf is the reader of ?format=csv|ndjson|parquet.
func importerOf(format string) (importer, error) {
	switch format {
	case "csv":
		return ingest.ImportCSV, nil
	case "ndjson":
		return ingest.ImportNDJSON, nil
	case "parquet":
		return ingest.ImportParquetReader, nil
	}
	return nil, privalytics.Errorf(privalytics.EINVALID, "format must be csv, ndjson or parquet, got %q", format)
}

// importFile takes a whole file (CSV, NDJSON or Parquet) in the body and stores it
// in durable batches of importBatchRows. ?format=csv|ndjson|parquet;
// ?mapping=<preset> or a JSON mapping in the Privalytics-Mapping header. With an
// Idempotency-Key, each batch gets a derived key, so re-running a failed import
// stores only what is missing. Rows are validated as they stream; a bad row stops
// the import with its line named, and the batches before it stay stored (the
// response says how many).
func (s *Server) importFile(c *gin.Context) (reply, error) {
	ctx := c.Request.Context()
	read, err := importerOf(c.DefaultQuery("format", "csv"))
	if err != nil {
		return reply{}, err
	}
	m, err := importMapping(c)
	if err != nil {
		return reply{}, err
	}
	idem, err := s.idempotencyKey(c)
	if err != nil {
		return reply{}, err
	}
	st, err := s.tenantState(ctx, callerOf(c).Key.TenantID)
	if err != nil {
		return reply{}, err
	}
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
	rep, err := read(ctx, http.MaxBytesReader(c.Writer, c.Request.Body, s.limits.MaxImportBytes), st.conv, m, importBatchRows, emit, nil)
	if err != nil {
		return reply{}, addBatches(err, batches)
	}
	return ok(wire.ImportReport{Rows: rep.Rows, Skipped: rep.Skipped, SkippedReasons: rep.SkippedReasons, Batches: batches, Seconds: time.Since(start).Seconds()}), nil
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
