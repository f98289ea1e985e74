package learn

import (
	"math/rand/v2"
	"sort"
	"strings"
)

// Partitioning rows is bookkeeping for simulations and benchmarks, not noise:
// it uses a seeded PRNG so that a run can be reproduced.

// HoldOut splits rows into a training and a test part (testShare of rows).
func HoldOut(r *Rows, testShare float64, seed uint64) (train, test *Rows) {
	rng := rand.New(rand.NewPCG(seed, 1))
	train, test = &Rows{}, &Rows{}
	for i := range r.X {
		dst := train
		if rng.Float64() < testShare {
			dst = test
		}
		dst.X = append(dst.X, r.X[i])
		dst.Y = append(dst.Y, r.Y[i])
		dst.Fields = append(dst.Fields, r.Fields[i])
	}
	return train, test
}

// SplitRandom deals rows to n locations at random.
func SplitRandom(r *Rows, n int, seed uint64) []*Rows {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([]*Rows, n)
	for i := range out {
		out[i] = &Rows{}
	}
	for i := range r.X {
		out[rng.IntN(n)].add(r, i)
	}
	return out
}

// SplitBy deals rows to n locations by the value of a field (e.g. job): each
// value goes wholly to one location, values assigned largest first to the
// location with the fewest rows, so locations differ in who their customers are.
func SplitBy(r *Rows, field string, n int) []*Rows {
	byValue := map[string][]int{}
	for i, f := range r.Fields {
		byValue[f[field]] = append(byValue[f[field]], i)
	}
	values := make([]string, 0, len(byValue))
	for v := range byValue {
		values = append(values, v)
	}
	sort.Slice(values, func(a, b int) bool {
		if len(byValue[values[a]]) != len(byValue[values[b]]) {
			return len(byValue[values[a]]) > len(byValue[values[b]])
		}
		return values[a] < values[b]
	})
	out := make([]*Rows, n)
	for i := range out {
		out[i] = &Rows{}
	}
	for _, v := range values {
		small := 0
		for i := range out {
			if len(out[i].X) < len(out[small].X) {
				small = i
			}
		}
		for _, i := range byValue[v] {
			out[small].add(r, i)
		}
	}
	return out
}

func (dst *Rows) add(src *Rows, i int) {
	dst.X = append(dst.X, src.X[i])
	dst.Y = append(dst.Y, src.Y[i])
	dst.Fields = append(dst.Fields, src.Fields[i])
}

// Concat joins the locations' rows (for the centralised baseline).
func Concat(parts []*Rows) *Rows {
	out := &Rows{}
	for _, p := range parts {
		for i := range p.X {
			out.add(p, i)
		}
	}
	return out
}

// SplitCSV deals a CSV's data lines (after its header) to n locations at
// random, holding out testShare of them: each location gets a CSV of its
// own (header included), as it would keep its own customers' file.
func SplitCSV(raw []byte, n int, testShare float64, seed uint64) (parts [][]byte, test []byte) {
	lines := strings.Split(strings.TrimRight(string(raw), "\r\n"), "\n")
	if len(lines) == 0 || n < 1 {
		return nil, nil
	}
	header := lines[0] + "\n"
	rng := rand.New(rand.NewPCG(seed, 3))
	bufs := make([]strings.Builder, n+1)
	for i := range bufs {
		bufs[i].WriteString(header)
	}
	for _, l := range lines[1:] {
		dst := 1 + rng.IntN(n)
		if rng.Float64() < testShare {
			dst = 0
		}
		bufs[dst].WriteString(l)
		bufs[dst].WriteByte('\n')
	}
	for i := 1; i <= n; i++ {
		parts = append(parts, []byte(bufs[i].String()))
	}
	return parts, []byte(bufs[0].String())
}
