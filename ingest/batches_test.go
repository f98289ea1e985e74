package ingest

import (
	"context"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics/synth"
)

// TestBatchesAreAFunctionOfTheFile imports one file several times, through
// readers that hand it over in different pieces, and wants the same batches
// (the rows of each record) every time. POST /v1/imports derives each
// batch's idempotency key from its place in the file, so re-running a failed
// import stores only what is missing only if batch k holds the same rows on
// every run, whatever the timing of the converters or the network.
func TestBatchesAreAFunctionOfTheFile(t *testing.T) {
	t.Parallel()
	cfg := synth.DefaultConfig()
	cfg.Events, cfg.Seed = 30_000, 31
	g, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := []byte(strings.Join(synth.CSVHeader(), ",") + "\n")
	var ev synth.Event
	for g.Next(&ev) {
		text = synth.AppendCSV(text, &ev)
	}
	conv := testConverter(t)
	readers := map[string]func() io.Reader{
		"whole":       func() io.Reader { return strings.NewReader(string(text)) },
		"half reads":  func() io.Reader { return iotest.HalfReader(strings.NewReader(string(text))) },
		"1-byte read": func() io.Reader { return iotest.OneByteReader(strings.NewReader(string(text))) },
	}
	var want []int
	for round := range 4 {
		for name, r := range readers {
			var got []int
			rep, err := ImportCSV(context.Background(), r(), conv, nil, 1_000, func(rec arrow.Record) error {
				got = append(got, int(rec.NumRows()))
				rec.Release()
				return nil
			}, nil)
			if err != nil || rep.Rows != cfg.Events {
				t.Fatalf("%s: %v, %d rows", name, err, rep.Rows)
			}
			if want == nil {
				want = got
				continue
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("round %d, %s: the batches differ from the first import's (-first +this):\n%s", round, name, diff)
			}
		}
	}
}
