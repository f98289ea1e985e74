package api_test

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/notice"
)

// jsonFields lists the JSON names of t's fields, embedded structs flattened,
// with the nested struct types' fields under "name.": the shape a client
// decodes. Fields tagged "-" are not sent, so they are not listed.
func jsonFields(t reflect.Type, prefix string, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() == "time" || seen[t] {
		return nil
	}
	seen[t] = true
	defer delete(seen, t)
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type, prefix, seen)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, prefix+name)
		out = append(out, jsonFields(f.Type, prefix+name+".", seen)...)
	}
	sort.Strings(out)
	return out
}

// The wire bodies and the domain types api converts them from send the same
// JSON fields, so nothing the server says is lost on the SDK's side and
// nothing the SDK sends is unknown to the server. A field added to one side
// only fails here.
func TestWireMirrorsDomain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		domain, wire any
	}{
		{"Query", privalytics.Query{}, wire.Query{}},
		{"Result", privalytics.Result{}, wire.Result{}},
		{"BudgetStatus", privalytics.BudgetStatus{}, wire.BudgetStatus{}},
		{"KeyBudget", privalytics.KeyBudget{}, wire.KeyBudget{}},
		{"Charge", privalytics.Charge{}, wire.Charge{}},
		{"BudgetChange", privalytics.BudgetChange{}, wire.BudgetChange{}},
		{"Explanation", analytics.Explanation{}, wire.Explanation{}},
		{"Tenant", privalytics.Tenant{}, wire.Tenant{}},
		{"APIKey", privalytics.APIKey{}, wire.APIKey{}},
		{"Consent", privalytics.Consent{}, wire.Consent{}},
		{"AuditEntry", privalytics.AuditEntry{}, wire.AuditEntry{}},
		{"ErasureReceipt", privalytics.ErasureReceipt{}, wire.ErasureReceipt{}},
		{"AppendResult", privalytics.AppendResult{}, wire.AppendResult{}},
		{"Notice", notice.Notice{}, wire.Notice{}},
		{"ViewCost", analytics.ViewCost{}, wire.ViewCost{}},
		{"RollupRow", analytics.RollupRow{}, wire.RollupRow{}},
		{"Dashboard", privalytics.Dashboard{}, wire.Dashboard{}},
	} {
		d := jsonFields(reflect.TypeOf(tc.domain), "", map[reflect.Type]bool{})
		w := jsonFields(reflect.TypeOf(tc.wire), "", map[reflect.Type]bool{})
		if len(d) == 0 {
			t.Fatalf("%s: no fields found; the walk is broken", tc.name)
		}
		if diff := cmp.Diff(d, w); diff != "" {
			t.Errorf("%s: JSON fields differ (-domain +wire):\n%s", tc.name, diff)
		}
	}
}
