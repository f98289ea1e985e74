package privalytics

import (
	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// In-memory column forms.
//
// A snapshot's chunks have the tenant's columns (Schema.Arrow: names, order and
// logical types), but the event store keeps full-size chunks narrower than the
// schema's physical types, so that more rows fit in memory (CompactRecord):
//
//   - a string column is a dictionary whose indices are uint8 when it has at
//     most 256 values, uint16 up to 65,536, else int32;
//   - an integer, decimal or subject column (int64, uint64) is a dictionary of
//     its distinct values with uint8 or uint16 indices when that takes at most
//     half the bytes; the dictionary holds only values of non-null rows.
//
// Timestamps, floats and booleans keep the schema's type. Code that reads
// chunks either switches on these forms (the executor's hot loops evaluate a
// predicate once per dictionary value) or decodes with Uint64s;
// WidenRecord turns a chunk back into the schema's physical types (to write
// it, or to hand rows out).

// zeros backs index buffers that are all zero (a constant or always-null column
// in a chunk), so they cost nothing per row. Never written.
var zeros = make([]byte, 1<<17)

func indexBuffer(b []byte) *memory.Buffer {
	if len(b) <= len(zeros) {
		allZero := true
		for _, x := range b {
			if x != 0 {
				allZero = false
				break
			}
		}
		if allZero {
			return memory.NewBufferBytes(zeros[:len(b)])
		}
	}
	return memory.NewBufferBytes(b)
}

// CompactRecord returns rec with every column in its narrowest in-memory form
// (see above), or rec itself when nothing narrows. rec must follow a tenant's
// schema (Schema.Arrow) and have no offset.
func CompactRecord(rec arrow.Record) arrow.Record {
	n := int(rec.NumCols())
	cols := make([]arrow.Array, n)
	fields := make([]arrow.Field, n)
	changed := false
	for i := range n {
		f := rec.Schema().Field(i)
		c := compactColumn(rec.Column(i))
		if c != rec.Column(i) {
			changed = true
			f.Type = c.DataType()
		}
		cols[i], fields[i] = c, f
	}
	if !changed {
		return rec
	}
	md := rec.Schema().Metadata()
	return array.NewRecord(arrow.NewSchema(fields, &md), cols, rec.NumRows())
}

func compactColumn(a arrow.Array) arrow.Array {
	if a.Data().Offset() != 0 {
		return a
	}
	switch c := a.(type) {
	case *array.Dictionary:
		idx, ok := c.Indices().(*array.Int32)
		if !ok {
			return a
		}
		switch m := c.Dictionary().Len(); {
		case m <= 1<<8:
			return newDict(a, arrow.PrimitiveTypes.Uint8, c.DataType().(*arrow.DictionaryType).ValueType, narrowCodes[uint8](idx.Int32Values()), c.Dictionary().Data())
		case m <= 1<<16:
			return newDict(a, arrow.PrimitiveTypes.Uint16, c.DataType().(*arrow.DictionaryType).ValueType, narrowCodes[uint16](idx.Int32Values()), c.Dictionary().Data())
		}
	case *array.Int64:
		return dictEncode(c, c.Int64Values(), arrow.PrimitiveTypes.Int64, func(v []int64) arrow.ArrayData {
			return array.NewData(arrow.PrimitiveTypes.Int64, len(v), []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(v))}, nil, 0, 0)
		})
	case *array.Uint64:
		return dictEncode(c, c.Uint64Values(), arrow.PrimitiveTypes.Uint64, func(v []uint64) arrow.ArrayData {
			return array.NewData(arrow.PrimitiveTypes.Uint64, len(v), []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Uint64Traits.CastToBytes(v))}, nil, 0, 0)
		})
	}
	return a
}

// narrowCodes copies dictionary codes into a narrower type; the caller has
// checked that they fit.
func narrowCodes[T uint8 | uint16, S int32 | uint16](idx []S) []T {
	out := make([]T, len(idx))
	for i, v := range idx {
		out[i] = T(v)
	}
	return out
}

func codeBytes[T uint8 | uint16 | int32](idx []T) []byte {
	switch v := any(idx).(type) {
	case []uint8:
		return v
	case []uint16:
		return arrow.Uint16Traits.CastToBytes(v)
	case []int32:
		return arrow.Int32Traits.CastToBytes(v)
	}
	panic("unreachable")
}

// newDict builds a dictionary array with orig's validity, the given codes and
// dictionary.
func newDict[T uint8 | uint16 | int32](orig arrow.Array, indexType, valueType arrow.DataType, idx []T, dict arrow.ArrayData) arrow.Array {
	d := orig.Data()
	typ := &arrow.DictionaryType{IndexType: indexType, ValueType: valueType}
	data := array.NewDataWithDictionary(typ, d.Len(), []*memory.Buffer{d.Buffers()[0], indexBuffer(codeBytes(idx))}, d.NullN(), 0, dict.(*array.Data))
	defer data.Release()
	return array.MakeFromData(data)
}

