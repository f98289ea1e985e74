package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/synth"
)

// demoShop is a real server with a tenant "shop" holding a year of synthetic
// purchases: enough customers that a month's figures per channel stand well
// above the noise, as in a real shop. The dashboard and notebook tests use it.
type demoShop struct {
	server               *testServer
	admin, ingest, query *client.Client
	cfg                  synth.Config
}

func startDemoShop(t *testing.T, budget wire.Cost) *demoShop {
	t.Helper()
	ts := startServer(t, nil, "")
	admin, ingest, query := ts.tenantKeys(t, "shop", budget)
	cfg := smallSynth()
	cfg.Customers, cfg.Events = 20_000, 400_000
	loadSynthetic(t, ingest, cfg)
	return &demoShop{server: ts, admin: admin, ingest: ingest, query: query, cfg: cfg}
}

// notebookModules are what running the notebooks needs, from Debian's packages
// python3-nbconvert, python3-ipykernel, python3-pandas and python3-matplotlib,
// and what installing python/ into a virtualenv needs: python3-setuptools,
// python3-venv and python3-pip (.ci/run installs them). setuptools comes first:
// it must replace the standard library's distutils before pip imports it.
const notebookModules = "import setuptools, venv, ensurepip, pip, nbconvert, ipykernel, pandas, matplotlib"

// findNotebookPython returns a Python that has nbconvert and the notebooks'
// modules: PRIVALYTICS_PYTHON, else Debian's /usr/bin/python3, else python3 on
// PATH. Without one the test skips and says what to install, unless
// PRIVALYTICS_REQUIRE_NOTEBOOKS is set (as .ci/run does).
func findNotebookPython(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("PRIVALYTICS_PYTHON"), "/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if err := exec.Command(p, "-c", notebookModules).Run(); err == nil {
			return p
		}
	}
	msg := "no Python with nbconvert, ipykernel, pandas, matplotlib, venv and pip: apt-get install -y python3-nbconvert python3-ipykernel python3-pandas python3-matplotlib python3-venv python3-pip python3-setuptools (.ci/run does), or set PRIVALYTICS_PYTHON"
	if os.Getenv("PRIVALYTICS_REQUIRE_NOTEBOOKS") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// executedNotebook is the part of an executed .ipynb the test reads.
type executedNotebook struct {
	Cells []struct {
		CellType string `json:"cell_type"`
		Outputs  []struct {
			OutputType string         `json:"output_type"`
			Data       map[string]any `json:"data"`
			EName      string         `json:"ename"`
			EValue     string         `json:"evalue"`
		} `json:"outputs"`
	} `json:"cells"`
}

