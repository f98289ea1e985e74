package events

import (
	"context"
	"time"

	"github.com/privalytics/privalytics"
)

// LoadFigure is what loading one tenant's events at start cost.
type LoadFigure struct {
	Rows       int     `json:"rows"`
	Segments   int     `json:"segments"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_sec"`
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
	start := time.Now()
	snap, err := s.Snapshot(ctx, tenantID, schema)
	if err != nil {
		return LoadFigure{}, err
	}
	f := LoadFigure{Rows: snap.Rows(), Seconds: time.Since(start).Seconds()}
	if st, err := s.Stats(tenantID); err == nil {
		f.Segments = st.Segments
	}
	if f.Seconds > 0 {
		f.RowsPerSec = float64(f.Rows) / f.Seconds
	}
	return f, nil
}
