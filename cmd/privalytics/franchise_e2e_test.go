package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/he/federation"
)

// loggedChild starts this test binary as a server on dir with its log
// (level info) written to logPath, and waits until it is ready.
func loggedChild(t *testing.T, dir, logPath string) *child {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PRIVALYTICS_TEST_CHILD=serve", "PRIVALYTICS_ADDR=127.0.0.1:0", "PRIVALYTICS_DATA_DIR="+dir, "PRIVALYTICS_LOG_LEVEL=info")
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(c.kill)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			c.url = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "OPERATOR"); ok {
			c.operator = strings.TrimSpace(v)
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if c.url == "" {
		t.Fatal("child server did not report its URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for client.New(c.url, "").Ready(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatal("child server never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// cliProcess starts the CLI as its own process.
func cliProcess(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	raw, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PRIVALYTICS_TEST_CHILD=cli", "PRIVALYTICS_TEST_ARGS="+string(raw))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// runParallel runs one CLI process per argument list and fails on any error.
func runParallel(t *testing.T, what string, argLists [][]string) []string {
	t.Helper()
	outs := make([]string, len(argLists))
	var wg sync.WaitGroup
	for i, args := range argLists {
		cmd, out := cliProcess(t, args...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			outs[i] = out.String()
			if err != nil {
				t.Errorf("%s %d: %v\n%s", what, i, err, out)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return outs
}

// runCLI runs the CLI in this process and returns its output.
func mustRunCLI(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	root := rootCommand()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("privalytics %s: %v\n%s", strings.Join(args, " "), describe(err), out.String())
	}
	return out.String()
}

var franchiseCategories = []string{"bread", "cake", "coffee"}

// writeLocationCSV writes a location's purchases and returns the distinctive
// customer IDs it uses. Amounts are cents.
func writeLocationCSV(t *testing.T, path string, loc int) []string {
	t.Helper()
	var b strings.Builder
	b.WriteString("customer,category,cents\n")
	var ids []string
	for k := range 40 + 3*loc {
		id := fmt.Sprintf("cust-L%02d-%04d", loc, k)
		ids = append(ids, id)
		for r := range 1 + k%4 { // some customers have more rows than the bound
			fmt.Fprintf(&b, "%s,%s,%d\n", id, franchiseCategories[(k+r+loc)%3], 173+97*loc+13*k+r)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestFranchiseEndToEnd runs a real server process, 10 location processes
// (setup, then contribute) with t = 6, and the franchisor's CLI: locations 7
// and 8 drop out before contributing and 9 after contributing, before
// decryption. The result must equal the sum over the 8 contributors within the
// DP noise's 6σ interval, and no location's figures or customers may appear in
// the server's data directory or log.
func TestFranchiseEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 21 processes; skipped with -short")
	}
	const n, th = 10, 6
	dir := t.TempDir()
	dataDir, logPath := filepath.Join(dir, "server"), filepath.Join(dir, "server.log")
	srv := loggedChild(t, dataDir, logPath)
	ctx := context.Background()
	tenant, err := client.New(srv.url, srv.operator).CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "franchise", Budget: wire.Cost{Epsilon: 10, Delta: 1e-5}})
	if err != nil {
		t.Fatal(err)
	}
	admin := tenant.AdminKey.Token
	fedDir := filepath.Join(dir, "franchisor")
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("store-%02d", i)
	}
	mustRunCLI(t, "franchise", "create", "--server", srv.url, "--key", admin, "--name", "north", "--locations", strings.Join(names, ","), "--threshold", strconv.Itoa(th), "--dir", fedDir)

	cred := func(i int) string { return filepath.Join(dir, "loc", names[i]+".json") }
	for i := range n { // hand each location its credentials
		b, err := os.ReadFile(filepath.Join(fedDir, "locations", names[i]+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := federation.WriteSecret(cred(i), b); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	var setups [][]string
	for i := range n {
		setups = append(setups, []string{"franchise", "setup", "--credentials", cred(i), "--timeout", "2m"})
	}
	runParallel(t, "setup", setups)
	t.Logf("setup of %d locations: %v", n, time.Since(start))

	q := federation.Query{SubjectColumn: "customer", CategoryColumn: "category", ValueColumn: "cents", Categories: franchiseCategories,
		Aggregates: []string{federation.AggCount, federation.AggSum}, Lower: 0, Upper: 2500, MaxRowsPerSubject: 2, Epsilon: 1, Delta: 1e-6}
	qb, _ := json.Marshal(q)
	mustRunCLI(t, "franchise", "round", "--key", admin, "--dir", fedDir, "--query", string(qb), "--contribute-for", "10s", "--decrypt-for", "60s")
	// The round's (ε, δ) is charged to the franchisor's budget when it is published.
	if b, err := client.New(srv.url, admin).Budget(ctx); err != nil || b.Spent.Epsilon != 1 || b.Spent.Delta != 1e-6 {
		t.Fatalf("budget after publishing a round: %+v, %v; want ε = 1, δ = 1e-6 spent", b, err)
	}

	contributors := []int{0, 1, 2, 3, 4, 5, 6, 9}
	truth := make([]int64, q.Cells())
	var secrets []string // what must not reach the server
	var contribs [][]string
	for _, i := range contributors {
		path := filepath.Join(dir, "loc", names[i]+".csv")
		secrets = append(secrets, writeLocationCSV(t, path, i)...)
		f, _ := os.Open(path)
		local, err := q.LocalAggregates(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for j, v := range local {
			truth[j] += v
			if v >= 1000 {
				secrets = append(secrets, strconv.FormatInt(v, 10), string(binary.LittleEndian.AppendUint64(nil, uint64(v))))
			}
		}
		args := []string{"franchise", "contribute", "--credentials", cred(i), "--round", "1", "--data", path, "--timeout", "2m"}
		if i == 9 {
			args = append(args, "--no-decrypt")
		}
		contribs = append(contribs, args)
	}
	start = time.Now()
	outs := runParallel(t, "contribute", contribs)
	sent := strings.Count(strings.Join(outs, ""), "sent its decryption share")
	if sent != th {
		t.Errorf("%d locations sent decryption shares, want t=%d:\n%s", sent, th, strings.Join(outs, ""))
	}
	out := mustRunCLI(t, "franchise", "result", "--key", admin, "--dir", fedDir, "--round", "1", "--json", "--timeout", "1m")
	t.Logf("round (10 s contribution window included): %v", time.Since(start))
	var res federation.RoundResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("result: %v\n%s", err, out)
	}
	if res.Contributors != len(contributors) || len(res.Cells) != q.Cells() {
		t.Fatalf("result: %+v", res)
	}
	// Each cell's noise is Gaussian with the std the server reports; a 6σ
	// miss has probability < 2e-9 per cell.
	for a, agg := range q.Aggregates {
		std := q.NoiseStd(agg, th, len(contributors))
		if math.Abs(res.NoiseStd[agg]-std) > 1e-9*std {
			t.Errorf("%s: noise std %g, want %g", agg, res.NoiseStd[agg], std)
		}
		for k := range q.Categories {
			i := q.Cell(a, k)
			if d := math.Abs(float64(res.Cells[i].Value - truth[i])); d > 6*std {
				t.Errorf("%s %s: %d, want %d ± %.0f (6σ)", agg, q.Categories[k], res.Cells[i].Value, truth[i], 6*std)
			}
		}
	}
	t.Logf("truth %v; released %+v", truth, res.Cells)

	srv.kill()
	if hits := scanForSecrets(t, []string{dataDir, logPath}, secrets); len(hits) > 0 {
		t.Errorf("the server's data directory or log holds location data:\n%s", strings.Join(hits, "\n"))
	}
	// Control: the same scan finds the customers in the locations' own files.
	if hits := scanForSecrets(t, []string{filepath.Join(dir, "loc")}, secrets); len(hits) == 0 {
		t.Error("the scan finds nothing even in the locations' CSV files; it proves nothing")
	}
	logb, _ := os.ReadFile(logPath)
	if !bytes.Contains(logb, []byte("/v1/federations/:fed/rounds/:round/contributions")) {
		t.Fatal("the server log has no federation requests; the scan would prove nothing")
	}
}

func isDecimal(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// scanForSecrets lists where any file under roots contains any of the secrets.
func scanForSecrets(t *testing.T, roots []string, secrets []string) (hits []string) {
	t.Helper()
	files := 0
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			for _, s := range secrets {
				// A figure in text counts only as a whole token, not as digits
				// inside a request ID, a timestamp or a duration.
				// Binary files (ciphertexts, state sealed under the master
				// key) hold random bytes in which a short figure appears as
				// a "token" by chance (a 4-digit one about once in 10⁹
				// bytes); a figure stored in the clear would be text.
				found := bytes.Contains(b, []byte(s))
				if found && isDecimal(s) {
					found = utf8.Valid(b) && regexp.MustCompile(`(^|[^0-9A-Za-z.])`+s+`([^0-9A-Za-z.]|$)`).Match(b)
				}
				if found {
					i := bytes.Index(b, []byte(s))
					hits = append(hits, fmt.Sprintf("%s contains %q: …%q…", path, s, b[max(0, i-80):min(len(b), i+len(s)+20)]))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 2 {
		t.Fatalf("scanned only %d files", files)
	}
	return hits
}
