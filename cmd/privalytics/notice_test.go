package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics/internal/demo"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// TestDemoPrivacyNotice creates the demo's tenant on a real server and
// compares its Markdown privacy notice with testdata/demo-privacy-notice.md
// (go test ./cmd/privalytics -run TestDemoPrivacyNotice -update rewrites it;
// the README quotes it). The JSON and HTML forms carry the same content.
func TestDemoPrivacyNotice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ts := startServer(t, nil, "")
	res, err := ts.operator.CreateTenant(ctx, demo.Tenant())
	if err != nil {
		t.Fatal(err)
	}
	admin := ts.operator.WithToken(res.AdminKey.Token)
	md, err := admin.PrivacyNotice(ctx, "markdown")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "demo-privacy-notice.md")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), md); diff != "" {
		t.Errorf("demo privacy notice (-golden +got); run with -update if the change is intended:\n%s", diff)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), strings.TrimSpace(md)) {
		t.Errorf("README.md does not quote the current demo privacy notice (testdata/demo-privacy-notice.md)")
	}

	page, err := admin.PrivacyNotice(ctx, "html")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<h1>Privacy notice — Demo Bakery &amp; Co.</h1>", "<code>customer_id</code>", "ε = 10", "Retention period: not set."} {
		if !strings.Contains(page, s) {
			t.Errorf("HTML notice lacks %q", s)
		}
	}
	n, err := admin.Notice(ctx)
	if err != nil || len(n.Purposes) != 1 || n.Purposes[0].Consent != "opt-out" || n.Budget.Epsilon != 10 || n.TenantID != "demo" || len(n.Rights) == 0 {
		t.Errorf("JSON notice %+v: %v", n, err)
	}
	if _, err := admin.PrivacyNotice(ctx, "pdf"); err == nil {
		t.Error("format pdf was accepted")
	}
}
