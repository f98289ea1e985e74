// Package notice generates a tenant's plain-language privacy notice from its
// actual configuration — schema, purposes and consent policy, stray personal
// data policy, retention, processors, privacy budget — so the notice a
// business shows its customers cannot drift from what the server does. It is
// served by GET /v1/privacy-notice as JSON, Markdown and HTML.
package notice

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"

	"github.com/privalytics/privalytics"
)

// Notice is the notice's content, structured (the JSON form).
type Notice struct {
	Business     string           `json:"business"`
	TenantID     string           `json:"tenant_id"`
	Collected    []Field          `json:"collected"`
	NotCollected string           `json:"not_collected"`
	Purposes     []Purpose        `json:"purposes"`
	Protection   Protection       `json:"protection"`
	Retention    string           `json:"retention"` // the period, or "not set"
	Processors   []string         `json:"processors"`
	Rights       []Right          `json:"rights"`
	Audit        string           `json:"audit"`
	StrayData    string           `json:"stray_data"` // reject or redact
	Budget       privalytics.Cost `json:"budget"`
}

// Field is one kind of information kept per event.
type Field struct {
	Name     string `json:"name"`
	What     string `json:"what"`
	Handling string `json:"handling"`
}

// Purpose is one declared purpose with its consent policy.
type Purpose struct {
	Name    string `json:"name"`
	Why     string `json:"why"`
	Consent string `json:"consent"` // opt-in or opt-out
	Meaning string `json:"meaning"`
}

// Protection is the differential privacy guarantee in figures and words.
type Protection struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	Period  string  `json:"period,omitempty"`
	Plain   string  `json:"plain"`
}

// Right is one right of the customer and how to exercise it.
type Right struct {
	Right string `json:"right"`
	How   string `json:"how"`
}

// RetentionNotSet is what the notice says when the tenant declares no
// retention period.
const RetentionNotSet = "not set"

var purposeWhy = map[string]string{
	"analytics": "to compute statistics about our customers as a whole (sales per month, popular categories, how many customers shop in each store), never to look at one customer",
	"marketing": "to plan and measure our marketing",
	"product":   "to improve our products and services",
}

// For builds the notice of a tenant. retention overrides the tenant's
// retention period in words; "" uses the tenant's RetentionDays ("not set" when 0).
func For(t *privalytics.Tenant, retention string) *Notice {
	name := t.Name
	if name == "" {
		name = t.ID
	}
	n := &Notice{Business: name, TenantID: t.ID, Budget: t.Budget, StrayData: t.Privacy.StrayData}
	if n.StrayData == "" {
		n.StrayData = privalytics.StrayReject
	}
	for _, c := range t.Schema.Columns {
		f := Field{Name: c.Name, What: c.Description, Handling: "kept as sent"}
		switch {
		case c.Name == t.Schema.Subject:
			f.What = "the customer number or other identifier we know you by"
			f.Handling = "replaced by a keyed code (a pseudonym) before it is stored; the identifier itself is never stored"
		case c.FreeText && n.StrayData == privalytics.StrayRedact:
			f.Handling = "free text, checked for e-mail addresses, phone numbers, card numbers and bank account numbers (IBANs), which are blanked out before it is stored"
		case c.FreeText:
			f.Handling = "free text, checked for e-mail addresses, phone numbers, card numbers and bank account numbers (IBANs); an event containing any of them is refused"
		case len(c.Allowed) > 0:
			f.Handling = "one of: " + strings.Join(c.Allowed, ", ")
		}
		if f.What == "" {
			f.What = "—"
		}
		n.Collected = append(n.Collected, f)
	}
	n.NotCollected = "Nothing else. Any other information our systems send is refused, not stored."

	for _, p := range t.Purposes {
		why, ok := purposeWhy[p]
		if !ok {
			why = fmt.Sprintf("for the purpose we call %q", p)
		}
		pol := t.ConsentPolicy(p)
		meaning := "Your data are used for this only if you have agreed. You can withdraw your agreement at any time; from then on your data are left out."
		if pol == privalytics.OptOut {
			meaning = "Your data are included unless you object. You can object at any time; from then on your data are left out of every analysis."
		}
		n.Purposes = append(n.Purposes, Purpose{Name: p, Why: why, Consent: pol, Meaning: meaning})
	}

	n.Protection = protection(t)
	if retention == "" && t.RetentionDays > 0 {
		retention = fmt.Sprintf("%d days from the time of each event; older events are deleted automatically", t.RetentionDays)
	}
	n.Retention = retention
	if n.Retention == "" {
		n.Retention = RetentionNotSet
	}
	n.Processors = append([]string{"our Privalytics analytics server, which stores the events and answers our statistical questions"}, t.Privacy.Processors...)
	n.Rights = []Right{
		{"See your data", "Ask us for a copy: we send you every event we hold about you, in JSON or CSV."},
		{"Correct your data", "Tell us what is wrong and we correct it."},
		{"Have your data erased", "Ask us to erase it: it is left out of every analysis at once and removed from storage soon after. Statistics already published are not recalculated; they were computed with the protection described above."},
		{"Object or withdraw consent", "Tell us, for any of the purposes above; it takes effect for every analysis from then on."},
	}
	n.Audit = "Every administrative action, every statistical question asked of the data and every consent change is recorded in a tamper-evident log."
	return n
}

