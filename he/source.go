package he

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/privalytics/privalytics"
)

// The owner's plaintext input to encryption: a CSV (optionally gzipped) or
// Parquet file, of which the declared columns are read into memory, checked
// against their bounds, and capped per customer before anything is encrypted.

// EncryptRequest is what to read from a file for encryption.
type EncryptRequest struct {
	values     []ColumnSpec
	categories []categorySpec
	// Subject is the customer column. It is never encrypted or sent: it only
	// counts each customer's rows, so that at most RowsPerSubject of them
	// reach the table (the first ones in file order; which ones does not
	// matter for privacy, only how many). The DP release sizes its noise from
	// that cap, recorded in the table header.
	Subject        string
	RowsPerSubject int
	// Clip clamps values outside their declared bounds instead of refusing
	// the file.
	Clip bool
}

type categorySpec struct {
	name   string
	values []string
}

// ParseEncryptRequest reads --column NAME:MIN:MAX and --category NAME:A,B,C
// and the per-customer cap. A subject column and a cap of 1..MaxRowsPerSubject
// are required: the release's noise is only as good as the cap.
func ParseEncryptRequest(columns, categories []string, subject string, rowsPerSubject int, clip bool) (EncryptRequest, error) {
	req := EncryptRequest{Subject: subject, RowsPerSubject: rowsPerSubject, Clip: clip}
	if subject == "" {
		return req, privalytics.Errorf(privalytics.EINVALID, "--subject COLUMN is required: name the customer column, so that each customer's rows can be capped at --rows-per-subject before encryption")
	}
	if rowsPerSubject < 1 || rowsPerSubject > MaxRowsPerSubject {
		return req, privalytics.Errorf(privalytics.EINVALID, "--rows-per-subject must be 1..%d, got %d: the most rows of one customer the table keeps (more are dropped and counted)", MaxRowsPerSubject, rowsPerSubject)
	}
	seen := map[string]bool{}
	for _, c := range columns {
		parts := strings.Split(c, ":")
		if len(parts) != 3 || parts[0] == "" {
			return req, privalytics.Errorf(privalytics.EINVALID, "--column %q: write NAME:MIN:MAX, e.g. quantity:0:100", c)
		}
		lo, err1 := strconv.ParseFloat(parts[1], 64)
		hi, err2 := strconv.ParseFloat(parts[2], 64)
		if err1 != nil || err2 != nil || !(lo <= hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
			return req, privalytics.Errorf(privalytics.EINVALID, "--column %q: MIN and MAX must be finite numbers with MIN ≤ MAX", c)
		}
		if seen[parts[0]] {
			return req, privalytics.Errorf(privalytics.EINVALID, "column %q is declared twice", parts[0])
		}
		seen[parts[0]] = true
		req.values = append(req.values, ColumnSpec{Name: parts[0], Kind: KindValue, Min: lo, Max: hi})
	}
	for _, c := range categories {
		name, list, ok := strings.Cut(c, ":")
		if !ok || name == "" || list == "" {
			return req, privalytics.Errorf(privalytics.EINVALID, "--category %q: write NAME:A,B,C with the declared values, e.g. country:France,Germany", c)
		}
		if seen[name] {
			return req, privalytics.Errorf(privalytics.EINVALID, "column %q is declared twice", name)
		}
		seen[name] = true
		vals := strings.Split(list, ",")
		for i, v := range vals {
			if v == "" || slices.Contains(vals[:i], v) {
				return req, privalytics.Errorf(privalytics.EINVALID, "--category %q: a declared value is empty or repeated", c)
			}
		}
		req.categories = append(req.categories, categorySpec{name: name, values: vals})
	}
	if len(req.values)+len(req.categories) == 0 {
		return req, privalytics.Errorf(privalytics.EINVALID, "nothing to encrypt: declare columns with --column NAME:MIN:MAX or --category NAME:A,B,C")
	}
	return req, nil
}

// Source holds the requested columns of a file in memory (8 bytes per numeric
// value): the table header carries the row count, so it must be known before
// the first ciphertext is written.
type Source struct {
	// Rows are the rows kept; Dropped the rows over a customer's cap;
	// NoSubject the rows without a customer (dropped); Clipped the values
	// clamped to their bounds.
	Rows, Dropped, NoSubject, Clipped int
	req                               EncryptRequest
	perSubject                        map[string]int
	nums                              map[string][]float64
	strs                              map[string][]string
}

