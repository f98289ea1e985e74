package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

// FuzzDecodeNDJSON checks the hand-written scanner against encoding/json: on one
// line, whatever encoding/json reads as a flat object of scalars (in valid UTF-8)
// we must read with the same values, and whatever it rejects we must reject.
// It also runs the whole converter on the input: no panic, coded errors only.
func FuzzDecodeNDJSON(f *testing.F) {
	for _, s := range []string{
		`{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"12.5","quantity":2}`,
		`{"a":"\u00e9\ud83d\ude00\n","b":-0.5e+3,"c":true,"d":null}`,
		`{}`, `{"a":1,"a":2}`, `{"a":[1]}`, `{"a":"\ud800"}`, `{"a":01}`, `{"a" 1}`, `[{"a":1}]`,
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
		if jsonErr == nil {
			if _, err := dec.Token(); err == nil {
				jsonErr = errors.New("trailing data")
			}
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
			for k, w := range want {
				if g, ok := got[k]; !ok || g != w {
					t.Fatalf("field %q: got %#v, want %#v in %q", k, g, w, line)
				}
			}
		}

		rec, err := conv.DecodeJSON(line)
		if err != nil {
			if c := privalytics.ErrorCode(err); c != privalytics.EINVALID && c != privalytics.ETOOLARGE {
				t.Fatalf("error with code %q: %v", c, err)
			}
			return
		}
		checkRecord(t, conv, rec)
	})
}

// FuzzImportCSV feeds arbitrary bytes to the CSV importer: it must never panic,
// and every error must be a coded error.
func FuzzImportCSV(f *testing.F) {
	for _, s := range []string{
		"customer_id,ts,type,amount\nc1,2025-03-01T10:00:00Z,purchase,12.50\n",
		"customer_id,ts,type\n\"c,1\",2025-03-01T10:00:00Z,view\n",
		"customer_id,ts\nc1\n", "a,b\n1,2\n", "", "customer_id,ts,type\n\"unterminated\n",
	} {
		f.Add([]byte(s))
	}
	conv := testConverter(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []arrow.Record
		_, err := ImportCSV(context.Background(), bytes.NewReader(data), conv, nil, 1000, func(r arrow.Record) error {
			recs = append(recs, r)
			return nil
		}, nil)
		if err != nil {
			if c := privalytics.ErrorCode(err); c != privalytics.EINVALID && c != privalytics.ETOOLARGE {
				t.Fatalf("error with code %q: %v", c, err)
			}
		}
		for _, r := range recs {
			checkRecord(t, conv, r)
		}
	})
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
	}
}
