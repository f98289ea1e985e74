package fairness

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/dp/dptest"
	"github.com/privalytics/privalytics/learn"
)

// bankRecords scores the bank-marketing customers with the centralised
// logistic fit (the audit takes any model's predictions) and returns their
// records by age band and by marital status; skips when the data is absent.
func bankRecords(t *testing.T) (byAge, byMarital []Record) {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(here), "..", "..", "..", "shared", "data", "bank_marketing.csv")
	f, err := os.Open(p)
	if err != nil {
		t.Skipf("SKIPPED: needs the bank-marketing file at %s (present in CI, absent in a fresh clone): %v", p, err)
	}
	defer f.Close()
	rows, err := learn.BankSchema("y").ReadCSV(f)
	if err != nil {
		t.Fatal(err)
	}
	beta, err := learn.CentralLogistic(rows)
	if err != nil {
		t.Fatal(err)
	}
	m := &learn.Model{Kind: learn.KindLogistic, Coefficients: beta}
	for i, x := range rows.X {
		s, label := m.Predict(x), rows.Y[i] == 1
		age, err := strconv.ParseFloat(rows.Fields[i]["age"], 64)
		if err != nil {
			t.Fatal(err)
		}
		byAge = append(byAge, Record{Group: AgeBand(age), Score: s, Label: label})
		byMarital = append(byMarital, Record{Group: rows.Fields[i]["marital"], Score: s, Label: label})
	}
	return byAge, byMarital
}

func configs() map[string]Config {
	base := Config{Threshold: 0.5, Epsilon: 1, Delta: 1e-5, Confidence: 0.99}
	age, marital := base, base
	age.Attribute, age.Groups = "age band", AgeBands
	marital.Attribute, marital.Groups = "marital status", []string{"married", "single", "divorced"}
	return map[string]Config{"age": age, "marital": marital}
}

// TestAuditIntervalsCover runs the audit 200 times per attribute with the
// secure noise and counts how often each released rate's interval covers the
// exact rate (the same audit without noise). Intervals are at 99%; each is a
// union bound, so each covers with probability ≥ 0.99. The test wants ≥ 190
// of 200 (95%) for every group, metric and calibration bin: a false failure
// needs ≥ 11 misses where 2 are expected, P ≤ 1e-5 per check (binomial tail),
// below 2e-3 over the ≈ 130 checks.
func TestAuditIntervalsCover(t *testing.T) {
	byAge, byMarital := bankRecords(t)
	for name, recs := range map[string][]Record{"age": byAge, "marital": byMarital} {
		cfg := configs()[name]
		exact, err := Audit(recs, cfg, dptest.NoNoise())
		if err != nil {
			t.Fatal(err)
		}
		// Reference fixed so that the disparities compare the same groups in
		// every run.
		cfg.Reference = exact.Reference
		if exact, err = Audit(recs, cfg, dptest.NoNoise()); err != nil {
			t.Fatal(err)
		}
		misses := map[string]int{}
		const runs = 200
		for range runs {
			rep, err := Audit(recs, cfg, dp.Secure())
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range rep.Groups {
				e := exact.Groups[i]
				check(misses, g.Name+" selection", g.SelectionRate, e.SelectionRate.Value)
				check(misses, g.Name+" TPR", g.TPR, e.TPR.Value)
				check(misses, g.Name+" FPR", g.FPR, e.FPR.Value)
				for b, bin := range g.Calibration {
					if exact.Groups[i].Calibration[b].Count > 0 {
						check(misses, fmt.Sprintf("%s calibration %d", g.Name, b), bin.Observed, e.Calibration[b].Observed.Value)
					}
				}
			}
			for i, d := range rep.Disparities {
				e := exact.Disparities[i]
				check(misses, d.Group+" "+d.Metric+" difference", d.Difference, e.Difference.Value)
				check(misses, d.Group+" "+d.Metric+" ratio", d.Ratio, e.Ratio.Value)
			}
		}
		worst, total := 0, 0
		for k, m := range misses {
			total += m
			worst = max(worst, m)
			if m > runs-190 {
				t.Errorf("%s: %s missed the exact value in %d of %d runs; want ≤ 10", name, k, m, runs)
			}
		}
		fmt.Printf("audit by %s: %d runs at 99%%, most misses of one figure %d, total misses %d\n", name, runs, worst, total)
		// For the record, not asserted: the same at the report's default 95%.
		// Each interval is a union bound, so coverage is ≥ 95% by
		// construction; an assertion at 190/200 on ~100 figures would fail
		// falsely too often to be useful.
		cfg95 := cfg
		cfg95.Confidence = 0.95
		m95 := map[string]int{}
		for range runs {
			rep, err := Audit(recs, cfg95, dp.Secure())
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range rep.Groups {
				e := exact.Groups[i]
				check(m95, g.Name+" selection", g.SelectionRate, e.SelectionRate.Value)
				check(m95, g.Name+" TPR", g.TPR, e.TPR.Value)
				check(m95, g.Name+" FPR", g.FPR, e.FPR.Value)
			}
		}
		worst95 := 0
		for _, m := range m95 {
			worst95 = max(worst95, m)
		}
		fmt.Printf("audit by %s: %d runs at 95%%, lowest coverage of a group rate %.1f%%\n", name, runs, 100*float64(runs-worst95)/runs)
	}
}