// Table returns the spec and the values to encrypt in table order: the
// numeric columns, then one indicator per declared category.
func (s *Source) Table(preset Preset) (TableSpec, [][]float64) {
	req := s.req
	specs := append([]ColumnSpec(nil), req.values...)
	var values [][]float64
	for _, c := range req.values {
		values = append(values, s.nums[c.Name])
	}
	for _, c := range req.categories {
		sp, cols := IndicatorColumns(c.name, c.values, s.strs[c.name])
		specs = append(specs, sp...)
		values = append(values, cols...)
	}
	return TableSpec{Preset: preset, Columns: specs, RowsPerSubject: req.RowsPerSubject}, values
}

// keep counts a row of subject and says whether it is kept: within the cap,
// and with a customer (a row without one cannot be bounded, so it is dropped
// and counted in NoSubject).
func (s *Source) keep(subject string) bool {
	if subject == "" {
		s.NoSubject++
		return false
	}
	if s.perSubject[subject] >= s.req.RowsPerSubject {
		s.Dropped++
		return false
	}
	s.perSubject[subject]++
	return true
}

// ReadSource reads the request's columns of a csv or parquet file.
func ReadSource(path, format string, req EncryptRequest) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := &Source{req: req, perSubject: map[string]int{}, nums: map[string][]float64{}, strs: map[string][]string{}}
	switch format {
	case "csv":
		var r io.Reader = bufio.NewReaderSize(f, 1<<20)
		if strings.HasSuffix(strings.ToLower(path), ".gz") {
			gz, err := gzip.NewReader(r)
			if err != nil {
				return nil, privalytics.Errorf(privalytics.EINVALID, "%s: not gzip: %v", path, err)
			}
			defer gz.Close()
			r = gz
		}
		err = s.readCSV(r, req)
	case "parquet":
		err = s.readParquet(f, req)
	default:
		err = privalytics.Errorf(privalytics.EINVALID, "he encrypt reads csv or parquet, not %q", format)
	}
	if err != nil {
		return nil, err
	}
	if s.Rows == 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "%s has no rows to encrypt", path)
	}
	return s, nil
}

func (s *Source) readCSV(r io.Reader, req EncryptRequest) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return privalytics.Errorf(privalytics.EINVALID, "CSV header: %v", err)
	}
	index := map[string]int{}
	for i, h := range header {
		index[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	col := func(name string) (int, error) {
		i, ok := index[name]
		if !ok {
			return 0, privalytics.Errorf(privalytics.EINVALID, "the CSV has no column %q; it has %s", name, strings.Join(header, ", "))
		}
		return i, nil
	}
	numIdx, catIdx, subIdx, err := req.columnIndexes(col)
	if err != nil {
		return err
	}
	line := 1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line++
		if err != nil {
			return privalytics.Errorf(privalytics.EINVALID, "CSV line %d: %v", line, err)
		}
		if !s.keep(strings.TrimSpace(rec[subIdx])) {
			continue
		}
		for i, c := range req.values {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[numIdx[i]]), 64)
			if err != nil {
				return privalytics.Errorf(privalytics.EINVALID, "CSV line %d, column %q: %q is not a number; fix or drop the row", line, c.Name, rec[numIdx[i]])
			}
			if err := s.addNum(c, v, line); err != nil {
				return err
			}
		}
		for i, c := range req.categories {
			s.strs[c.name] = append(s.strs[c.name], strings.TrimSpace(rec[catIdx[i]]))
		}
		s.Rows++
	}
}

func (s *Source) addNum(c ColumnSpec, v float64, row int) error {
	if s.req.Clip && !math.IsNaN(v) && (v < c.Min || v > c.Max) {
		v = math.Min(math.Max(v, c.Min), c.Max)
		s.Clipped++
	}
	if !(v >= c.Min && v <= c.Max) {
		return privalytics.Errorf(privalytics.EINVALID, "row %d, column %q: %g is outside the declared bounds [%g, %g]; widen --column %s:MIN:MAX or pass --clip", row, c.Name, v, c.Min, c.Max, c.Name)
	}
	s.nums[c.Name] = append(s.nums[c.Name], v)
	return nil
}

