package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/learn"
	"github.com/privalytics/privalytics/learn/fairness"
	"github.com/privalytics/privalytics/learn/registry"
)

func testModel(t *testing.T) wire.Model {
	t.Helper()
	s := learn.Schema{Numeric: []learn.Numeric{{Name: "age", Lower: 18, Upper: 95}}, Categorical: []learn.Categorical{{Name: "marital", Levels: []string{"married", "single", "divorced"}}}, Label: "y", Positive: "yes"}
	m := &learn.Model{FormatVersion: learn.FormatVersion, Version: 1, Kind: learn.KindLogistic, Schema: s, Features: s.Names(), Coefficients: []float64{-1, 0.5, 0.2, -0.1}, Epsilon: 1, Delta: 1e-5, Rho: 0.04, Charges: []learn.Charge{{What: "all", Rho: 0.04}}, Locations: 6, Threshold: 5, Rounds: 10}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var w wire.Model
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestModelsAndFairnessAuditsOverHTTP drives the model and audit routes with
// the Go client: upload two versions, list and fetch them, refuse a broken
// model; then an audit, whose plain-language report must show exactly the
// API's figures, whose stored copy must equal the answer, and whose (ε, δ)
// must be charged once; refusals decided from public information (a bad
// configuration, an unknown model) charge nothing; an audit over budget is
// refused.
func TestModelsAndFairnessAuditsOverHTTP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newFixtureOpts(t, api.DefaultLimits(), dp.Secure(), `{"id":"shop","budget":{"epsilon":1,"delta":1e-5},"period":"lifetime"}`, func(d *api.Deps) {
		d.Models = &registry.Service{Dir: dir, Mechanisms: dp.Secure()}
	})
	ctx := context.Background()
	admin := client.New(f.srv.URL, f.admin)
	qk, err := admin.CreateKey(ctx, "analyst", wire.Role(privalytics.RoleQuery))
	if err != nil {
		t.Fatal(err)
	}
	query := admin.WithToken(qk.Token)

	m := testModel(t)
	for v := 1; v <= 2; v++ {
		got, err := admin.UploadModel(ctx, "subscribe", m)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != v || got.Name != "subscribe" {
			t.Fatalf("upload %d stored version %d as %q", v, got.Version, got.Name)
		}
	}
	if _, err := query.UploadModel(ctx, "subscribe", m); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
		t.Fatalf("a query key uploaded a model: %v", err)
	}
	broken := m
	broken.Coefficients = []float64{1}
	if _, err := admin.UploadModel(ctx, "subscribe", broken); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "coefficients") {
		t.Fatalf("a model with the wrong number of coefficients: %v", err)
	}
	list, err := query.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Models) != 1 || list.Models[0].Name != "subscribe" || list.Models[0].Versions != 2 || list.Models[0].Kind != learn.KindLogistic {
		t.Fatalf("models: %+v", list.Models)
	}
	v1, err := query.Model(ctx, "subscribe", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || !reflect.DeepEqual(v1.Coefficients, m.Coefficients) || v1.Epsilon != 1 {
		t.Fatalf("version 1: %+v", v1)
	}
	if _, err := query.Model(ctx, "subscribe", 3); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Fatalf("version 3: %v", err)
	}

	// 3000 customers in three age bands; selection and outcomes differ.
	var records []wire.FairnessRecord
	for i := range 3000 {
		g := []string{"18-29", "30-49", "50+"}[i%3]
		score := 0.2 + 0.6*float64(i%7)/6
		if g == "50+" {
			score /= 2
		}
		records = append(records, wire.FairnessRecord{Group: g, Score: score, Label: i%5 < 2})
	}
	cfg := wire.FairnessConfig{Attribute: "age band", Groups: []string{"18-29", "30-49", "50+"}, Threshold: 0.5, Epsilon: 0.5, Delta: 1e-6, Confidence: 0.95}
	before, err := admin.Budget(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Refusals from public information: nothing charged.
	bad := cfg
	bad.Groups = []string{"18-29"}
	if _, err := query.CreateFairnessAudit(ctx, wire.FairnessAuditRequest{Config: bad, Records: records}); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Fatalf("one group: %v", err)
	}
	if _, err := query.CreateFairnessAudit(ctx, wire.FairnessAuditRequest{Model: "nope", Config: cfg, Records: records}); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Fatalf("unknown model: %v", err)
	}
	if b, err := admin.Budget(ctx); err != nil || b.Spent != before.Spent {
		t.Fatalf("refused audits changed the budget: %+v → %+v (%v)", before.Spent, b.Spent, err)
	}

	a, err := query.CreateFairnessAudit(ctx, wire.FairnessAuditRequest{Model: "subscribe", Config: cfg, Records: records})
	if err != nil {
		t.Fatal(err)
	}
	after, err := admin.Budget(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := after.Spent.Epsilon - before.Spent.Epsilon; d < 0.5-1e-9 || d > 0.5+1e-9 {
		t.Fatalf("the audit charged ε %g, want 0.5", d)
	}
	if a.Model != "subscribe" || a.ModelVersion != 2 || len(a.Report.Groups) != 3 || !strings.HasPrefix(a.ID, "fa_") {
		t.Fatalf("audit: %+v", a)
	}

	// The report's figures are the API's figures: every line the report
	// would print, formatted from the API's numbers, is in the markdown.
	var want []string
	for _, g := range a.Report.Groups {
		want = append(want, fmt.Sprintf("| %s | %.0f | %s (%s) | %s (%s) | %s (%s) |", g.Name, g.Count,
			fairness.Pct(g.SelectionRate.Value), interval(g.SelectionRate), fairness.Pct(g.TPR.Value), interval(g.TPR), fairness.Pct(g.FPR.Value), interval(g.FPR)))
		cal := "- " + g.Name + ":"
		for _, bin := range g.Calibration {
			cal += fmt.Sprintf(" [%.2f, %.2f): %s;", bin.Lower, bin.Upper, fairness.Pct(bin.Observed.Value))
		}
		want = append(want, cal)
	}
	sel := 0
	for _, d := range a.Report.Disparities {
		if d.Metric == fairness.Selection {
			sel++
			want = append(want, fmt.Sprintf("- **%s**: selected at %s times the reference's rate; a difference of %s (%s).", d.Group,
				fairness.Ratio(fairness.Rate(d.Ratio)), fairness.Pct(d.Difference.Value), interval(d.Difference)))
		}
	}
	if sel != 2 {
		t.Fatalf("%d selection-rate disparities for 3 groups, want 2", sel)
	}
	for _, line := range want {
		if !strings.Contains(a.Markdown, line) {
			t.Errorf("the report lacks the API's figures %q; report:\n%s", line, a.Markdown)
		}
	}
	if !strings.Contains(a.Markdown, "(ε = 0.5 per customer") {
		t.Errorf("the report does not state the audit's ε:\n%s", a.Markdown)
	}
	stored, err := admin.FairnessAudit(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stored, a) {
		t.Fatalf("the stored audit differs from the answer:\n%+v\n%+v", stored, a)
	}
	if _, err := admin.FairnessAudit(ctx, "fa_0000000000000000"); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Fatalf("unknown audit: %v", err)
	}

	// ε 0.6 more would exceed the tenant's budget of 1.
	over := cfg
	over.Epsilon = 0.6
	if _, err := query.CreateFairnessAudit(ctx, wire.FairnessAuditRequest{Config: over, Records: records}); privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Fatalf("an audit over budget: %v", err)
	}
}

func interval(r wire.FairnessRate) string { return fairness.Interval(fairness.Rate(r)) }

// TestModelsWithoutADirectory: a server started without a models directory
// says so instead of failing obscurely.
func TestModelsWithoutADirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.DefaultLimits())
	_, err := client.New(f.srv.URL, f.admin).ListModels(context.Background())
	if privalytics.ErrorCode(err) != privalytics.EUNAVAILABLE || !strings.Contains(err.Error(), "models directory") {
		t.Fatalf("no models directory: %v", err)
	}
}