// TestNotebooks executes every notebook in notebooks/ top to bottom with
// `python3 -m nbconvert --to notebook --execute` against a live server holding
// the demo shop, and fails when a cell fails or a notebook draws no chart.
// The kernel runs in a fresh virtualenv holding the python/ package, installed
// as a user would, so the notebooks test the package too. Adding a notebook is
// adding its .ipynb file: each one gets, in its environment, PRIVALYTICS_SERVER
// and PRIVALYTICS_API_KEY (a query key of its own; the CLI's variables),
// PRIVALYTICS_ADMIN_KEY, PRIVALYTICS_INGEST_KEY and PRIVALYTICS_OPERATOR_KEY (to
// create tenants of its own), and PRIVALYTICS_FROM / PRIVALYTICS_TO (the data's
// period). With PRIVALYTICS_NOTEBOOKS_OUT=dir the executed notebooks, charts
// included, are written there (the committed ones come from this).
func TestNotebooks(t *testing.T) {
	t.Parallel()
	python := installPythonPackage(t, findNotebookPython(t))
	// A kernel spec inside the virtualenv, so the kernel imports the installed
	// package (Debian's own python3 kernel would run /usr/bin/python3).
	const kernel = "privalytics-venv"
	venv := filepath.Dir(filepath.Dir(python))
	if out, err := exec.Command(python, "-m", "ipykernel", "install", "--prefix", venv, "--name", kernel).CombinedOutput(); err != nil {
		t.Fatalf("ipykernel install: %v\n%s", err, out)
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "notebooks"))
	if err != nil {
		t.Fatal(err)
	}
	notebooks, err := filepath.Glob(filepath.Join(dir, "*.ipynb"))
	if err != nil || len(notebooks) == 0 {
		t.Fatalf("no notebooks in %s (%v)", dir, err)
	}
	shop := startDemoShop(t, wire.Cost{Epsilon: 100, Delta: 1e-4})
	// The encrypted-analytics and franchise notebooks drive the command line
	// (each party its own process) and, for the former, a processor server.
	bin := filepath.Join(t.TempDir(), "privalytics")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	proc := startServerWith(t, nil, "", func(c *Config) { c.Role = "processor" })
	pctx := context.Background()
	pt, err := proc.operator.CreateTenant(pctx, wire.CreateTenantRequest{Period: "lifetime", ID: "analyst", Budget: wire.Cost{Epsilon: 1}})
	if err != nil {
		t.Fatal(err)
	}
	pk, err := proc.operator.WithToken(pt.AdminKey.Token).CreateKey(pctx, "owner-uploads", wire.RoleProcessor)
	if err != nil {
		t.Fatal(err)
	}
	outDir := os.Getenv("PRIVALYTICS_NOTEBOOKS_OUT")
	if outDir != "" {
		if outDir, err = filepath.Abs(outDir); err != nil {
			t.Fatal(err)
		}
	}

	// One at a time: each kernel takes a core while it starts, and CI has few.
	for _, nb := range notebooks {
		name := strings.TrimSuffix(filepath.Base(nb), ".ipynb")
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			key, err := shop.admin.CreateKey(ctx, "notebook-"+name, wire.RoleQuery)
			if err != nil {
				t.Fatal(err)
			}
			out := outDir
			if out == "" {
				out = t.TempDir()
			}
			scratch := t.TempDir()
			cmd := exec.CommandContext(ctx, python, "-m", "nbconvert", "--to", "notebook", "--execute",
				"--ExecutePreprocessor.timeout=180", "--ExecutePreprocessor.kernel_name="+kernel, "--output-dir", out, nb)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(),
				"PRIVALYTICS_SERVER="+shop.server.app.URL(),
				"PRIVALYTICS_API_KEY="+key.Token,
				"PRIVALYTICS_ADMIN_KEY="+shop.admin.Token(),
				"PRIVALYTICS_INGEST_KEY="+shop.ingest.Token(),
				"PRIVALYTICS_OPERATOR_KEY="+shop.server.operator.Token(),
				"PRIVALYTICS_BIN="+bin,
				"PRIVALYTICS_PROCESSOR_URL="+proc.app.URL(),
				"PRIVALYTICS_PROCESSOR_KEY="+pk.Token,
				"PRIVALYTICS_FROM="+shop.cfg.Start.Format(time.DateOnly),
				"PRIVALYTICS_TO="+shop.cfg.Start.AddDate(0, 0, shop.cfg.Days).Format(time.DateOnly),
				// Keep Jupyter's, IPython's and matplotlib's files out of $HOME and the repository.
				"JUPYTER_RUNTIME_DIR="+scratch, "IPYTHONDIR="+scratch, "MPLCONFIGDIR="+scratch,
				"PYTHONDONTWRITEBYTECODE=1", "PYDEVD_DISABLE_FILE_VALIDATION=1",
			)
			start := time.Now()
			if output, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s failed: %v\n%s", filepath.Base(nb), err, output)
			}
			raw, err := os.ReadFile(filepath.Join(out, filepath.Base(nb)))
			if err != nil {
				t.Fatal(err)
			}
			var executed executedNotebook
			if err := json.Unmarshal(raw, &executed); err != nil {
				t.Fatalf("executed notebook: %v", err)
			}
			charts, code := 0, 0
			for i, c := range executed.Cells {
				if c.CellType == "code" {
					code++
				}
				for _, o := range c.Outputs {
					if o.OutputType == "error" {
						t.Errorf("cell %d: %s: %s", i, o.EName, o.EValue)
					}
					if _, ok := o.Data["image/png"]; ok {
						charts++
					}
				}
			}
			if charts == 0 {
				t.Errorf("%s ran but shows no chart (no image/png output)", filepath.Base(nb))
			}
			t.Logf("%s: %d code cells, %d charts, executed in %.1fs", filepath.Base(nb), code, charts, time.Since(start).Seconds())
		})
	}
}