func (s *Source) readParquet(f *os.File, req EncryptRequest) error {
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return privalytics.Errorf(privalytics.EINVALID, "not a Parquet file: %v", err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 65536}, memory.DefaultAllocator)
	if err != nil {
		return privalytics.Errorf(privalytics.EINVALID, "Parquet: %v", err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return privalytics.Errorf(privalytics.EINVALID, "Parquet: %v", err)
	}
	defer rr.Release()
	sch := rr.Schema()
	col := func(name string) (int, error) {
		idx := sch.FieldIndices(name)
		if len(idx) != 1 {
			var names []string
			for _, f := range sch.Fields() {
				names = append(names, f.Name)
			}
			return 0, privalytics.Errorf(privalytics.EINVALID, "the Parquet file has no column %q; it has %s", name, strings.Join(names, ", "))
		}
		return idx[0], nil
	}
	numIdx, catIdx, subIdx, err := req.columnIndexes(col)
	if err != nil {
		return err
	}
	fileRows := 0 // rows read, kept or not, for error messages
	var kept []int
	for rr.Next() {
		rec := rr.Record()
		n := int(rec.NumRows())
		sub := rec.Column(subIdx)
		kept = kept[:0]
		for r := range n {
			if s.keep(stringAt(sub, r)) {
				kept = append(kept, r)
			}
		}
		for i, c := range req.values {
			arr := rec.Column(numIdx[i])
			for _, r := range kept {
				v, err := numberAt(arr, r)
				if err != nil {
					return privalytics.Errorf(privalytics.EINVALID, "Parquet row %d, column %q: %v", fileRows+r+1, c.Name, err)
				}
				if err := s.addNum(c, v, fileRows+r+1); err != nil {
					return err
				}
			}
		}
		for i, c := range req.categories {
			arr := rec.Column(catIdx[i])
			for _, r := range kept {
				s.strs[c.name] = append(s.strs[c.name], stringAt(arr, r))
			}
		}
		s.Rows += len(kept)
		fileRows += n
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return privalytics.Errorf(privalytics.EINVALID, "Parquet: %v", err)
	}
	return nil
}

func numberAt(arr arrow.Array, r int) (float64, error) {
	if arr.IsNull(r) {
		return 0, errors.New("null; fill or drop the row")
	}
	switch a := arr.(type) {
	case *array.Float64:
		return a.Value(r), nil
	case *array.Float32:
		return float64(a.Value(r)), nil
	case *array.Int64:
		return float64(a.Value(r)), nil
	case *array.Int32:
		return float64(a.Value(r)), nil
	case *array.Int16:
		return float64(a.Value(r)), nil
	case *array.Int8:
		return float64(a.Value(r)), nil
	case *array.Uint32:
		return float64(a.Value(r)), nil
	case *array.Uint16:
		return float64(a.Value(r)), nil
	case *array.Uint8:
		return float64(a.Value(r)), nil
	case *array.String:
		return strconv.ParseFloat(strings.TrimSpace(a.Value(r)), 64)
	case *array.LargeString:
		return strconv.ParseFloat(strings.TrimSpace(a.Value(r)), 64)
	}
	return 0, fmt.Errorf("type %s is not numeric", arr.DataType())
}

func stringAt(arr arrow.Array, r int) string {
	if arr.IsNull(r) {
		return ""
	}
	switch a := arr.(type) {
	case *array.String:
		return strings.TrimSpace(a.Value(r))
	case *array.LargeString:
		return strings.TrimSpace(a.Value(r))
	}
	return arr.ValueStr(r)
}

// columnIndexes finds the request's value, category and customer columns in a
// file through col (the file format's lookup, whose error names the columns the
// file has).
func (req EncryptRequest) columnIndexes(col func(string) (int, error)) (num, cat []int, subject int, err error) {
	num = make([]int, len(req.values))
	for i, c := range req.values {
		if num[i], err = col(c.Name); err != nil {
			return nil, nil, 0, err
		}
	}
	cat = make([]int, len(req.categories))
	for i, c := range req.categories {
		if cat[i], err = col(c.name); err != nil {
			return nil, nil, 0, err
		}
	}
	subject, err = col(req.Subject)
	return num, cat, subject, err
}