// dictEncode returns a as a dictionary of its distinct values when that takes
// at most half its bytes, else a. Null rows get code 0.
func dictEncode[V int64 | uint64](a arrow.Array, vals []V, valueType arrow.DataType, build func([]V) arrow.ArrayData) arrow.Array {
	n := len(vals)
	// uint16 codes and 8-byte values: 2n + 8d ≤ 8n/2 when d ≤ n/4.
	limit := min(n/4, 1<<16)
	code := make(map[V]uint16, min(limit, 1024))
	var dict []V
	idx := make([]uint16, n)
	nulls := a.NullN() > 0
	for i, v := range vals {
		if nulls && a.IsNull(i) {
			continue
		}
		k, ok := code[v]
		if !ok {
			if len(dict) == limit {
				return a
			}
			k = uint16(len(dict))
			code[v] = k
			dict = append(dict, v)
		}
		idx[i] = k
	}
	if len(dict) == 0 { // always null: the value buffer is shared zeros already
		return a
	}
	dd := build(dict)
	defer dd.Release()
	if len(dict) <= 1<<8 {
		return newDict(a, arrow.PrimitiveTypes.Uint8, valueType, narrowCodes[uint8](idx), dd)
	}
	return newDict(a, arrow.PrimitiveTypes.Uint16, valueType, idx, dd)
}

// WidenRecord returns rec in the physical types of schema (a tenant's
// Schema.Arrow), decoding the narrow in-memory forms; rec itself when it
// already has them.
func WidenRecord(rec arrow.Record, schema *arrow.Schema) arrow.Record {
	if rec.Schema().Equal(schema) {
		return rec
	}
	cols := make([]arrow.Array, rec.NumCols())
	for i := range cols {
		cols[i] = widenColumn(rec.Column(i), schema.Field(i).Type)
	}
	return array.NewRecord(schema, cols, rec.NumRows())
}

func widenColumn(a arrow.Array, to arrow.DataType) arrow.Array {
	if arrow.TypeEqual(a.DataType(), to) {
		return a
	}
	c, ok := a.(*array.Dictionary)
	if !ok {
		return a // not a form CompactRecord makes; NewRecord reports the mismatch
	}
	d := a.Data()
	validity := d.Buffers()[0]
	if d.Offset() != 0 && validity != nil {
		// Re-align the validity bits to offset zero.
		b := array.NewBooleanBuilder(memory.DefaultAllocator)
		for i := range d.Len() {
			b.Append(a.IsValid(i))
		}
		bits := b.NewBooleanArray()
		validity = bits.Data().Buffers()[1]
		defer bits.Release()
	}
	if dt, ok := to.(*arrow.DictionaryType); ok {
		codes := DictCodes(c)
		data := array.NewDataWithDictionary(dt, d.Len(), []*memory.Buffer{validity, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(codes))}, d.NullN(), 0, c.Dictionary().Data().(*array.Data))
		defer data.Release()
		return array.MakeFromData(data)
	}
	vals := Uint64s(a)
	data := array.NewData(to, d.Len(), []*memory.Buffer{validity, memory.NewBufferBytes(arrow.Uint64Traits.CastToBytes(vals))}, nil, d.NullN(), 0)
	defer data.Release()
	return array.MakeFromData(data)
}

// DictCodes returns a dictionary array's codes as int32, whatever its index
// width (aliasing int32 indices). Null rows have unspecified codes.
func DictCodes(c *array.Dictionary) []int32 {
	switch idx := c.Indices().(type) {
	case *array.Int32:
		return idx.Int32Values()
	case *array.Uint16:
		return widenCodes(idx.Uint16Values())
	case *array.Uint8:
		return widenCodes(idx.Uint8Values())
	case *array.Int16:
		return widenCodes(idx.Int16Values())
	case *array.Int8:
		return widenCodes(idx.Int8Values())
	}
	panic("privalytics: dictionary indices of type " + c.Indices().DataType().String())
}

func widenCodes[T uint8 | uint16 | int8 | int16](idx []T) []int32 {
	out := make([]int32, len(idx))
	for i, v := range idx {
		out[i] = int32(v)
	}
	return out
}

// Uint64s returns the 64-bit values of an int64, uint64 or timestamp column
// (as bits), plain or dictionary-encoded, aliasing a plain column's buffer.
// Null rows have unspecified values. It panics on any other column type.
func Uint64s(a arrow.Array) []uint64 {
	switch c := a.(type) {
	case *array.Uint64:
		return c.Uint64Values()
	case *array.Int64:
		return arrow.Uint64Traits.CastFromBytes(arrow.Int64Traits.CastToBytes(c.Int64Values()))
	case *array.Timestamp:
		return arrow.Uint64Traits.CastFromBytes(arrow.TimestampTraits.CastToBytes(c.TimestampValues()))
	case *array.Dictionary:
		dict := Uint64s(c.Dictionary())
		codes := DictCodes(c)
		out := make([]uint64, len(codes))
		nulls := c.NullN() > 0
		for i, k := range codes {
			if nulls && c.IsNull(i) {
				continue
			}
			out[i] = dict[k]
		}
		return out
	}
	panic("privalytics: Uint64s of a " + a.DataType().String() + " column")
}
