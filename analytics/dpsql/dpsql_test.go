package dpsql_test

import (
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/analytics/dpsql"
)

var schema = privalytics.DefaultRetailSchema()

// TestSQLAndJSONPlanAlike: ten questions asked in SQL and in the JSON model
// plan to the same canonical query (the plan's fingerprint hashes it, with every
// default filled in), so they cost, run and cache the same.
func TestSQLAndJSONPlanAlike(t *testing.T) {
	t.Parallel()
	pairs := []struct{ name, sql, json string }{
		{"count", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(*) FROM events`,
			`{"aggregates":[{"op":"count"}],"epsilon":1}`},
		{"weekly revenue per category", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon=1, delta=1e-6, max_groups_contributed=4)
			category, TIMESTAMP_TRUNC(ts, WEEK) AS week, SUM(amount, contribution_bounds_per_row => (0, 200)) AS revenue
			FROM events WHERE type = 'purchase' AND ts >= '2025-01-01' AND ts < '2025-04-01' GROUP BY category, week`,
			`{"where":[{"column":"type","eq":"purchase"},{"column":"ts","gte":"2025-01-01","lt":"2025-04-01"}],
			  "group_by":[{"column":"category"},{"time":"week"}],
			  "aggregates":[{"name":"revenue","op":"sum","column":"amount","lower":0,"upper":200}],
			  "bounds":{"max_groups":4},"epsilon":1,"delta":1e-6}`},
		{"distinct buyers per store per month", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 0.5, delta = 1e-5)
			store, TIMESTAMP_TRUNC(ts, MONTH) AS m, COUNT(DISTINCT customer_id) AS buyers FROM events GROUP BY store, m`,
			`{"group_by":[{"column":"store"},{"time":"month"}],"aggregates":[{"name":"buyers","op":"distinct_customers"}],"epsilon":0.5,"delta":1e-5}`},
		{"median basket by channel", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) channel,
			PERCENTILE_CONT(amount, 0.5, contribution_bounds_per_row => (0, 100)) FROM events WHERE type IN ('purchase') GROUP BY channel`,
			`{"where":[{"column":"type","in":["purchase"]}],"group_by":[{"column":"channel"}],"aggregates":[{"op":"median","column":"amount","lower":0,"upper":100}],"epsilon":1}`},
		{"mean, variance, stddev", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 3, max_rows_per_group = 5)
			AVG(amount, contribution_bounds_per_row => (0, 50)), VAR_POP(amount, contribution_bounds_per_row => (0, 50)),
			STDDEV(amount, contribution_bounds_per_row => (0, 50)) FROM events`,
			`{"aggregates":[{"op":"mean","column":"amount","lower":0,"upper":50},{"op":"variance","column":"amount","lower":0,"upper":50},
			  {"op":"stddev","column":"amount","lower":0,"upper":50}],"bounds":{"max_rows_per_group":5},"epsilon":3}`},
		{"no bounds: tuned", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) SUM(amount) AS revenue FROM events`,
			`{"aggregates":[{"name":"revenue","op":"sum","column":"amount"}],"epsilon":1}`},
		{"per-group bounds", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(*, contribution_bounds_per_group => (0, 5)) AS n,
			SUM(amount, contribution_bounds_per_group => (0, 500)) AS revenue,
			AVG(amount, contribution_bounds_per_row => (0, 100), contribution_bounds_per_group => (0, 80)) FROM events`,
			`{"aggregates":[{"name":"n","op":"count","contribution_bounds_per_group":{"lower":0,"upper":5}},
			  {"name":"revenue","op":"sum","column":"amount","contribution_bounds_per_group":{"lower":0,"upper":500}},
			  {"op":"mean","column":"amount","lower":0,"upper":100,"contribution_bounds_per_group":{"lower":0,"upper":80}}],"epsilon":1}`},
		{"per-group bounds with a norm", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1, delta = 1e-6, noise = 'gaussian')
			COUNT(*, max_norm => 12, contribution_bounds_per_group => (0, 5)) AS n,
			SUM(amount, contribution_bounds_per_group => (0, 500), max_norm => 800) AS revenue FROM events`,
			`{"aggregates":[{"name":"n","op":"count","contribution_bounds_per_group":{"lower":0,"upper":5,"max_norm":12}},
			  {"name":"revenue","op":"sum","column":"amount","contribution_bounds_per_group":{"lower":0,"upper":500,"max_norm":800}}],
			  "epsilon":1,"delta":1e-6,"noise":"gaussian"}`},
		{"quantile", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) PERCENTILE_CONT(quantity, 0.9, contribution_bounds_per_row => (0, 20)) AS p90 FROM events`,
			`{"aggregates":[{"name":"p90","op":"quantile","column":"quantity","rank":0.9,"lower":0,"upper":20}],"epsilon":1}`},
		{"not in and between", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(*) FROM events
			WHERE channel NOT IN ('app', 'web') AND amount BETWEEN 1 AND 10 AND type != 'view'`,
			`{"where":[{"column":"channel","not_in":["app","web"]},{"column":"amount","gte":1,"lte":10},{"column":"type","not_in":["view"]}],
			  "aggregates":[{"op":"count"}],"epsilon":1}`},
		{"gaussian with options", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1, delta = 1e-6, noise = 'gaussian', confidence = 0.9,
			time_zone = 'Europe/London', purpose = 'analytics', privacy_unit_column = customer_id, max_rows = 6)
			TIMESTAMP_TRUNC(ts, DAY) AS d, COUNT(*) FROM events WHERE ts >= DATE '2025-03-01' AND ts < DATE '2025-03-08' GROUP BY d`,
			`{"where":[{"column":"ts","gte":"2025-03-01","lt":"2025-03-08"}],"group_by":[{"time":"day"}],"aggregates":[{"op":"count"}],
			  "bounds":{"max_rows":6},"epsilon":1,"delta":1e-6,"noise":"gaussian","confidence":0.9,"time_zone":"Europe/London","purpose":"analytics"}`},
		{"auto bounds", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) SUM(amount, contribution_bounds_per_row => AUTO) AS revenue FROM events`,
			`{"aggregates":[{"name":"revenue","op":"sum","column":"amount","bounds":"auto"}],"epsilon":1}`},
		{"rollup", `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) TIMESTAMP_TRUNC(ts, MONTH) AS m, channel, SUM(amount, contribution_bounds_per_row => (0, 100)) AS revenue
			FROM events WHERE ts >= '2025-01-01' AND ts < '2025-07-01' AND channel IN ('web', 'app') GROUP BY ROLLUP(m, channel)`,
			`{"where":[{"column":"ts","gte":"2025-01-01","lt":"2025-07-01"},{"column":"channel","in":["web","app"]}],"group_by":[{"time":"month"},{"column":"channel"}],
			  "aggregates":[{"name":"revenue","op":"sum","column":"amount","lower":0,"upper":100}],"epsilon":1,"rollup":true}`},
		{"group by the expression", `select with differential_privacy options (epsilon = 2) timestamp_trunc(ts, quarter), count(*) as n
			from events where quantity > 0 and ts >= '2025-01-01' and ts < '2026-01-01' group by timestamp_trunc(ts, quarter)`,
			`{"where":[{"column":"quantity","gt":0},{"column":"ts","gte":"2025-01-01","lt":"2026-01-01"}],"group_by":[{"time":"quarter"}],"aggregates":[{"name":"n","op":"count"}],"epsilon":2}`},
	}
	for _, tc := range pairs {
		t.Run(tc.name, func(t *testing.T) {
			sq, err := dpsql.Parse(tc.sql, schema)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			jq, err := analytics.DecodeQuery([]byte(tc.json))
			if err != nil {
				t.Fatalf("json: %v", err)
			}
			sp, err := analytics.NewPlan(sq, schema, analytics.DefaultLimits())
			if err != nil {
				t.Fatalf("plan of the SQL: %v", err)
			}
			jp, err := analytics.NewPlan(jq, schema, analytics.DefaultLimits())
			if err != nil {
				t.Fatalf("plan of the JSON: %v", err)
			}
			if sp.Fingerprint(fpKey) != jp.Fingerprint(fpKey) || sp.Cost() != jp.Cost() || sp.Mechanisms() != jp.Mechanisms() {
				t.Errorf("SQL and JSON plan differently:\nSQL  %+v\nJSON %+v", *sq, *jq)
			}
		})
	}
}

