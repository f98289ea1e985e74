package analytics

import (
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

func TestAccuracyFirstPicksSmallestEpsilon(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		q    string
	}{
		{"count", `{"aggregates":[{"op":"count","within":10}]}`},
		{"two targets", `{"group_by":[{"column":"channel","keys":["web","app"]}],"aggregates":[{"op":"count","within":25},{"op":"sum","column":"amount","lower":0,"upper":50,"within":400}],"bounds":{"max_groups":2,"max_rows_per_group":3}}`},
		{"mean gaussian", `{"aggregates":[{"op":"mean","column":"amount","lower":0,"upper":100,"within":0.5}],"noise":"gaussian","delta":1e-6}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, err := DecodeQuery([]byte(tc.q))
			if err != nil {
				t.Fatal(err)
			}
			p, ex := explained(t, q)
			eps := ex.Cost.Epsilon
			if !ex.AccuracyFirst || eps <= 0 {
				t.Fatalf("explanation %+v: want accuracy_first with a chosen ε", ex)
			}
			meets := func(ex *Explanation) bool {
				for i, a := range q.Aggregates {
					if a.Within != 0 && ex.Aggregates[i].HalfWidth > a.Within {
						return false
					}
				}
				return true
			}
			if !meets(ex) {
				t.Fatalf("ε = %v misses a target: %+v", eps, ex.Aggregates)
			}
			// Minimal up to the rounding to three digits: 1% less misses a target.
			smaller := *q
			smaller.Aggregates = append([]privalytics.Aggregate(nil), q.Aggregates...)
			for i := range smaller.Aggregates {
				smaller.Aggregates[i].Within = 0
			}
			smaller.Epsilon = eps * 0.99
			// The bounds accuracy-first planned with, given: without any, a
			// query of counts would be tuned and explain something else.
			smaller.Bounds = p.q.Bounds
			ps, err := NewPlan(&smaller, schema, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			exs, err := ps.Explain(dp.Secure())
			if err != nil {
				t.Fatal(err)
			}
			if meets(exs) {
				t.Errorf("ε = %v meets every target too; %v is not the smallest", eps*0.99, eps)
			}
		})
	}
}

func TestAccuracyFirstErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ q, want string }{
		{`{"aggregates":[{"op":"count","within":10}],"epsilon":1}`, "not both"},
		{`{"aggregates":[{"op":"count","within":-1}]}`, "positive"},
		{`{"aggregates":[{"op":"median","column":"amount","lower":0,"upper":9,"within":1}]}`, "depends on the data"},
		{`{"aggregates":[{"op":"sum","column":"amount","bounds":"auto","within":1}]}`, "fixed bounds"},
		{`{"aggregates":[{"op":"sum","column":"amount","lower":0,"upper":1000000,"within":0.01}]}`, "more than ε"},
	} {
		q, err := DecodeQuery([]byte(tc.q))
		if err == nil {
			_, err = NewPlan(q, schema, DefaultLimits())
		}
		if privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want invalid mentioning %q", tc.q, err, tc.want)
		}
	}
}

func TestRoundUp3(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ x, want float64 }{{0.123401, 0.124}, {1.5, 1.5}, {0.00012345, 0.000124}, {99.91, 100}, {12.3, 12.3}} {
		if got := roundUp3(tc.x); got != tc.want {
			t.Errorf("roundUp3(%v) = %v, want %v", tc.x, got, tc.want)
		}
		if got := roundUp3(tc.x); got < tc.x {
			t.Errorf("roundUp3(%v) = %v is below it", tc.x, got)
		}
	}
}
