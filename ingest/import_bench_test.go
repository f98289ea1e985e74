package ingest

import (
	"bytes"
	"context"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics/synth"
)

// BenchmarkImportCSV measures the file-import path without the network: CSV text
// to Arrow records, validated and pseudonymised.
func BenchmarkImportCSV(b *testing.B) {
	conv := testConverter(b)
	cfg := synth.DefaultConfig()
	cfg.Events = 200_000
	g, _ := synth.New(cfg)
	var ev synth.Event
	buf := []byte("customer_id,ts,type,store,channel,category,product,order_id,quantity,amount,country\n")
	for g.Next(&ev) {
		buf = synth.AppendCSV(buf, &ev)
	}
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		rep, err := ImportCSV(context.Background(), bytes.NewReader(buf), conv, nil, 100_000, func(arrow.Record) error { return nil }, nil)
		if err != nil || rep.Rows != cfg.Events {
			b.Fatal(err, rep)
		}
	}
	b.ReportMetric(float64(b.N*cfg.Events)/b.Elapsed().Seconds(), "rows/s")
}
