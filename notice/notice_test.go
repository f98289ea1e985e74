package notice_test

import (
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/notice"
)

// TestNoticeFollowsConfiguration changes one setting at a time and checks the
// notice says so: the notice must not drift from the configuration.
func TestNoticeFollowsConfiguration(t *testing.T) {
	t.Parallel()
	base := func() *privalytics.Tenant {
		tn := &privalytics.Tenant{ID: "shop", Name: "Shop <b>&</b>", Schema: privalytics.DefaultRetailSchema(), Budget: privalytics.Cost{Epsilon: 1, Delta: 1e-6}, Purposes: []string{"analytics", "marketing", "loyalty"}}
		tn.Schema.Columns = append(tn.Schema.Columns, privalytics.Column{Name: "note", Type: privalytics.TypeString, FreeText: true, Description: "a | note"})
		tn.FillPrivacyDefaults()
		return tn
	}
	tests := []struct {
		name   string
		change func(*privalytics.Tenant)
		md     []string // in the Markdown
		not    []string // not in the Markdown
	}{
		{"defaults", func(*privalytics.Tenant) {}, []string{
			"**analytics** — to compute statistics", "*Opt-out.*", "**marketing** — to plan and measure our marketing. *Opt-in.*",
			`**loyalty** — for the purpose we call "loyalty". *Opt-in.*`, "an event containing any of them is refused", "a \\| note",
			"ε = 1 for all questions together", "e^ε ≈ 2.7 times", "1 in 1,000,000", "Retention period: not set."}, []string{"blanked out", "calendar month"}},
		{"redact and opt-in analytics", func(tn *privalytics.Tenant) {
			tn.Privacy.StrayData = privalytics.StrayRedact
			tn.Privacy.Consent["analytics"] = privalytics.OptIn
		}, []string{"blanked out before it is stored"}, []string{"*Opt-out.*", "an event containing any of them is refused"}},
		{"monthly budget, no delta", func(tn *privalytics.Tenant) {
			tn.Period = privalytics.PeriodMonth
			tn.Budget = privalytics.Cost{Epsilon: 3}
		}, []string{"ε = 3 for all questions about any one calendar month", "e^ε ≈ 20 times"}, []string{"δ =", "except with a chance"}},
		{"processors", func(tn *privalytics.Tenant) { tn.Privacy.Processors = []string{"Acme Hosting Ltd (EU)"} }, []string{"- Acme Hosting Ltd (EU)"}, nil},
	}
	for _, tc := range tests {
		tn := base()
		tc.change(tn)
		n := notice.For(tn, "")
		md := n.Markdown()
		for _, s := range tc.md {
			if !strings.Contains(md, s) {
				t.Errorf("%s: Markdown lacks %q:\n%s", tc.name, s, md)
			}
		}
		for _, s := range tc.not {
			if strings.Contains(md, s) {
				t.Errorf("%s: Markdown has %q", tc.name, s)
			}
		}
		page := n.HTML()
		if strings.Contains(page, "<b>") || !strings.Contains(page, "Shop &lt;b&gt;&amp;&lt;/b&gt;") {
			t.Errorf("%s: the business name is not escaped in HTML", tc.name)
		}
	}
	if tn := base(); true {
		tn.RetentionDays = 730
		if md := notice.For(tn, "").Markdown(); !strings.Contains(md, "Retention period: 730 days from the time of each event; older events are deleted automatically.") {
			t.Errorf("the notice does not state the tenant's retention of 730 days:\n%s", md)
		}
	}
	if n := notice.For(base(), "2 years"); !strings.Contains(n.Markdown(), "Retention period: 2 years.") || strings.Contains(n.Markdown(), "Events are kept until") {
		t.Errorf("a declared retention is not stated")
	}
}