// installPythonPackage installs python/ (the privalytics package) into a fresh
// virtualenv that also sees the system's packages (Debian's pandas, nbconvert
// …), offline and without build isolation, as a user would with pip, and
// returns the virtualenv's python. The source is copied first so pip's build
// directories never land in the repository.
func installPythonPackage(t *testing.T, python string) string {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("..", "..", "python"))
	if err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(t.TempDir(), "python")
	if err := os.CopyFS(pkg, os.DirFS(src)); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	venv := filepath.Join(t.TempDir(), "venv")
	steps := [][]string{
		{python, "-m", "venv", "--system-site-packages", venv},
		{filepath.Join(venv, "bin", "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", pkg},
	}
	for _, step := range steps {
		cmd := exec.Command(step[0], step[1:]...)
		cmd.Env = append(os.Environ(), "PIP_DISABLE_PIP_VERSION_CHECK=1", "PYTHONDONTWRITEBYTECODE=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(step, " "), err, out)
		}
	}
	return filepath.Join(venv, "bin", "python")
}

// findPackagePython returns a Python that can make a virtualenv and install
// python/ into it offline (Debian's python3-venv, python3-pip and
// python3-setuptools), with pandas for to_frame; it skips with what to install
// unless PRIVALYTICS_REQUIRE_NOTEBOOKS is set (as .ci/run does).
func findPackagePython(t *testing.T) string {
	t.Helper()
	const modules = "import setuptools, venv, ensurepip, pip, pandas" // setuptools first: pip imports the stdlib distutils setuptools replaces
	for _, p := range []string{os.Getenv("PRIVALYTICS_PYTHON"), "/usr/bin/python3"} {
		if p != "" && exec.Command(p, "-c", modules).Run() == nil {
			return p
		}
	}
	msg := "no Python with venv, pip, setuptools and pandas: apt-get install -y python3-venv python3-pip python3-setuptools python3-pandas (.ci/run does), or set PRIVALYTICS_PYTHON"
	if os.Getenv("PRIVALYTICS_REQUIRE_NOTEBOOKS") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestPythonPackage installs python/ into a fresh virtualenv and runs its tests
// (python/tests, standard-library unittest) against a live server: every
// operation of the spec has a method, queries, the cache, budget refusals,
// subject rights, and the retries against a local server answering 429/503.
func TestPythonPackage(t *testing.T) {
	t.Parallel()
	python := installPythonPackage(t, findPackagePython(t))
	ts := startServer(t, nil, "")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tests, err := filepath.Abs(filepath.Join("..", "..", "python"))
	if err != nil {
		t.Fatal(err)
	}
	// Run from a copy of python/tests alone, so `import privalytics` can only
	// find the installed package.
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.CopyFS(filepath.Join(dir, "tests"), os.DirFS(filepath.Join(tests, "tests"))); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, python, "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PRIVALYTICS_SERVER="+ts.app.URL(),
		"PRIVALYTICS_OPERATOR_KEY="+ts.operator.Token(),
		"PRIVALYTICS_REQUIRE_LIVE=1",
		"PYTHONDONTWRITEBYTECODE=1",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python tests failed: %v\n%s", err, out)
	}
	// unittest ends with "Ran N tests in …" and "OK"; a skip would say "OK (skipped=…)".
	m := regexp.MustCompile(`Ran (\d+) tests?`).FindSubmatch(out)
	if m == nil || !strings.Contains(string(out), "\nOK\n") && !strings.HasSuffix(strings.TrimSpace(string(out)), "\nOK") {
		t.Fatalf("python tests did not all pass without skips:\n%s", out)
	}
	t.Logf("python tests: %s passed", m[1])
}