func check(misses map[string]int, key string, r Rate, exact float64) {
	if _, ok := misses[key]; !ok {
		misses[key] = 0
	}
	if exact < r.Lower-1e-9 || exact > r.Upper+1e-9 {
		misses[key]++
	}
}

// TestReportMatchesAudit checks that every figure of the plain-language
// report is the audit's own value, formatted the report's way.
func TestReportMatchesAudit(t *testing.T) {
	t.Parallel()
	recs := synthetic()
	cfg := configs()["marital"]
	cfg.Confidence = 0.95
	rep, err := Audit(recs, cfg, dp.Secure())
	if err != nil {
		t.Fatal(err)
	}
	md := rep.Markdown()
	for _, g := range rep.Groups {
		row := fmt.Sprintf("| %s | %.0f | %s (%s) | %s (%s) | %s (%s) |", g.Name, g.Count,
			Pct(g.SelectionRate.Value), Interval(g.SelectionRate), Pct(g.TPR.Value), Interval(g.TPR), Pct(g.FPR.Value), Interval(g.FPR))
		if !strings.Contains(md, row) {
			t.Errorf("report lacks the row %q\n%s", row, md)
		}
	}
	for _, d := range rep.Disparities {
		if d.Metric == Selection && !strings.Contains(md, "**"+d.Group+"**: selected at "+Ratio(d.Ratio)) {
			t.Errorf("report lacks %s's ratio %s", d.Group, Ratio(d.Ratio))
		}
		if !strings.Contains(md, Interval(d.Difference)) {
			t.Errorf("report lacks %s's %s difference interval %s", d.Group, d.Metric, Interval(d.Difference))
		}
	}
}

// synthetic: single customers are selected half as often as married ones.
func synthetic() []Record {
	var out []Record
	for i := range 3000 {
		g := []string{"married", "single", "divorced"}[i%3]
		s := float64(i%100) / 100
		if g == "single" {
			s /= 2
		}
		out = append(out, Record{Group: g, Score: s, Label: i%7 < 3})
	}
	return out
}

