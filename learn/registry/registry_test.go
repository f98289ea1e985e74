package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/learn"
	"github.com/privalytics/privalytics/learn/fairness"
)

// TestNamesCannotLeaveTheDirectory: tenant, model and audit names come from
// requests; none may name a path outside the tenant's directory.
func TestNamesCannotLeaveTheDirectory(t *testing.T) {
	t.Parallel()
	s := &Service{Dir: t.TempDir(), Mechanisms: dp.Secure()}
	secret := filepath.Join(s.Dir, "secret.json")
	if err := os.WriteFile(secret, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"..", "a/../..", "", "a/b"} {
		if _, err := s.Models(tenant); privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Errorf("tenant %q: %v", tenant, err)
		}
	}
	for _, name := range []string{"..", "../secret", "a/b", ""} {
		if _, err := s.Model("shop", name, 0); err == nil {
			t.Errorf("model %q was read", name)
		}
		if err := s.Save("shop", name, &learn.Model{}); err == nil {
			t.Errorf("model %q was written", name)
		}
	}
	for _, id := range []string{"../secret", "fa_../../secret", "secret"} {
		if _, err := s.Get("shop", id); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
			t.Errorf("audit %q: %v", id, err)
		}
	}
	if _, err := (*Service)(nil).Models("shop"); privalytics.ErrorCode(err) != privalytics.EUNAVAILABLE {
		t.Errorf("no directory: %v", err)
	}
}

// TestCheckRefusesFromPublicInformation: what Check refuses is decided
// before anything is charged, and Run's result is stored and read back.
func TestCheckRefusesFromPublicInformation(t *testing.T) {
	t.Parallel()
	s := &Service{Dir: t.TempDir(), Mechanisms: dp.Secure()}
	sch := learn.BankSchema("age")
	ridge := &learn.Model{FormatVersion: learn.FormatVersion, Kind: learn.KindRidge, Schema: *sch, Coefficients: make([]float64, sch.Dim())}
	if err := s.Save("shop", "age", ridge); err != nil {
		t.Fatal(err)
	}
	cfg := fairness.Config{Attribute: "store", Groups: []string{"a", "b"}, Threshold: 0.5, Epsilon: 1, Delta: 1e-6, Confidence: 0.95}
	recs := []fairness.Record{{Group: "a", Score: 0.9, Label: true}, {Group: "b", Score: 0.1}}
	for name, r := range map[string]*AuditRequest{
		"a score above 1":  {Config: cfg, Records: []fairness.Record{{Group: "a", Score: 1.5}}},
		"no records":       {Config: cfg},
		"a ridge model":    {Model: "age", Config: cfg, Records: recs},
		"an unknown model": {Model: "nope", Config: cfg, Records: recs},
	} {
		if err := s.Check("shop", r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r := &AuditRequest{Config: cfg, Records: recs}
	if err := s.Check("shop", r); err != nil {
		t.Fatal(err)
	}
	a, err := s.Run("shop", r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("shop", a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Markdown != a.Markdown || !strings.Contains(got.Markdown, "# Fairness audit by store") || len(got.Report.Groups) != 2 {
		t.Fatalf("stored audit: %+v", got)
	}
}
