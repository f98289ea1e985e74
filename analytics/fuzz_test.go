package analytics

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/privalytics/privalytics"
)

// FuzzDecodeQuery: no input may panic the decoder or the planner; every error is
// EINVALID; an accepted query re-encodes and decodes to the same value.
func FuzzDecodeQuery(f *testing.F) {
	for _, s := range []string{
		`{"aggregates":[{"op":"count"}],"epsilon":1}`,
		`{"where":[{"column":"type","in":["purchase"]},{"column":"ts","gte":"2025-01-01","lt":"2025-04-01"}],"group_by":[{"time":"month"}],"aggregates":[{"op":"sum","column":"amount","lower":0,"upper":100}],"bounds":{"max_groups":3,"max_rows_per_group":5},"epsilon":0.5}`,
		`{"group_by":[{"column":"category"}],"aggregates":[{"op":"mean","column":"amount","lower":0,"upper":50}],"epsilon":1,"delta":1e-6,"noise":"gaussian","time_zone":"Europe/London"}`,
		`{"group_by":[{"column":"category","keys":["tea"]}],"aggregates":[{"op":"count","contribution_bounds_per_group":{"lower":0,"upper":3}},{"op":"mean","column":"amount","contribution_bounds_per_group":{"lower":0,"upper":50}}],"epsilon":1}`,
		`{"group_by":[{"time":"month"}],"aggregates":[{"op":"sum","column":"amount"},{"op":"count"}],"epsilon":1,"delta":1e-6,"tuning":{"share":0.2}}`,
		`{"aggregates":[{"op":"count"}],"epsilon":-1}`, `{"aggregates":[],"epsilon":1}`, `{"nope":1}`, `[]`, `{"epsilon":1e999}`,
	} {
		f.Add([]byte(s))
	}
	schema := privalytics.DefaultRetailSchema()
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := DecodeQuery(body)
		if err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("decode error with code %q: %v", privalytics.ErrorCode(err), err)
			}
			return
		}
		again, err := json.Marshal(q)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		q2, err := DecodeQuery(again)
		if err != nil {
			t.Fatalf("a re-encoded query does not decode: %v\n%s", err, again)
		}
		if diff := cmp.Diff(q, q2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip changed the query (-first +second):\n%s", diff)
		}
		if _, err := NewPlan(q, schema, DefaultLimits()); err != nil && privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Fatalf("plan error with code %q: %v", privalytics.ErrorCode(err), err)
		}
	})
}
