package analytics

import (
	"encoding/json"
	"testing"

	"github.com/privalytics/privalytics"
)

// FuzzViewSpec: any view body either is refused with EINVALID — from public
// information only, nothing stored — or plans for every bucket shape; never a
// panic or another code. Seeds in testdata/fuzz/FuzzViewSpec.
func FuzzViewSpec(f *testing.F) {
	f.Add([]byte(`{"name":"daily","cadence":"day","epsilon":0.1,"start":"2026-01-01","query":{"aggregates":[{"op":"count"}]}}`))
	f.Add([]byte(`{"name":"weekly","cadence":"week","epsilon":0.2,"so_far":true,"start":"2026-02-29","query":{"group_by":[{"column":"category","keys":["a"]}],"aggregates":[{"op":"sum","column":"amount","lower":0,"upper":5}]}}`))
	f.Add([]byte(`{"name":"x","cadence":"month","epsilon":1,"start":"2026-01-01","query":{"where":[{"column":"ts","gte":"2026-01-01"}],"aggregates":[{"op":"count"}]}}`))
	f.Add([]byte(`{"name":"","cadence":"year","epsilon":-1,"start":"soon","query":{"aggregates":[{"op":"count","within":3}]}}`))
	tenant := &privalytics.Tenant{ID: "shop", Schema: privalytics.DefaultRetailSchema(), Purposes: []string{DefaultPurpose}, Budget: privalytics.Cost{Epsilon: 10}}
	views := NewViews(ViewsDeps{Queries: NewService(ServiceDeps{})})
	r := ViewRequest{Tenant: tenant, KeyID: "k", FingerprintKey: []byte("0123456789abcdef0123")}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in struct {
			Name    string          `json:"name"`
			Query   json.RawMessage `json:"query"`
			Cadence string          `json:"cadence"`
			Epsilon float64         `json:"epsilon"`
			Delta   float64         `json:"delta"`
			SoFar   bool            `json:"so_far"`
			Start   string          `json:"start"`
		}
		if json.Unmarshal(body, &in) != nil || len(in.Query) == 0 {
			return
		}
		q, err := DecodeQuery(in.Query)
		if err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("query: code %q (%v), want invalid", privalytics.ErrorCode(err), err)
			}
			return
		}
		spec := privalytics.ViewSpec{Name: in.Name, Query: *q, Cadence: in.Cadence, Epsilon: in.Epsilon, Delta: in.Delta, SoFar: in.SoFar, Start: in.Start}
		plan, err := views.checkSpec(r, &spec)
		if err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("code %q (%v), want invalid", privalytics.ErrorCode(err), err)
			}
			return
		}
		if plan.Cost().Epsilon <= 0 || plan.Months() == nil {
			t.Fatalf("a valid view plans a bucket with cost %+v over months %v", plan.Cost(), plan.Months())
		}
	})
}
