// Command privalytics-beam runs one Privalytics query on Apache Beam with
// Privacy on Beam. The server (engine "beam") charges the ledger, exports the
// snapshot and runs it; it can be run by hand the same way:
//
//	privalytics-beam --input DIR --spec spec.json --output cells.ndjson [--runner direct|prism|dataflow|flink ...]
//
// --input is a directory of part-*.parquet files (privalytics export-snapshot),
// --spec the analytics.RemoteSpec of the query, --output the released cells
// (one JSON object per line). Runner flags are Beam's own (docs/beam.md).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/beam/pipeline"
)

var (
	input    = flag.String("input", "", "directory of the exported snapshot (part-*.parquet)")
	specFile = flag.String("spec", "", "the query's RemoteSpec (JSON)")
	output   = flag.String("output", "", "file for the released cells (JSON lines)")
	testMode = flag.Bool("test_mode", false, "noise-free test mode (pbeam TestModeWithContributionBounding); never for real answers")
)

func main() {
	flag.Parse()
	beam.Init()
	if err := realMain(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "privalytics-beam:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	if *input == "" || *specFile == "" || *output == "" {
		return fmt.Errorf("--input, --spec and --output are required")
	}
	raw, err := os.ReadFile(*specFile)
	if err != nil {
		return err
	}
	var spec analytics.RemoteSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("--spec %s: %w", *specFile, err)
	}
	files, err := filepath.Glob(filepath.Join(*input, analytics.SnapshotFilePattern))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		// An empty snapshot still releases (noisy) public groups: create the
		// pipeline over no files.
		files = []string{}
	}
	p, s := beam.NewPipelineWithRoot()
	if err := pipeline.Build(s, files, spec, *output, *testMode); err != nil {
		return err
	}
	_, err = beamx.RunWithMetrics(ctx, p)
	return err
}
