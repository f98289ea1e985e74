// Command beam-bench measures the Beam path (export + Privacy on Beam on the
// direct runner, in this process) beside the in-process engine on the same
// synthetic snapshot and query, and prints rows/s and the crossover estimate:
//
//	go run ./cmd/beam-bench -rows 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/beam/pipeline"
)

var (
	rows    = flag.Int("rows", 1_000_000, "events in the synthetic snapshot")
	timeout = flag.Duration("query-timeout", 30*time.Second, "the server's query timeout, for the crossover estimate")
)

func main() {
	flag.Parse()
	beam.Init()
	if err := realMain(); err != nil {
		fmt.Fprintln(os.Stderr, "beam-bench:", err)
		os.Exit(1)
	}
}

func realMain() error {
	ctx := context.Background()
	schema := privalytics.DefaultRetailSchema()
	snap := synthetic(schema, *rows)
	f := func(v float64) *float64 { return &v }
	q := &privalytics.Query{GroupBy: []privalytics.GroupKey{{Column: "channel"}}, Epsilon: 1,
		Aggregates: []privalytics.Aggregate{{Op: "count"}, {Op: "sum", Column: "amount", Lower: f(0), Upper: f(200)}}}
	plan, err := analytics.NewPlan(q, schema, analytics.DefaultLimits())
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := analytics.Execute(ctx, plan, snap); err != nil {
		return err
	}
	local := time.Since(start)

	dir, err := os.MkdirTemp("", "beam-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start = time.Now()
	key := []byte("beam-bench-pseudonym-key-0123456")
	if _, _, err := analytics.ExportSnapshot(ctx, filepath.Join(dir, "snap"), snap, nil, key); err != nil {
		return err
	}
	export := time.Since(start)
	files, _ := filepath.Glob(filepath.Join(dir, "snap", analytics.SnapshotFilePattern))
	p, s := beam.NewPipelineWithRoot()
	if err := pipeline.Build(s, files, plan.Remote(), filepath.Join(dir, "cells.ndjson"), false); err != nil {
		return err
	}
	if _, err := direct.Execute(ctx, p); err != nil {
		return err
	}
	total := time.Since(start)
	n := float64(*rows)
	fmt.Printf("rows                 %d (group by channel; count + sum)\n", *rows)
	fmt.Printf("in-process engine    %8.3f s  %12.0f rows/s\n", local.Seconds(), n/local.Seconds())
	fmt.Printf("beam path (direct)   %8.3f s  %12.0f rows/s  (export %.3f s)\n", total.Seconds(), n/total.Seconds(), export.Seconds())
	fmt.Printf("beam / in-process    %8.1f× slower per row on this machine\n", total.Seconds()/local.Seconds())
	fmt.Printf("crossover            the in-process engine reaches the %s query timeout at about %.3g rows;\n", *timeout, n/local.Seconds()*timeout.Seconds())
	fmt.Printf("                     a Beam cluster matches one server from about %.0f workers like this machine\n", total.Seconds()/local.Seconds())
	return nil
}

// synthetic builds a retail snapshot of n events from n/8 customers.
func synthetic(schema privalytics.Schema, n int) *privalytics.Snapshot {
	as := schema.Arrow()
	rng := rand.New(rand.NewPCG(1, 2))
	snap := &privalytics.Snapshot{Version: 1, Subjects: max(1, n/8)}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	const chunk = 1 << 16
	for lo := 0; lo < n; lo += chunk {
		m := min(chunk, n-lo)
		rb := array.NewRecordBuilder(memory.DefaultAllocator, as)
		subjects := make([]uint32, m)
		for i := range m {
			subj := uint32(rng.IntN(snap.Subjects))
			subjects[i] = subj
			for fi := range as.NumFields() {
				b := rb.Field(fi)
				switch as.Field(fi).Name {
				case privalytics.SubjectColumn:
					b.(*array.Uint64Builder).Append(uint64(subj))
				case "ts":
					b.(*array.TimestampBuilder).Append(arrow.Timestamp(start + rng.Int64N(365*24*3600*1_000_000)))
				case "type":
					b.(*array.BinaryDictionaryBuilder).AppendString("purchase")
				case "channel":
					b.(*array.BinaryDictionaryBuilder).AppendString([]string{"web", "app", "store"}[rng.IntN(3)])
				case "amount":
					b.(*array.Int64Builder).Append(rng.Int64N(150_000))
				default:
					b.AppendNull()
				}
			}
		}
		snap.Chunks = append(snap.Chunks, privalytics.Chunk{Record: rb.NewRecord(), Subjects: subjects})
		rb.Release()
	}
	return snap
}
