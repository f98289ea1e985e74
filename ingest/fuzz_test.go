package ingest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// FuzzDecodeNDJSON checks the hand-written scanner against encoding/json: on one
// line, whatever encoding/json reads as a flat object of scalars (in valid UTF-8)
// we must read with the same values, and whatever it rejects we must reject.
// It also runs the whole converter on the input: no panic, coded errors with a
// line only, and records that follow the tenant's Arrow schema.
func FuzzDecodeNDJSON(f *testing.F) {
	for _, s := range []string{
		`{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"12.5","quantity":2}`,
		`{"customer_id":"c1","ts":1740823200.5,"type":"view","channel":"web","amount":-0.125,"quantity":-3,"store":null}`,
		`{"a":"\u00e9\ud83d\ude00\n","b":-0.5e+3,"c":true,"d":null}`,
		`{}`, `{"a":1,"a":2}`, `{"a":[1]}`, `{"a":"\ud800"}`, `{"a":"\ud83d\u0041"}`, `{"a":01}`, `{"a" 1}`, `[{"a":1}]`,
		`{"a":1}{"b":2}`, `{"a":"x\u0000"}`, " {\"a\":\t1 } ", `{"a":-}`, `{"a":1.}`, `{"a":tru}`,
	} {
		f.Add([]byte(s))
	}
	conv := testConverter(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.IndexByte(line, '\n') >= 0 {
			return
		}
		var want map[string]any
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		jsonErr := dec.Decode(&want)
		if jsonErr == nil && len(bytes.Trim(line[dec.InputOffset():], " \t\r")) > 0 {
			jsonErr = errors.New("trailing data")
		}
		got := map[string]any{}
		sc := &scanner{buf: line}
		ourErr := sc.object(func(key []byte, v value) error {
			switch v.kind {
			case kindString:
				got[string(key)] = string(v.raw)
			case kindNumber:
				got[string(key)] = json.Number(string(v.raw))
			case kindBool:
				got[string(key)] = v.b
			default:
				got[string(key)] = nil
			}
			return nil
		})
		if ourErr == nil {
			sc.skipSpace()
			if sc.pos != len(line) {
				ourErr = errors.New("trailing data")
			}
		}
		flat := jsonErr == nil && want != nil && utf8.Valid(line)
		for _, v := range want {
			switch v.(type) {
			case map[string]any, []any:
				flat = false
			}
		}
		switch {
		case jsonErr != nil && ourErr == nil:
			t.Fatalf("we accept what encoding/json rejects (%v): %q", jsonErr, line)
		case flat && ourErr != nil:
			t.Fatalf("we reject a flat object encoding/json accepts: %v: %q", ourErr, line)
		case flat:
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("values of %q (-encoding/json +ours):\n%s", line, diff)
			}
		}

		rec, err := conv.DecodeJSON(line)
		if err != nil {
			if e, ok := err.(*privalytics.Error); ok && e.Code == privalytics.EINVALID && e.Message == msgNoEvents {
				if bytes.Contains(line, []byte("{")) {
					t.Fatalf("%q holds an object but was read as holding no events", line)
				}
				return
			}
			checkCodedError(t, err)
			return
		}
		checkRecord(t, conv, rec)
	})
}

// FuzzImportCSV feeds arbitrary bytes to the CSV importer: it must never panic,
// every error must be an *privalytics.Error with the line to blame, and records
// must follow the tenant's schema. The block splitter must also agree with
// encoding/csv: the same records where it reads the text, an error where it
// refuses it.
func FuzzImportCSV(f *testing.F) {
	for _, s := range []string{
		"customer_id,ts,type,amount\nc1,2025-03-01T10:00:00Z,purchase,12.50\n",
		"customer_id,ts,type\n\"c,1\",2025-03-01T10:00:00Z,view\n",
		"customer_id,ts,type,quantity\r\n\"c\"\"1\",1740823200,view,3\r\n\r\n\"c\n2\",2025-03-01T10:00:00+01:00,purchase,\r\n",
		"customer_id,ts\nc1\n", "a,b\n1,2\n", "", "customer_id,ts,type\n\"unterminated\n",
		"customer_id,ts,type\nc1,2025-03-01T10:00:00Z,view\nc\"2,x,y\n", "\x1f\x8b\x08\x00",
		uciHeader + "536365,85123A,\"WHITE, HEART\",6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n",
	} {
		f.Add([]byte(s))
	}
	conv := testConverter(f)
	uci := UCIOnlineRetailMapping()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []*Mapping{nil, &uci} {
			var recs []arrow.Record
			_, err := ImportCSV(context.Background(), bytes.NewReader(data), conv, m, 3, func(r arrow.Record) error {
				recs = append(recs, r)
				return nil
			}, nil)
			if err != nil {
				checkCodedError(t, err)
			}
			for _, r := range recs {
				checkRecord(t, conv, r)
			}
			// The same import row by row (an observer forces it) must say the
			// same: a plain file otherwise goes a column at a time.
			var rows []string
			_, rowErr := importCSV(context.Background(), bytes.NewReader(data), conv, m, 3, func(r arrow.Record) error {
				rows = append(rows, values(r)...)
				return nil
			}, nil, importOptions{observe: func([]string, bool) {}})
			if fmt.Sprint(err) != fmt.Sprint(rowErr) {
				t.Fatalf("column by column: %v; row by row: %v", err, rowErr)
			}
			if err == nil {
				var got []string
				for _, r := range recs {
					got = append(got, values(r)...)
				}
				if diff := cmp.Diff(rows, got); diff != "" {
					t.Fatalf("rows (-row by row +column by column):\n%s", diff)
				}
			}
		}

		if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
			return // gzip: the splitter sees other bytes
		}
		want, wantErr := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if wantErr == nil && len(want) == 0 {
			want = nil
		}
		for _, chunk := range []int{0, 1, 7} { // 0: streamed; else chunks of about that many bytes
			var got [][]string
			var gotErr error
			if chunk == 0 {
				got, gotErr = splitAll(string(data))
			} else {
				got, gotErr = splitChunked(string(data), chunk)
			}
			switch {
			case wantErr == nil && gotErr != nil:
				t.Fatalf("chunks %d: we refuse what encoding/csv reads: %v: %q", chunk, gotErr, data)
			case wantErr != nil && gotErr == nil:
				t.Fatalf("chunks %d: we read what encoding/csv refuses (%v): %q", chunk, wantErr, data)
			case wantErr == nil:
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("chunks %d: records of %q (-encoding/csv +ours):\n%s", chunk, data, diff)
				}
			}
		}
	})
}

