package ingest

import (
	"context"
	"os"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

// BenchResult is one timed file import.
type BenchResult struct {
	Rows  int           `json:"rows"`
	Bytes int64         `json:"bytes"`
	Wall  time.Duration `json:"wall"`
	CPU   time.Duration `json:"cpu"` // of the whole process during the import; 0 where not measured
}

// RowsPerSecond is the wall-clock rate.
func (r BenchResult) RowsPerSecond() float64 { return float64(r.Rows) / r.Wall.Seconds() }

// RowsPerCPUSecond is the rate per second of CPU the process used (0 if not measured).
func (r BenchResult) RowsPerCPUSecond() float64 {
	if r.CPU <= 0 {
		return 0
	}
	return float64(r.Rows) / r.CPU.Seconds()
}

// BenchImport times the import of the file at path (format csv or ndjson, as
// POST /v1/imports reads it: streamed, converted on all cores) through c and m,
// handing each batch of batchRows to store, which a benchmark makes durable
// (the event store's Append with fsync) or not. The benchmark harness calls it;
// its figures say nothing about the network.
func BenchImport(ctx context.Context, path, format string, c *Converter, m *Mapping, batchRows int, store func(arrow.Record) error) (BenchResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return BenchResult{}, privalytics.Errorf(privalytics.EINVALID, "bench: %v", err)
	}
	defer f.Close()
	var n int64
	progress := func(b int64) { n = b }
	cpu0, start := processCPU(), time.Now()
	var rep ImportReport
	switch format {
	case "csv":
		rep, err = ImportCSV(ctx, f, c, m, batchRows, store, progress)
	case "ndjson":
		rep, err = ImportNDJSON(ctx, f, c, m, batchRows, store, progress)
	default:
		return BenchResult{}, privalytics.Errorf(privalytics.EINVALID, "bench: format must be csv or ndjson, got %q", format)
	}
	res := BenchResult{Rows: rep.Rows, Bytes: n, Wall: time.Since(start)}
	if cpu := processCPU(); cpu0 > 0 {
		res.CPU = cpu - cpu0
	}
	return res, err
}
