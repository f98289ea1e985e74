// Command duckdb-import compares file import speeds on one CSV file in one run:
// Privalytics' import (ingest.BenchImport into the real event store, every
// batch fsynced) beside DuckDB's read_csv into a table of a database file
// (then CHECKPOINT, so both are on disk). It is a module of its own so that
// DuckDB (cgo, a large static library) never enters the product's go.mod.
//
//	cd bench/duckdb && go run . -rows 10000000
//
// It prints one table: rows, seconds, rows/s and rows per CPU-second of each,
// and the machine's load average, as the figures depend on it.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/ingest"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/synth"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	rows := flag.Int("rows", 10_000_000, "rows of the synthetic CSV written when -csv is not given")
	csvPath := flag.String("csv", "", "CSV file with the synth columns (default: write one)")
	dir := flag.String("dir", "", "working directory (default: a temporary one, removed)")
	flag.Parse()
	ctx := context.Background()
	if *dir == "" {
		d, err := os.MkdirTemp("", "duckdb-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	if *csvPath == "" {
		*csvPath = filepath.Join(*dir, "events.csv")
		fmt.Fprintf(os.Stderr, "writing %d rows to %s …\n", *rows, *csvPath)
		if err := writeCSV(*csvPath, *rows); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "import of %s (GOMAXPROCS %d, load average %s)\n", filepath.Base(*csvPath), runtime.GOMAXPROCS(0), loadAverage())
	fmt.Fprintln(tw, "engine\trows\tseconds\trows/s\trows/cpu-s\t")

	// Privalytics: validate, pseudonymise, Arrow, fsynced appends of 100,000 rows.
	key := make([]byte, 32)
	p, err := ingest.NewPseudonymiser(key)
	if err != nil {
		return err
	}
	schema := privalytics.DefaultRetailSchema()
	conv, err := ingest.NewConverter(schema, p, ingest.Limits{})
	if err != nil {
		return err
	}
	ev, err := events.Open(filepath.Join(*dir, "events"), events.Options{SyncWrites: true, SealRows: 1 << 30})
	if err != nil {
		return err
	}
	res, err := ingest.BenchImport(ctx, *csvPath, "csv", conv, nil, 100_000, func(r arrow.Record) error {
		_, err := ev.Append(ctx, "bench", schema, privalytics.Batch{Record: r})
		return err
	})
	ev.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "privalytics ingest (durable)\t%d\t%.2f\t%.0f\t%.0f\t\n", res.Rows, res.Wall.Seconds(), res.RowsPerSecond(), res.RowsPerCPUSecond())

	// DuckDB: read_csv into a table of a database file, typed and parsed, then
	// CHECKPOINT so the table is in the file.
	db, err := sql.Open("duckdb", filepath.Join(*dir, "bench.duckdb"))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, fmt.Sprintf("SET threads = %d", runtime.GOMAXPROCS(0))); err != nil {
		return err
	}
	cpu0, start := cpuTime(), time.Now()
	q := fmt.Sprintf(`CREATE TABLE events AS SELECT * FROM read_csv('%s', header = true, columns = {
		'customer_id': 'VARCHAR', 'ts': 'TIMESTAMPTZ', 'type': 'VARCHAR', 'store': 'VARCHAR', 'channel': 'VARCHAR',
		'category': 'VARCHAR', 'product': 'VARCHAR', 'order_id': 'VARCHAR', 'quantity': 'BIGINT',
		'amount': 'DECIMAL(18,3)', 'country': 'VARCHAR'})`, strings.ReplaceAll(*csvPath, "'", "''"))
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("duckdb read_csv: %w", err)
	}
	if _, err := db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	wall, cpu := time.Since(start), cpuTime()-cpu0
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil {
		return err
	}
	fmt.Fprintf(tw, "duckdb read_csv → table, checkpoint\t%d\t%.2f\t%.0f\t%.0f\t\n", n, wall.Seconds(), float64(n)/wall.Seconds(), float64(n)/cpu.Seconds())
	return tw.Flush()
}

func writeCSV(path string, n int) error {
	cfg := synth.DefaultConfig()
	cfg.Events, cfg.Seed = n, 13
	g, err := synth.New(cfg)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(strings.Join(synth.CSVHeader(), ",") + "\n")
	var ev synth.Event
	var buf []byte
	for g.Next(&ev) {
		buf = synth.AppendCSV(buf[:0], &ev)
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(raw))[:3], " ")
}
