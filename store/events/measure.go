package events

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/privalytics/privalytics"
)

// LoadFigure is what loading one tenant's events at start cost.
type LoadFigure struct {
	Rows       int     `json:"rows"`
	Segments   int     `json:"segments"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_sec"`
	// CPUSeconds is the process's CPU time during the load (0 where not
	// measured); RowsPerCPUSec is the load rate per core, which a busy
	// machine does not distort as it does the wall-clock rate.
	CPUSeconds    float64 `json:"cpu_seconds"`
	RowsPerCPUSec float64 `json:"rows_per_cpu_sec"`
	// FromImages counts the segments read from their load images (the
	// others were decoded from Parquet); ImageBytes and SegmentBytes are the
	// disk the tenant's images and segments take.
	FromImages   int   `json:"from_images"`
	ImageBytes   int64 `json:"image_bytes"`
	SegmentBytes int64 `json:"segment_bytes"`
	// MemoryBytes is what the loaded records hold (Stats.MemoryBytes).
	MemoryBytes int64 `json:"memory_bytes"`
}

// MeasureLoad opens the store in dir, loads one tenant (what the first query
// after a restart waits for when the tenant was not preloaded yet) and times
// it. The benchmark harness calls it to print the restart figure.
func MeasureLoad(ctx context.Context, dir string, opt Options, tenantID string, schema privalytics.Schema) (LoadFigure, error) {
	s, err := Open(dir, opt)
	if err != nil {
		return LoadFigure{}, err
	}
	defer s.Close()
	start, cpu := time.Now(), ProcessCPU()
	snap, err := s.Snapshot(ctx, tenantID, schema)
	if err != nil {
		return LoadFigure{}, err
	}
	f := LoadFigure{Rows: snap.Rows(), Seconds: time.Since(start).Seconds(), CPUSeconds: (ProcessCPU() - cpu).Seconds()}
	if f.CPUSeconds > 0 {
		f.RowsPerCPUSec = float64(f.Rows) / f.CPUSeconds
	}
	if st, err := s.Stats(tenantID); err == nil {
		f.Segments = st.Segments
		f.MemoryBytes = st.MemoryBytes
	}
	if f.Seconds > 0 {
		f.RowsPerSec = float64(f.Rows) / f.Seconds
	}
	f.FromImages = int(s.imageLoads.Load())
	ents, _ := os.ReadDir(filepath.Join(dir, tenantID, "segments"))
	for _, e := range ents {
		info, err := e.Info()
		switch {
		case err != nil:
		case strings.HasSuffix(e.Name(), imageSuffix):
			f.ImageBytes += info.Size()
		case strings.HasSuffix(e.Name(), ".parquet"):
			f.SegmentBytes += info.Size()
		}
	}
	return f, nil
}
