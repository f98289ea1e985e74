package ingest

import (
	"context"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"
)

// TestBatchesAreAFunctionOfTheFile imports one file several times, through
// readers that hand it over in different pieces and on one core or all, and
// wants the same batches (the rows of each record) every time, for CSV and
// NDJSON. POST /v1/imports derives each
// batch's idempotency key from its place in the file, so re-running a failed
// import stores only what is missing only if batch k holds the same rows on
// every run, whatever the timing of the converters or the network.
func TestBatchesAreAFunctionOfTheFile(t *testing.T) {
	t.Parallel()
	text := synthCSVFile(t, 30_000, 31)
	nd := synthNDJSON(t, 30_000)
	conv := testConverter(t)
	for _, format := range []string{"csv", "ndjson"} {
		body := text
		if format == "ndjson" {
			body = nd
		}
		readers := map[string]func() io.Reader{
			"whole":       func() io.Reader { return strings.NewReader(string(body)) },
			"half reads":  func() io.Reader { return iotest.HalfReader(strings.NewReader(string(body))) },
			"1-byte read": func() io.Reader { return iotest.OneByteReader(strings.NewReader(string(body))) },
		}
		var want []int
		for round := range 4 {
			for name, r := range readers {
				opt := importOptions{workers: round%2 + 1} // one core, then two
				var got []int
				emit := func(rec arrow.Record) error {
					got = append(got, int(rec.NumRows()))
					rec.Release()
					return nil
				}
				var rep ImportReport
				var err error
				if format == "csv" {
					rep, err = importCSV(context.Background(), r(), conv, nil, 1_000, emit, nil, opt)
				} else {
					opt.chunkBytes = 64 << 10
					rep, err = importNDJSON(context.Background(), r(), conv, nil, 1_000, emit, nil, opt)
				}
				if err != nil || rep.Rows != 30_000 {
					t.Fatalf("%s, %s: %v, %d rows", format, name, err, rep.Rows)
				}
				if want == nil {
					want = got
					continue
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("%s, round %d (%d workers), %s: the batches differ from the first import's (-first +this):\n%s", format, round, opt.workers, name, diff)
				}
			}
		}
	}
}
