// Package analytics is the query engine: it decodes and plans a DP query against a
// tenant's schema, executes it over a snapshot of Arrow records — filter, group,
// then bound each customer's contribution (at most L0 groups, at most L∞ rows per
// group, values clamped) — and hands the exact bounded aggregates to dp/ for noise,
// partition selection and intervals. Nothing exact leaves this package except
// through Service — release's only caller, after the ledger is charged — and
// only noised; ExecutePlain is the non-private baseline for benchmarks and
// tests and is never wired to HTTP.
package analytics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/privalytics/privalytics"
)

// Limits bound a query's shape.
type Limits struct {
	MaxGroups       int // public groups (product of public key lists); default 10,000
	MaxAggregates   int // default 16
	MaxFilterValues int // values in one in/not_in list; default 1,000
	MaxTimeBuckets  int // time buckets a query may span; default 100,000 (data-derived: the most recent ones)
	// MaxGroupSpace bounds the product of all dimensions' key counts (the
	// executor's per-group accumulators); default 4,000,000. Public keys are
	// held to MaxGroups at plan time; only data-derived keys can pass this, and
	// the refusal is then charged (see Service).
	MaxGroupSpace int
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{MaxGroups: 10_000, MaxAggregates: 16, MaxFilterValues: 1000, MaxTimeBuckets: 100_000, MaxGroupSpace: maxGroupSpace}
}

// DecodeQuery decodes a JSON query strictly: unknown fields, trailing data and
// wrong types are errors that say where.
func DecodeQuery(body []byte) (*privalytics.Query, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var q privalytics.Query
	if err := dec.Decode(&q); err != nil {
		return nil, queryJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "query: unexpected data after the JSON object")
	}
	// UseNumber keeps filter values exact; turn them into strings the planner parses.
	norm := func(v any) any {
		if n, ok := v.(json.Number); ok {
			return string(n)
		}
		return v
	}
	for i := range q.Where {
		f := &q.Where[i]
		f.Eq, f.Gt, f.Gte, f.Lt, f.Lte = norm(f.Eq), norm(f.Gt), norm(f.Gte), norm(f.Lt), norm(f.Lte)
		for j := range f.In {
			f.In[j] = norm(f.In[j])
		}
		for j := range f.NotIn {
			f.NotIn[j] = norm(f.NotIn[j])
		}
	}
	return &q, nil
}

func queryJSONError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return privalytics.Errorf(privalytics.EINVALID, "query: malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		return privalytics.Errorf(privalytics.EINVALID, "query: %s must be %s, got JSON %s", typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.EOF):
		return privalytics.Errorf(privalytics.EINVALID, "query: the body is empty; send a JSON query")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return privalytics.Errorf(privalytics.EINVALID, "query: malformed JSON: it ends early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return privalytics.Errorf(privalytics.EINVALID, "query: unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return privalytics.Errorf(privalytics.EINVALID, "query: %v", err)
}

// valueText renders a filter value for parsing and messages.
func valueText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return fmt.Sprint(v), nil
	case json.Number:
		return string(v), nil
	case float64:
		return fmt.Sprint(v), nil
	case int:
		return fmt.Sprint(v), nil
	case int64:
		return fmt.Sprint(v), nil
	}
	return "", fmt.Errorf("filter values must be strings, numbers or booleans, got %T", v)
}