// TestFourFifthsFlag: with single customers selected at ~0.5× the married
// rate on 1000 customers each, the flag must say "clearly below", without
// noise and with it.
func TestFourFifthsFlag(t *testing.T) {
	t.Parallel()
	cfg := configs()["marital"]
	for _, m := range []dp.Mechanisms{dptest.NoNoise(), dp.Secure()} {
		rep, err := Audit(synthetic(), cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range rep.Disparities {
			if d.Metric == Selection && d.Group == "single" {
				found = true
				if d.Flag != "clearly below" {
					t.Errorf("single vs %s: ratio %s flagged %q, want clearly below", d.Reference, Ratio(d.Ratio), d.Flag)
				}
			}
		}
		if !found {
			t.Fatal("no selection disparity for single")
		}
		if !strings.Contains(rep.Markdown(), "Below the four-fifths (80%) rule") {
			t.Error("the report does not say the rule is broken")
		}
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	err := (&Config{Groups: []string{"a", "a"}, Threshold: 2, Confidence: 1, Reference: "z"}).Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"listed twice", "reference", "threshold", "confidence"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestReadCSV(t *testing.T) {
	t.Parallel()
	recs, err := ReadCSV(strings.NewReader("id,score,outcome,band\n1,0.7,yes,18-29\n2,0.1,no,60+\n"), Columns{Group: "band", Score: "score", Label: "outcome", Positive: "yes"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0] != (Record{Group: "18-29", Score: 0.7, Label: true}) || recs[1].Label {
		t.Fatalf("got %+v", recs)
	}
	_, err = ReadCSV(strings.NewReader("score,outcome,band\n1.5,yes,a\n"), Columns{Group: "band", Score: "score", Label: "outcome"})
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("score 1.5 gave %v, want an error naming line 2", err)
	}
}

func FuzzReadCSV(f *testing.F) {
	f.Add("score,outcome,band\n0.5,yes,a\n")
	f.Add("score,outcome\n0.5,yes\n")
	f.Add("score,outcome,band\n\"0.5,yes,a\n")
	f.Fuzz(func(t *testing.T, s string) {
		recs, err := ReadCSV(strings.NewReader(s), Columns{Group: "band", Score: "score", Label: "outcome", Positive: "yes"})
		if err != nil {
			return
		}
		for _, r := range recs {
			if !(r.Score >= 0 && r.Score <= 1) {
				t.Fatalf("accepted score %v", r.Score)
			}
		}
	})
}

// TestAuditFederated runs the audit over the federation's crypto (6
// locations, t = 5, one offline): without noise it must equal the central
// audit exactly (the crypto and fixed point lose nothing), and with the
// secure noise its 99% intervals must cover the exact rates in ≥ 27 of 30
// runs per figure (P[≥ 4 misses] ≤ 3e-4 per figure for a 99% interval, below
// 0.01 over the 15 group rates checked).
func TestAuditFederated(t *testing.T) {
	_, byMarital := bankRecords(t)
	parts := make([][]Record, 6)
	for i, r := range byMarital {
		parts[i%6] = append(parts[i%6], r)
	}
	nw, err := learn.NewNetwork(6, 5)
	if err != nil {
		t.Fatal(err)
	}
	nw.Offline[5] = true
	cfg := configs()["marital"]
	cfg.Reference = "married"
	exact, err := Audit(byMarital, cfg, dptest.NoNoise())
	if err != nil {
		t.Fatal(err)
	}
	fed, err := AuditFederated(nw, parts, cfg, dptest.NoNoise())
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range fed.Groups {
		// Values must match exactly; intervals are wider by √(N/t).
		if e := exact.Groups[i]; g.Count != e.Count || g.SelectionRate.Value != e.SelectionRate.Value || g.TPR.Value != e.TPR.Value || g.FPR.Value != e.FPR.Value {
			t.Fatalf("federated without noise %+v, central %+v", g, e)
		}
	}
	if want := exact.Sigma * math.Sqrt(6.0/5); math.Abs(fed.Sigma-want) > 1e-9*want {
		t.Fatalf("federated σ %g, want σ√(N/t) = %g", fed.Sigma, want)
	}
	misses := map[string]int{}
	for range 30 {
		rep, err := AuditFederated(nw, parts, cfg, dp.Secure())
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range rep.Groups {
			e := exact.Groups[i]
			check(misses, g.Name+" selection", g.SelectionRate, e.SelectionRate.Value)
			check(misses, g.Name+" TPR", g.TPR, e.TPR.Value)
			check(misses, g.Name+" FPR", g.FPR, e.FPR.Value)
		}
	}
	for k, m := range misses {
		if m > 3 {
			t.Errorf("%s missed in %d of 30 federated audits", k, m)
		}
	}
}
