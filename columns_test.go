package privalytics

import (
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// randomRecord builds a record of the retail schema whose columns have the
// given number of distinct values (nulls one row in nullEvery, none when 0).
func randomRecord(t *testing.T, rng *rand.Rand, rows, distinct, nullEvery int) arrow.Record {
	t.Helper()
	schema := DefaultRetailSchema().Arrow()
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := range rows {
		for f := range schema.NumFields() {
			fb := b.Field(f)
			if f > 1 && nullEvery > 0 && (i+f)%nullEvery == 0 {
				fb.AppendNull()
				continue
			}
			v := rng.IntN(distinct)
			switch fb := fb.(type) {
			case *array.Uint64Builder:
				fb.Append(uint64(v) * 0x9e3779b97f4a7c15)
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(rng.Int64()))
			case *array.BinaryDictionaryBuilder:
				if err := fb.AppendString(string(rune('a'+v%26)) + string(rune('a'+v/26%26)) + string(rune('a'+v/676))); err != nil {
					t.Fatal(err)
				}
			case *array.Int64Builder:
				fb.Append(int64(v) - int64(distinct)/2)
			}
		}
	}
	return b.NewRecord()
}

// TestCompactRecordRoundTrips: narrowing then widening gives back every value
// and null, for columns of few and of many distinct values, and the narrow
// form is smaller where it should be.
func TestCompactRecordRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	schema := DefaultRetailSchema().Arrow()
	for _, tc := range []struct{ rows, distinct, nullEvery int }{
		{1, 1, 0}, {100, 3, 0}, {1000, 200, 7}, {5000, 1000, 0}, {65536, 300, 11}, {20000, 20000, 0}, {300, 2, 1},
	} {
		rec := randomRecord(t, rng, tc.rows, tc.distinct, tc.nullEvery)
		small := CompactRecord(rec)
		back := WidenRecord(small, schema)
		if !back.Schema().Equal(schema) {
			t.Fatalf("%+v: widened schema %s", tc, back.Schema())
		}
		if !array.RecordEqual(rec, back) {
			t.Errorf("%+v: the record does not round-trip", tc)
		}
		for f := range schema.NumFields() {
			col, orig := small.Column(f), rec.Column(f)
			if col.NullN() != orig.NullN() {
				t.Errorf("%+v %s: %d nulls, want %d", tc, schema.Field(f).Name, col.NullN(), orig.NullN())
			}
			_, isString := orig.(*array.Dictionary)
			// Strings narrow their codes; numbers need few enough distinct
			// values for a dictionary to halve them.
			if f != 1 && tc.distinct <= 256 && tc.nullEvery != 1 && (isString || 4*tc.distinct <= tc.rows) {
				idx, ok := col.(*array.Dictionary)
				if !ok || idx.Indices().DataType().ID() != arrow.UINT8 {
					t.Errorf("%+v %s: %s, want a dictionary with uint8 codes", tc, schema.Field(f).Name, col.DataType())
				}
			}
			// Uint64s decodes what it is given, narrow or not.
			if _, isDict := orig.(*array.Dictionary); !isDict {
				want, got := Uint64s(orig), Uint64s(col)
				for i := range want {
					if orig.IsValid(i) && want[i] != got[i] {
						t.Fatalf("%+v %s row %d: Uint64s %d, want %d", tc, schema.Field(f).Name, i, got[i], want[i])
					}
				}
			}
		}
		if tc.distinct == tc.rows && tc.rows > 1 { // all distinct: numbers stay plain
			if _, ok := small.Column(schema.FieldIndices("amount")[0]).(*array.Int64); !ok {
				t.Errorf("%+v: amount of all-distinct values became %s", tc, small.Column(9).DataType())
			}
		}
	}
}
