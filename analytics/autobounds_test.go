package analytics

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/dp/dptest"
)

// autoEvents: n customers with one purchase each, amounts uniform in [3, 5)
// (milli-units), plus one customer with a huge amount.
func autoEvents(n int) []event {
	rng := newRNG(7, 11)
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	out := make([]event, 0, n+1)
	for i := range n {
		out = append(out, event{subj: uint64(i), ts: start, typ: "purchase", channel: "web", amount: 3000 + rng.Int64N(2000), hasAmt: true})
	}
	return append(out, event{subj: uint64(n), ts: start, typ: "purchase", channel: "web", amount: 1_000_000_000, hasAmt: true})
}

func autoQuery(op string) *privalytics.Query {
	return &privalytics.Query{Aggregates: []privalytics.Aggregate{{Op: op, Column: "amount", Bounds: "auto"}}, Epsilon: 1}
}

func TestAutoBoundsNoiseFree(t *testing.T) {
	t.Parallel()
	evs := autoEvents(3000)
	snap := snapshotOf(evs, 512)
	res := run(t, autoQuery("sum"), snap, dptest.NoNoise())
	info := res.Aggregates[0]
	// Values in [3, 5) fill the bins [2, 4) and [4, 8); the outlier's bin holds one
	// customer, far below the threshold; zero is always inside.
	if !info.AutoBounds || info.Lower != 0 || info.Upper != 8 {
		t.Fatalf("bounds %+v, want auto [0, 8]", info)
	}
	if want := 0.2 * 1.0; math.Abs(info.BoundsEpsilon-want) > 1e-12 || info.Epsilon != 1 {
		t.Errorf("bounds ε %v of %v, want %v of 1", info.BoundsEpsilon, info.Epsilon, want)
	}
	// The sum is the plain sum with the outlier clamped to 8.
	want := 8.0
	for _, e := range evs[:len(evs)-1] {
		want += float64(e.amount) / 1000
	}
	if got := res.Rows[0].Cells[0].Value; math.Abs(got-want) > 1e-6 {
		t.Errorf("sum %v, want %v", got, want)
	}
}

func TestAutoBoundsSmallDataFallsBackToFullestBin(t *testing.T) {
	t.Parallel()
	// 40 customers cannot clear the threshold at ε = 0.2 (it needs hundreds):
	// the range comes from the fullest bin.
	res := run(t, autoQuery("mean"), snapshotOf(autoEvents(40), 64), dptest.NoNoise())
	if info := res.Aggregates[0]; info.Lower != 0 || (info.Upper != 4 && info.Upper != 8) {
		t.Fatalf("bounds [%v, %v], want [0, 4] or [0, 8]", info.Lower, info.Upper)
	}
}

func TestAutoBoundsNegativeValues(t *testing.T) {
	t.Parallel()
	evs := autoEvents(3000)
	for i := range evs {
		evs[i].amount = -evs[i].amount
	}
	res := run(t, autoQuery("sum"), snapshotOf(evs, 512), dptest.NoNoise())
	if info := res.Aggregates[0]; info.Lower != -8 || info.Upper != 0 {
		t.Fatalf("bounds [%v, %v], want [-8, 0]", info.Lower, info.Upper)
	}
}

func TestAutoBoundsUnderSecureNoise(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(autoEvents(20000), 4096)
	for range 5 {
		res := run(t, autoQuery("mean"), snap, dp.Secure())
		info := res.Aggregates[0]
		// Noise of scale 8/0.2 = 40 against thousands of rows per bin: the range is
		// [0, 8] except with negligible probability.
		if info.Lower != 0 || info.Upper != 8 {
			t.Fatalf("bounds [%v, %v], want [0, 8]", info.Lower, info.Upper)
		}
		if m := res.Rows[0].Cells[0].Value; m < 3.8 || m > 4.2 {
			t.Errorf("mean %v, want ≈ 4", m)
		}
	}
}

func TestExecuteRefusesUnresolvedAutoBounds(t *testing.T) {
	t.Parallel()
	p, err := NewPlan(autoQuery("sum"), schema, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Execute(context.Background(), p, snapshotOf(autoEvents(10), 8)); err == nil {
		t.Fatal("Execute ran a plan whose bounds were never estimated")
	}
	// The cost does not change: the bounds' ε is part of the aggregate's.
	if p.Cost().Epsilon != 1 {
		t.Errorf("cost %v, want ε = 1", p.Cost())
	}
}

func TestMagnitudeBins(t *testing.T) {
	t.Parallel()
	b := magnitudeBins{minExp: -2, k: 5} // edges 0.25, 0.5, 1, 2, 4, 8
	for _, tc := range []struct {
		x    float64
		want int
	}{{0, 0}, {0.2, 0}, {0.25, 1}, {0.49, 1}, {0.5, 2}, {1, 3}, {3.9, 4}, {4, 5}, {1e9, 5}, {-0.1, 6}, {-1, 9}, {-1e9, 11}} {
		if got := b.bin(tc.x); got != tc.want {
			t.Errorf("bin(%v) = %d, want %d", tc.x, got, tc.want)
		}
	}
	if b.edge(0) != 0.25 || b.edge(5) != 8 {
		t.Errorf("edges %v %v", b.edge(0), b.edge(5))
	}
}

// TestAutoRangeIgnoresIsolatedBins: a bin that clears the threshold far above
// the run of the fullest one (more than maxGap empty magnitudes between) is
// taken for a spurious count, on either sign, unless it clears the threshold
// by isolatedScales noise scales; a bin next to the run widens the range.
// The counts are given as they come out of the noise (dptest.NoNoise), so
// each case is exact.
func TestAutoRangeIgnoresIsolatedBins(t *testing.T) {
	t.Parallel()
	b := magnitudeBins{minExp: 0, k: 40}
	const rows, eps = 8, 0.2
	scale := float64(rows) / eps
	threshold := scale * math.Log(float64(b.n())/(2*autoFalseBin))
	body := func() []int64 {
		h := make([]int64, b.n())
		h[b.bin(3)], h[b.bin(5)], h[b.bin(7)] = 4000, 9000, 5000 // values up to 8
		return h
	}
	for _, tc := range []struct {
		name   string
		at     float64 // the extra bin's value
		count  float64
		lo, hi float64
	}{
		{"spurious far above", 3e8, threshold + scale, 0, 8},
		{"spurious far below zero", -3e8, threshold + scale, 0, 8},
		{"next to the run", 20, threshold + scale, 0, 32},
		{"far above, well clear of the noise", 3e8, threshold + (isolatedScales+1)*scale, 0, b.edge(b.bin(3e8))},
	} {
		h := body()
		h[b.bin(tc.at)] = int64(tc.count)
		lo, hi, err := noisyRange(h, b, rows, eps, dptest.NoNoise())
		if err != nil {
			t.Fatal(err)
		}
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("%s: range [%g, %g], want [%g, %g]", tc.name, lo, hi, tc.lo, tc.hi)
		}
	}
}
