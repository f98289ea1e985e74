package fairness

import (
	"fmt"
	"strings"
)

// Pct formats a rate as the report shows it.
func Pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }

// Interval formats a rate's interval as the report shows it.
func Interval(r Rate) string { return Pct(r.Lower) + " to " + Pct(r.Upper) }

// Ratio formats a ratio and its interval as the report shows it.
func Ratio(r Rate) string { return fmt.Sprintf("%.2f (%.2f to %.2f)", r.Value, r.Lower, r.Upper) }

// Markdown is the plain-language report a business owner can read. Every
// figure in it is one of the report's fields, formatted by Pct, Interval or
// Ratio.
func (r *Report) Markdown() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "# Fairness audit by %s\n\n", c.Attribute)
	fmt.Fprintf(&b, "The model selects a customer when its score is at least %.2f. Every figure below is "+
		"computed with differential privacy (ε = %g per customer for the whole audit), so it is "+
		"approximate: the range after each figure holds the true value with %.0f%% confidence.\n\n",
		c.Threshold, c.Epsilon, 100*c.Confidence)
	b.WriteString("## Who the model selects\n\n| group | customers (approx.) | selected | of those who did respond, selected (TPR) | of those who did not, selected (FPR) |\n|---|---|---|---|---|\n")
	for _, g := range r.Groups {
		fmt.Fprintf(&b, "| %s | %.0f | %s (%s) | %s (%s) | %s (%s) |\n", g.Name, g.Count,
			Pct(g.SelectionRate.Value), Interval(g.SelectionRate), Pct(g.TPR.Value), Interval(g.TPR), Pct(g.FPR.Value), Interval(g.FPR))
	}
	fmt.Fprintf(&b, "\n## Compared with %s (the reference group)\n\n", r.Reference)
	flagged := 0
	for _, d := range r.Disparities {
		switch d.Metric {
		case Selection:
			fmt.Fprintf(&b, "- **%s**: selected at %s times the reference's rate; a difference of %s (%s).", d.Group, Ratio(d.Ratio), Pct(d.Difference.Value), Interval(d.Difference))
			switch d.Flag {
			case "clearly below":
				flagged++
				b.WriteString(" **Below the four-fifths (80%) rule, beyond the noise: review this.**")
			case "possibly below":
				flagged++
				b.WriteString(" Possibly below the four-fifths rule; the noise leaves it uncertain.")
			case "unclear":
				b.WriteString(" Probably above the four-fifths rule, but the noise leaves it uncertain.")
			}
			b.WriteString("\n")
		default:
			fmt.Fprintf(&b, "  - %s: %s versus %s for the reference (difference %s, %s).\n", d.Metric, Pct(d.Difference.Value+refValue(r, d)), Pct(refValue(r, d)), Pct(d.Difference.Value), Interval(d.Difference))
		}
	}
	if flagged == 0 {
		b.WriteString("\nNo group falls below the four-fifths rule.\n")
	} else {
		fmt.Fprintf(&b, "\n%d group(s) may fall below the four-fifths rule.\n", flagged)
	}
	b.WriteString("\n## Calibration\n\nAmong customers with scores in a range, the share who actually responded. A fair, calibrated model has each share inside (or near) its range for every group.\n\n")
	for _, g := range r.Groups {
		fmt.Fprintf(&b, "- %s:", g.Name)
		for _, bin := range g.Calibration {
			fmt.Fprintf(&b, " [%.2f, %.2f): %s;", bin.Lower, bin.Upper, Pct(bin.Observed.Value))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func refValue(r *Report, d Disparity) float64 {
	for _, g := range r.Groups {
		if g.Name == d.Reference {
			switch d.Metric {
			case TPR:
				return g.TPR.Value
			case FPR:
				return g.FPR.Value
			}
			return g.SelectionRate.Value
		}
	}
	return 0
}
