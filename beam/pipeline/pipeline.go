// Package pipeline compiles a Privalytics query into a Privacy on Beam
// pipeline: the same plan as the in-process engine (analytics.NewPlan compiles
// the filters and group keys, per-row clamping included), read from an
// exported, pseudonymised Parquet snapshot, aggregated and noised by pbeam
// with the plan's mechanisms and budgets. Data-derived group keys pass one
// pbeam.SelectPartitions on the plan's selection budget and every aggregate
// then uses the selected keys; public keys are passed as public partitions.
package pipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/google/differential-privacy/privacy-on-beam/v3/pbeam"

	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/dp"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*Row)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*scanFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*valueFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*formatFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*Pair)(nil)).Elem())
	beam.RegisterFunction(rowKey)
	beam.RegisterFunction(pairKV)
}

// Row is one kept event: its group key (JSON of the key values) and, per
// aggregate, its clamped value (NaN: none).
type Row struct {
	Key    string
	Values []float64
}

// Build adds the query's pipeline to s: files are the snapshot's Parquet files;
// the released cells are written as JSON lines (analytics.RemoteCell) to output.
// test selects pbeam's noise-free test mode (exactness tests only).
func Build(s beam.Scope, files []string, spec analytics.RemoteSpec, output string, test bool) error {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	var aggEps, aggDelta float64
	for _, a := range spec.Aggregates {
		aggEps += a.Budget.Epsilon
		aggDelta += a.Budget.Delta
	}
	params := pbeam.PrivacySpecParams{AggregationEpsilon: aggEps, AggregationDelta: aggDelta}
	if spec.Selection {
		params.PartitionSelectionEpsilon, params.PartitionSelectionDelta = spec.SelectionBudget.Epsilon, spec.SelectionBudget.Delta
	}
	if test {
		params.TestMode = pbeam.TestModeWithContributionBounding
	}
	ps, err := pbeam.NewPrivacySpec(params)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	var noise pbeam.NoiseKind = pbeam.LaplaceNoise{}
	if spec.Noise == string(dp.Gaussian) {
		noise = pbeam.GaussianNoise{}
	}

	rows := beam.ParDo(s, &scanFn{Spec: string(specJSON)}, beam.CreateList(s, files))
	pcol := pbeam.MakePrivate(s, rows, ps)
	keys := pbeam.ParDo(s, rowKey, pcol)
	var parts any
	if spec.Selection {
		parts = pbeam.SelectPartitions(s, keys, pbeam.SelectPartitionsParams{Epsilon: spec.SelectionBudget.Epsilon, Delta: spec.SelectionBudget.Delta, MaxPartitionsContributed: spec.L0})
	} else {
		public := make([]string, len(spec.PublicKeys))
		for i, k := range spec.PublicKeys {
			b, _ := json.Marshal(k)
			public[i] = string(b)
		}
		parts = public
	}
	var outs []beam.PCollection
	for i, a := range spec.Aggregates {
		e, d := a.Budget.Epsilon, a.Budget.Delta
		var res beam.PCollection
		switch a.Op {
		case "count":
			res = pbeam.Count(s, keys, pbeam.CountParams{NoiseKind: noise, AggregationEpsilon: e, AggregationDelta: d, PublicPartitions: parts, MaxPartitionsContributed: spec.L0, MaxValue: spec.LInf})
		case "distinct_customers":
			res = pbeam.DistinctPrivacyID(s, keys, pbeam.DistinctPrivacyIDParams{NoiseKind: noise, AggregationEpsilon: e, AggregationDelta: d, PublicPartitions: parts, MaxPartitionsContributed: spec.L0})
		case "sum":
			// Rows arrive clamped to [lower, upper]; pbeam clamps a customer's
			// total per group, so the range of at most linf rows (with 0, so
			// that a small total is never raised) gives the same sensitivity,
			// linf × max(|lower|, |upper|), as the in-process engine.
			lo, hi := math.Min(0, a.Lower*float64(spec.LInf)), math.Max(0, a.Upper*float64(spec.LInf))
			res = pbeam.SumPerKey(s, values(s, rows, ps, i), pbeam.SumParams{NoiseKind: noise, AggregationEpsilon: e, AggregationDelta: d, PublicPartitions: parts, MaxPartitionsContributed: spec.L0, MinValue: lo, MaxValue: hi})
		case "mean":
			res = pbeam.MeanPerKey(s, values(s, rows, ps, i), pbeam.MeanParams{NoiseKind: noise, AggregationEpsilon: e, AggregationDelta: d, PublicPartitions: parts, MaxPartitionsContributed: spec.L0, MaxContributionsPerPartition: spec.LInf, MinValue: a.Lower, MaxValue: a.Upper})
		case "median", "quantile":
			res = pbeam.QuantilesPerKey(s, values(s, rows, ps, i), pbeam.QuantilesParams{NoiseKind: noise, AggregationEpsilon: e, AggregationDelta: d, PublicPartitions: parts, MaxPartitionsContributed: spec.L0, MaxContributionsPerPartition: spec.LInf, MinValue: a.Lower, MaxValue: a.Upper, Ranks: []float64{a.Rank}})
		default:
			return fmt.Errorf("pipeline: aggregate %s: Privacy on Beam has no %s", a.Name, a.Op)
		}
		outs = append(outs, beam.ParDo(s, &formatFn{Aggregate: i}, res))
	}
	textio.Write(s, output, beam.Flatten(s, outs...))
	return nil
}