func checkCodedError(t *testing.T, err error) {
	t.Helper()
	e, ok := err.(*privalytics.Error)
	if !ok {
		t.Fatalf("error %T is not an *privalytics.Error: %v", err, err)
	}
	if e.Code != privalytics.EINVALID && e.Code != privalytics.ETOOLARGE {
		t.Fatalf("error with code %q: %v", e.Code, err)
	}
	if line, ok := e.Details["line"].(int); !ok || line < 1 {
		t.Fatalf("error without a line: %v (details %v)", err, e.Details)
	}
}

func checkRecord(t *testing.T, conv *Converter, rec arrow.Record) {
	t.Helper()
	if rec.NumRows() == 0 {
		t.Fatalf("empty record returned without an error")
	}
	if !rec.Schema().Equal(conv.Schema().Arrow()) {
		t.Fatalf("record schema %v differs from the tenant's", rec.Schema())
	}
	for i, c := range rec.Columns() {
		if c.Len() != int(rec.NumRows()) {
			t.Fatalf("column %d has %d rows, record %d", i, c.Len(), rec.NumRows())
		}
		if d, ok := c.(*array.Dictionary); ok {
			for r := range d.Len() {
				if d.IsValid(r) && d.GetValueIndex(r) >= d.Dictionary().Len() {
					t.Fatalf("column %d row %d: dictionary index %d out of %d", i, r, d.GetValueIndex(r), d.Dictionary().Len())
				}
			}
		}
		if !rec.Schema().Field(i).Nullable && c.NullN() != 0 {
			t.Fatalf("column %d is required but has %d nulls", i, c.NullN())
		}
	}
}

// FuzzMappedImport runs a JSON mapping (ParseMapping) over a CSV file: whatever
// the two hold, the import ends with rows or a coded error, never a panic, and
// every row read is either emitted or counted as skipped. The seeds are the
// presets over their sample exports.
func FuzzMappedImport(f *testing.F) {
	for _, p := range Presets() {
		m, _ := json.Marshal(p.Mapping())
		f.Add(m, []byte("Name,Email,Created at,Status\n#1,a@x,2024-01-01 00:00:00 +0000,paid\n#1,,,\n"))
	}
	f.Add([]byte(`{"snake_case":true,"rename":{"Who":"customer_id"}}`), []byte("Who,Ts,Type\nc1,2024-01-01T00:00:00Z,view\n"))
	f.Add([]byte(`{"fields":{"customer_id":{"column":"a"},"ts":{"column":"b","format":"Jan","year":2024},"type":{"column":"c","map":{"x":"view"},"default":"purchase"},"amount":{"column":"d","times":"d","strip":"$","negate_if":{"column":"c","empty":true}}},"fill_down":{"group":"c","columns":["a"]},"skip":[{"column":"a","in":["z"],"reason":"z"}]}`),
		[]byte("a,b,c,d\nq,June,x,$1.5\n,sept,x,2\nz,Feb,,3\n"))
	conv := testConverter(f)
	f.Fuzz(func(t *testing.T, mapping, text []byte) {
		m, err := ParseMapping(mapping)
		if err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("ParseMapping: %v, want an invalid error", err)
			}
			return
		}
		rows := 0
		rep, err := ImportCSV(context.Background(), bytes.NewReader(text), conv, &m, 2, func(r arrow.Record) error {
			rows += int(r.NumRows())
			return nil
		}, nil)
		var pe *privalytics.Error
		if err != nil && !errors.As(err, &pe) {
			t.Fatalf("error %v (%T), want a *privalytics.Error", err, err)
		}
		if err == nil && rows != rep.Rows {
			t.Fatalf("emitted %d rows, the report says %d", rows, rep.Rows)
		}
	})
}