// TestErrorsPointAtThePosition: each error names line:column, shows the line
// with a caret under the place, and says what to change.
func TestErrorsPointAtThePosition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sql, pos, caretUnder, says string
	}{
		{"SELECT COUNT(*) FROM events", "1:8", "COUNT", "expected WITH"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1, colour = 2) COUNT(*) FROM events", "1:56", "colour", "unknown option"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1)\n  store, COUNT(*)\nFROM events", "2:3", "store", "not grouped by"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(*) FROM orders", "1:70", "orders", "only table is events"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(*) FROM events WHERE type = 'view' OR type = 'visit'", "1:97", "OR", "only AND"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(*) FROM events WHERE store = 'Main St", "1:91", "'Main", "never closed"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(DISTINCT store) FROM events", "1:71", "store", "counts customers only"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) SUM(amount, contribution_bounds_per_group => (0, 5), contribution_bounds_per_group => (0, 6)) FROM events", "1:109", "contribution_bounds_per_group", "given twice"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(*, contribution_bounds_per_row => (0, 5)) FROM events", "1:65", "contribution_bounds_per_row", "takes contribution_bounds_per_group"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) SUM(amount, max_norm => 5) FROM events", "1:68", "max_norm", "give contribution_bounds_per_group"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(*, max_norm => 5, max_norm => 6) FROM events", "1:80", "max_norm", "given twice"},
		{"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) TIMESTAMP_TRUNC(ts, FORTNIGHT) AS f, COUNT(*) FROM events GROUP BY f", "1:76", "FORTNIGHT", "not one of HOUR"},
	}
	for _, tc := range tests {
		_, err := dpsql.Parse(tc.sql, schema)
		if privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Errorf("%q: %v, want an invalid-query error", tc.sql, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "sql: "+tc.pos+": ") || !strings.Contains(msg, tc.says) {
			t.Errorf("%q:\n%s\nwant position %s and %q", tc.sql, msg, tc.pos, tc.says)
			continue
		}
		// The caret sits under the start of the offending text.
		lines := strings.Split(msg, "\n")
		excerpt, caret := lines[len(lines)-2], lines[len(lines)-1]
		col := strings.Index(caret, "^")
		if col < 0 || !strings.HasPrefix(excerpt[col:], tc.caretUnder) {
			t.Errorf("%q: caret at %d under %q, want under %q", tc.sql, col, excerpt[min(col, len(excerpt)):], tc.caretUnder)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(*) FROM events`)
	f.Add(`SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon=1, delta=1e-6) category, TIMESTAMP_TRUNC(ts, WEEK) AS w, SUM(amount, contribution_bounds_per_row => (0, 200)) FROM events WHERE type IN ('purchase', 'refund') AND amount BETWEEN -5 AND 1e3 GROUP BY category, w`)
	f.Add("select with differential_privacy options (epsilon = 1) count(*) -- comment\nfrom events where store = 'O''Brien'")
	f.Fuzz(func(t *testing.T, src string) {
		q, err := dpsql.Parse(src, schema)
		if err != nil {
			if c := privalytics.ErrorCode(err); c != privalytics.EINVALID && c != privalytics.ETOOLARGE {
				t.Fatalf("error with code %q: %v", c, err)
			}
			return
		}
		if len(q.Aggregates) == 0 {
			t.Fatalf("parsed without aggregates: %q", src)
		}
		// Whatever parses must plan or be refused cleanly.
		if _, err := analytics.NewPlan(q, schema, analytics.DefaultLimits()); err != nil && privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Fatalf("plan error with code %q: %v", privalytics.ErrorCode(err), err)
		}
	})
}

// fpKey keys the fingerprints the tests compare (any fixed key will do).
var fpKey = []byte("dpsql test fingerprint key")
