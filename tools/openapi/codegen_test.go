package openapi

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oapi-codegen/oapi-codegen/v2/pkg/codegen"
	"github.com/oapi-codegen/oapi-codegen/v2/pkg/util"

	// The generated client imports the runtime; importing it here keeps it,
	// at a pinned version, in this module's go.mod for the build below.
	_ "github.com/oapi-codegen/runtime"
)

const specPath = "../../api/openapi.yaml"

// TestGeneratedGoClientCompiles generates models and a client from the spec and
// builds them inside this module (so its go.sum pins what they import). A spec
// that generators choke on — a name clash between an inline schema and a
// component, an operation without operationId, an unsupported construct —
// fails here rather than in a user's build.
func TestGeneratedGoClientCompiles(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to build the generated client: %v", err)
	}
	spec, err := util.LoadSwagger(specPath)
	if err != nil {
		t.Fatalf("oapi-codegen could not load %s: %v", specPath, err)
	}
	code, err := codegen.Generate(spec, codegen.Configuration{
		PackageName: "privalyticsapi",
		Generate:    codegen.GenerateOptions{Models: true, Client: true},
	})
	if err != nil {
		t.Fatalf("oapi-codegen could not generate a client from %s: %v", specPath, err)
	}
	// Every operationId becomes a method; check a few the SDKs also name.
	for _, method := range []string{"RunQueryWithResponse", "ExplainQueryWithResponse", "GetBudgetWithResponse", "IngestEventsWithBody"} {
		if !strings.Contains(code, "func (c *ClientWithResponses) "+method+"(") && !strings.Contains(code, "func (c *Client) "+method+"(") {
			t.Errorf("the generated client has no method %s", method)
		}
	}

	// A directory inside the module, so `go build` resolves imports from this go.mod.
	dir, err := os.MkdirTemp(".", "generated-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "client.gen.go"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"build", "./" + dir}, {"vet", "./" + dir}} {
		// -mod=readonly: the build must succeed with this go.mod as committed.
		cmd := exec.Command("go", append(args[:1:1], append([]string{"-mod=readonly"}, args[1:]...)...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s on the generated client failed: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Logf("generated client: %d lines, builds and vets", strings.Count(code, "\n"))
}