// values is the private collection of aggregate i's values by group key.
// pbeam.ParDo takes functions only, so the projection to one aggregate runs
// before MakePrivate (same privacy IDs, same PrivacySpec and budget).
func values(s beam.Scope, rows beam.PCollection, ps *pbeam.PrivacySpec, i int) pbeam.PrivatePCollection {
	pairs := beam.ParDo(s, &valueFn{Aggregate: i}, rows)
	return pbeam.ParDo(s, pairKV, pbeam.MakePrivate(s, pairs, ps))
}

// Pair is one row's value of one aggregate and its group key.
type Pair struct {
	Key   string
	Value float64
}

func pairKV(p Pair) (string, float64) { return p.Key, p.Value }

func rowKey(r Row) string { return r.Key }

// scanFn reads one Parquet file of the snapshot and emits its kept rows keyed
// by the customer's pseudonym, through the plan's own filter and group stage.
type scanFn struct {
	Spec string
	plan *analytics.Plan
}

func (f *scanFn) Setup() error {
	var spec analytics.RemoteSpec
	if err := json.Unmarshal([]byte(f.Spec), &spec); err != nil {
		return err
	}
	p, err := analytics.NewPlan(&spec.Query, spec.Schema, analytics.DefaultLimits())
	if err != nil {
		return fmt.Errorf("pipeline: the query does not plan here: %w", err)
	}
	f.plan = p
	return nil
}

func (f *scanFn) ProcessElement(name string, emit func(string, Row)) error {
	chunks, err := analytics.ReadSnapshotFile(name)
	if err != nil {
		return err
	}
	for _, ch := range chunks {
		ids := ch.Record.Column(0)
		err := f.plan.ScanChunk(ch, func(row int, key []string, vals []float64) {
			k, _ := json.Marshal(key)
			id := strconv.FormatUint(ids.(interface{ Value(int) uint64 }).Value(row), 16)
			emit(id, Row{Key: string(k), Values: append([]float64(nil), vals...)})
		})
		ch.Record.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// valueFn projects one aggregate's value; rows without one are left out.
type valueFn struct{ Aggregate int }

func (f *valueFn) ProcessElement(id string, r Row, emit func(string, Pair)) {
	if v := r.Values[f.Aggregate]; !math.IsNaN(v) {
		emit(id, Pair{Key: r.Key, Value: v})
	}
}

// formatFn writes one released cell as a JSON line.
type formatFn struct{ Aggregate int }

func (f *formatFn) ProcessElement(key string, v beam.V) (string, error) {
	var value float64
	switch v := v.(type) {
	case int64:
		value = float64(v)
	case float64:
		value = v
	case []float64:
		value = v[0]
	default:
		return "", fmt.Errorf("pipeline: unexpected result type %T", v)
	}
	var k []string
	if err := json.Unmarshal([]byte(key), &k); err != nil {
		return "", err
	}
	b, err := json.Marshal(analytics.RemoteCell{Aggregate: f.Aggregate, Key: k, Value: value})
	return string(b), err
}
