package api

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"
)

// publicProbes are the operations that take no key and no input, so no client
// error exists for them to document. api/.redocly.lint-ignore.yaml holds the
// same list for the linter run in CI.
var publicProbes = []string{"GET /healthz", "GET /readyz", "GET /openapi.yaml", "GET /", "GET /track.js", "OPTIONS /v1/track"}

// loadSpec parses a spec the way a strict client generator would: duplicated
// mapping keys, dangling $refs, unknown fields (an unquoted description whose
// comma turned the rest into a property) and unknown formats are all errors.
func loadSpec(ctx context.Context, data []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(ctx, openapi3.EnableSchemaFormatValidation(), openapi3.EnableExamplesValidation()); err != nil {
		return nil, err
	}
	return doc, nil
}

func servedSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := loadSpec(t.Context(), openAPISpec)
	if err != nil {
		t.Fatalf("api/openapi.yaml is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

// operations lists "METHOD /path" → operation for every operation in the spec.
func operations(doc *openapi3.T) map[string]*openapi3.Operation {
	out := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out[method+" "+path] = op
		}
	}
	return out
}

// TestOpenAPIStrictParseCatches shows loadSpec fails on each mistake the spec
// once had, so a green TestOpenAPIValid means the spec really is clean.
func TestOpenAPIStrictParseCatches(t *testing.T) {
	t.Parallel()
	const head = "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\n"
	const okPaths = "paths:\n  /x:\n    get:\n      operationId: getX\n      responses:\n        \"200\": {description: ok, content: {application/json: {schema: {$ref: \"#/components/schemas/X\"}}}}\n"
	tests := []struct {
		name, spec, want string
	}{
		{"duplicated key (a schema header missing)", head + okPaths + "components:\n  schemas:\n    X:\n      type: object\n      type: string\n", `mapping key "type" already defined`},
		{"unquoted description with a comma", head + okPaths + "components:\n  schemas:\n    X: {type: string, description: one, two}\n", "two"},
		{"dangling $ref", head + okPaths + "components:\n  schemas:\n    Y: {type: string}\n", "X"},
		{"unknown format", head + okPaths + "components:\n  schemas:\n    X: {type: string, format: colour}\n", "colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadSpec(t.Context(), []byte(tt.spec))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadSpec: got error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := loadSpec(t.Context(), []byte(head+okPaths+"components:\n  schemas:\n    X: {type: string, description: \"one, two\"}\n")); err != nil {
		t.Errorf("loadSpec refused a valid document: %v", err)
	}
}

// TestOpenAPIValid: the spec parses strictly and every $ref resolves.
func TestOpenAPIValid(t *testing.T) {
	t.Parallel()
	doc := servedSpec(t)
	if doc.Paths.Len() == 0 {
		t.Fatal("the spec has no paths")
	}
}

// TestOpenAPIOperations holds what client generators and SDK users rely on:
// a unique operationId per operation (the method name in generated clients),
// the errors an authenticated call can always meet (401; 403 for a key whose
// role or credential may not do it; 429 with Retry-After, which the SDKs
// honour), a 400 wherever a body is read, and a client error documented
// everywhere but on the public probes.
func TestOpenAPIOperations(t *testing.T) {
	t.Parallel()
	doc := servedSpec(t)
	camel := regexp.MustCompile(`^[a-z][A-Za-z0-9]*$`)
	seen := map[string]string{}
	for route, op := range operations(doc) {
		if !camel.MatchString(op.OperationID) {
			t.Errorf("%s: operationId %q must be lowerCamelCase and present", route, op.OperationID)
		}
		if other, dup := seen[op.OperationID]; dup {
			t.Errorf("%s: operationId %q is also used by %s", route, op.OperationID, other)
		}
		seen[op.OperationID] = route

		codes := op.Responses.Map()
		has4xx := false
		for code := range codes {
			has4xx = has4xx || strings.HasPrefix(code, "4")
		}
		if !has4xx && !slices.Contains(publicProbes, route) {
			t.Errorf("%s: documents no 4xx response", route)
		}
		public := op.Security != nil && len(*op.Security) == 0
		if !public {
			for _, code := range []string{"401", "403", "429"} {
				if codes[code] == nil {
					t.Errorf("%s: an authenticated operation must document %s", route, code)
				}
			}
			if r := codes["429"]; r != nil && r.Value != nil && r.Value.Headers["Retry-After"] == nil {
				t.Errorf("%s: its 429 must document the Retry-After header", route)
			}
		}
		if op.RequestBody != nil && codes["400"] == nil {
			t.Errorf("%s: reads a request body but documents no 400", route)
		}
	}
}

// TestOpenAPINoUnusedSchemas: a schema nobody references is usually one whose
// $ref was misspelled or lost its header.
func TestOpenAPINoUnusedSchemas(t *testing.T) {
	t.Parallel()
	doc := servedSpec(t)
	all := string(mustJSON(t, doc.Paths)) + string(mustJSON(t, doc.Components))
	for name := range doc.Components.Schemas {
		if !strings.Contains(all, `"#/components/schemas/`+name+`"`) {
			t.Errorf("components.schemas.%s is referenced nowhere", name)
		}
	}
	for name := range doc.Components.Responses {
		if !strings.Contains(all, `"#/components/responses/`+name+`"`) {
			t.Errorf("components.responses.%s is referenced nowhere", name)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenAPIMatchesRoutes fails when a route changes without the spec, or the
// spec documents a route the server does not have.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var spec []string
	for route := range operations(servedSpec(t)) {
		spec = append(spec, route)
	}
	sort.Strings(spec)

	s := New(Deps{})
	var got []string
	param := regexp.MustCompile(`/[:*]([a-z_]+)`)
	for _, r := range s.engine.Routes() {
		got = append(got, r.Method+" "+param.ReplaceAllString(r.Path, "/{$1}"))
	}
	sort.Strings(got)
	if diff := cmp.Diff(spec, got); diff != "" {
		t.Errorf("routes differ from api/openapi.yaml (-spec +server):\n%s", diff)
	}
}