// protection states the DP guarantee in figures and plain words.
func protection(t *privalytics.Tenant) Protection {
	eps, delta := t.Budget.Epsilon, t.Budget.Delta
	p := Protection{Epsilon: eps, Delta: delta, Period: t.Period}
	scope := "all questions together, over the whole life of the data"
	if t.Period == privalytics.PeriodMonth {
		scope = "all questions about any one calendar month of your activity"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Nobody at %s looks at your individual events: our staff can only ask for totals, averages and counts over many customers, and random noise is added to every answer so that it comes out almost the same whether or not your data are included. ", nameOf(t))
	fmt.Fprintf(&b, "This is called differential privacy. Its strength is set by a privacy budget, ε = %s for %s", num(eps), scope)
	if delta > 0 {
		fmt.Fprintf(&b, " (with δ = %s)", strconv.FormatFloat(delta, 'f', -1, 64))
	}
	b.WriteString(". In plain words: whatever anyone concludes from all our statistics together, it is at most ")
	fmt.Fprintf(&b, "e^ε ≈ %s times more (or less) likely to be true of you than if your data had never been collected", times(math.Exp(eps)))
	if delta > 0 {
		fmt.Fprintf(&b, ", except with a chance of at most %s", chance(delta))
	}
	b.WriteString(". The smaller ε, the stronger the protection. Every answer uses up part of the budget; when it is spent, the data cannot be queried any more.")
	if t.Accounting == privalytics.AccountingZCDP {
		b.WriteString(" Spending is tracked with zero-concentrated differential privacy, a tighter way of adding up many answers that keeps the same guarantee.")
	}
	p.Plain = b.String()
	return p
}

func nameOf(t *privalytics.Tenant) string {
	if t.Name != "" {
		return t.Name
	}
	return t.ID
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// times writes a factor readably: 2.7, 22,026, 1.1 million.
func times(f float64) string {
	switch {
	case f < 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	case f < 1e6:
		return grouped(int64(math.Round(f)))
	case f < 1e15:
		return strconv.FormatFloat(f/1e6, 'f', 1, 64) + " million"
	}
	return strconv.FormatFloat(f, 'g', 2, 64)
}

// chance writes δ as "1 in 100,000".
func chance(d float64) string {
	if d >= 0.01 {
		return strconv.FormatFloat(d*100, 'g', 3, 64) + "%"
	}
	return "1 in " + grouped(int64(math.Round(1/d)))
}

func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Markdown renders the notice as Markdown.
func (n *Notice) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Privacy notice — %s\n\n", n.Business)
	w("*Generated by Privalytics from the settings %s actually uses; it changes when they change.*\n\n", n.Business)
	w("## What we collect\n\n")
	w("When you shop with us or use our website or app, our systems record what happens — a visit, a product viewed, a purchase — and send these events to our analytics server. For each event it keeps:\n\n")
	w("| information | what it is | how it is kept |\n|---|---|---|\n")
	for _, f := range n.Collected {
		w("| `%s` | %s | %s |\n", f.Name, mdCell(f.What), mdCell(f.Handling))
	}
	w("\n%s\n\n", n.NotCollected)
	w("## Why we use it\n\n")
	for _, p := range n.Purposes {
		w("- **%s** — %s. *%s.* %s\n", p.Name, p.Why, policyWord(p.Consent), p.Meaning)
	}
	w("\n## How your privacy is protected\n\n%s\n\n", n.Protection.Plain)
	w("## How long we keep it\n\nRetention period: %s.", n.Retention)
	if n.Retention == RetentionNotSet {
		w(" Events are kept until we erase them, or you ask us to.")
	}
	w("\n\n## Who processes it\n\n")
	for _, p := range n.Processors {
		w("- %s\n", p)
	}
	w("\n## Your rights\n\nContact us, %s: we find your data by the identifier we know you by.\n\n", n.Business)
	for _, r := range n.Rights {
		w("- **%s.** %s\n", r.Right, r.How)
	}
	w("\n## Accountability\n\n%s\n", n.Audit)
	return b.String()
}

func policyWord(p string) string {
	if p == privalytics.OptOut {
		return "Opt-out"
	}
	return "Opt-in"
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// HTML renders the notice as a small standalone HTML page. Every value from
// the configuration is escaped.
func (n *Notice) HTML() string {
	var b strings.Builder
	e := html.EscapeString
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Privacy notice — %s</title></head><body>\n", e(n.Business))
	w("<h1>Privacy notice — %s</h1>\n<p><em>Generated by Privalytics from the settings %s actually uses; it changes when they change.</em></p>\n", e(n.Business), e(n.Business))
	w("<h2>What we collect</h2>\n<p>When you shop with us or use our website or app, our systems record what happens — a visit, a product viewed, a purchase — and send these events to our analytics server. For each event it keeps:</p>\n")
	w("<table>\n<tr><th>information</th><th>what it is</th><th>how it is kept</th></tr>\n")
	for _, f := range n.Collected {
		w("<tr><td><code>%s</code></td><td>%s</td><td>%s</td></tr>\n", e(f.Name), e(f.What), e(f.Handling))
	}
	w("</table>\n<p>%s</p>\n", e(n.NotCollected))
	w("<h2>Why we use it</h2>\n<ul>\n")
	for _, p := range n.Purposes {
		w("<li><strong>%s</strong> — %s. <em>%s.</em> %s</li>\n", e(p.Name), e(p.Why), policyWord(p.Consent), e(p.Meaning))
	}
	w("</ul>\n<h2>How your privacy is protected</h2>\n<p>%s</p>\n", e(n.Protection.Plain))
	w("<h2>How long we keep it</h2>\n<p>Retention period: %s.", e(n.Retention))
	if n.Retention == RetentionNotSet {
		w(" Events are kept until we erase them, or you ask us to.")
	}
	w("</p>\n<h2>Who processes it</h2>\n<ul>\n")
	for _, p := range n.Processors {
		w("<li>%s</li>\n", e(p))
	}
	w("</ul>\n<h2>Your rights</h2>\n<p>Contact us, %s: we find your data by the identifier we know you by.</p>\n<ul>\n", e(n.Business))
	for _, r := range n.Rights {
		w("<li><strong>%s.</strong> %s</li>\n", e(r.Right), e(r.How))
	}
	w("</ul>\n<h2>Accountability</h2>\n<p>%s</p>\n</body></html>\n", e(n.Audit))
	return b.String()
}
