package api

import (
	"bufio"
	"bytes"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// specRoutes reads "METHOD /path" pairs from the spec's paths section. The spec is
// ours and kept in one layout: paths at two spaces, methods at four.
func specRoutes(t *testing.T) []string {
	t.Helper()
	var (
		out    []string
		path   string
		inPath bool
	)
	pathLine := regexp.MustCompile(`^  (/\S*):\s*$`)
	methodLine := regexp.MustCompile(`^    (get|post|put|patch|delete|options):\s*$`)
	sc := bufio.NewScanner(bytes.NewReader(openAPISpec))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPath = true
		case inPath && len(line) > 0 && line[0] != ' ':
			inPath = false
		case inPath && pathLine.MatchString(line):
			path = pathLine.FindStringSubmatch(line)[1]
		case inPath && methodLine.MatchString(line):
			out = append(out, strings.ToUpper(methodLine.FindStringSubmatch(line)[1])+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIMatchesRoutes fails when a route changes without the spec, or the
// spec documents a route the server does not have.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	s := New(Deps{})
	var got []string
	param := regexp.MustCompile(`/[:*]([a-z_]+)`)
	for _, r := range s.engine.Routes() {
		got = append(got, r.Method+" "+param.ReplaceAllString(r.Path, "/{$1}"))
	}
	sort.Strings(got)
	if diff := cmp.Diff(specRoutes(t), got); diff != "" {
		t.Errorf("routes differ from api/openapi.yaml (-spec +server):\n%s", diff)
	}
}
