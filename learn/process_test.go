package learn

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// TestMain lets the test binary run as a location process: the test below
// re-executes it with LEARN_LOCATION_RELAY set, and that child runs
// RunLocation, the same function `privalytics learn location` runs, against
// the relay on 127.0.0.1.
func TestMain(m *testing.M) {
	if relay := os.Getenv("LEARN_LOCATION_RELAY"); relay != "" {
		os.Exit(locationProcess(relay))
	}
	os.Exit(m.Run())
}

func locationProcess(relay string) int {
	idx, err := strconv.Atoi(os.Getenv("LEARN_LOCATION_INDEX"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "LEARN_LOCATION_INDEX:", err)
		return 2
	}
	csv, err := os.ReadFile(os.Getenv("LEARN_LOCATION_CSV"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// The tap file is the location's own: the test reads it to know what
	// plaintext cells to look for in the relay's directory.
	tap, err := os.Create(os.Getenv("LEARN_LOCATION_TAP"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer tap.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	err = RunLocation(ctx, LocationConfig{Relay: relay, Index: idx, CSV: csv, Mechanisms: dp.Secure(), MaxEpsilon: 2, Delta: 1e-5, Tap: func(round int, cells []int64) {
		// The largest cells are the distinctive ones.
		var best int64
		for _, c := range cells {
			if abs64(c) > abs64(best) {
				best = c
			}
		}
		fmt.Fprintf(tap, "%d %d\n", round, best)
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "location", idx, err)
		return 1
	}
	return 0
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// TestSeparateLocationProcesses is issue 19's end-to-end test: six locations,
// each its own OS process with its own CSV of customers, train a logistic
// model (ε = 1) and then a ridge model (ε = 1) through a relay server on
// 127.0.0.1 that stores every blob it receives and logs every request. The
// federation is 5-of-6 and location 5 is killed after key setup, so every
// round runs with the five others (one waits out the 5 s window first). The
// franchisor (this test) compares with the centralised non-private fit on all
// six locations' rows (the dropped location's customers included): logistic
// test AUC within 0.04, ridge R² within 8% (see the checks). Then it searches the relay's
// directory and log for the locations' CSV rows and for the largest plaintext
// cell of every location's every round (as 8-byte integers and as text),
// with a positive control.
func TestSeparateLocationProcesses(t *testing.T) {
	lines, header := bankLines(t)
	rng := rand.New(rand.NewPCG(19, 6)) // the data split, not noise
	rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	nTest := len(lines) / 5
	testLines, trainLines := lines[:nTest], lines[nTest:]
	const n, thr = 6, 5

	home := t.TempDir() // the locations' own files; the relay never sees this
	relayDir := filepath.Join(t.TempDir(), "relay")
	if err := os.Mkdir(relayDir, 0o700); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(relayDir, "relay.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay := &Relay{Dir: relayDir, Log: slog.New(slog.NewTextHandler(logf, nil))}
	srv := &http.Server{Handler: relay.Handler()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(ln) }()
	defer func() { srv.Close(); wg.Wait() }()
	url := "http://" + ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	co, err := NewCoordinator(ctx, url, "north", n, thr)
	if err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	var stderr []*bytes.Buffer
	for i := range n {
		csvPath := filepath.Join(home, fmt.Sprintf("location-%d.csv", i))
		var part []string
		for k := i; k < len(trainLines); k += n {
			part = append(part, trainLines[k])
		}
		if err := os.WriteFile(csvPath, []byte(header+"\n"+strings.Join(part, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "LEARN_LOCATION_RELAY="+url, "LEARN_LOCATION_INDEX="+strconv.Itoa(i),
			"LEARN_LOCATION_CSV="+csvPath, "LEARN_LOCATION_TAP="+filepath.Join(home, fmt.Sprintf("tap-%d.txt", i)))
		var e bytes.Buffer
		cmd.Stderr = &e
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs, stderr = append(procs, cmd), append(stderr, &e)
	}
	defer func() {
		for _, p := range procs {
			if p.ProcessState == nil {
				p.Process.Kill()
				p.Wait()
			}
		}
	}()
	start := time.Now()
	if err := co.WaitReady(); err != nil {
		t.Fatal(err)
	}
	setup := time.Since(start)
	// Location 5 drops out after setup.
	if err := procs[5].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	procs[5].Wait()

	metrics := map[string][2]float64{}
	for _, kind := range []string{KindLogistic, KindRidge} {
		label := "y"
		if kind == KindRidge {
			label = "age"
		}
		s := BankSchema(label)
		train, err := s.ReadCSV(strings.NewReader(header + "\n" + strings.Join(trainLines, "\n") + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		test, err := s.ReadCSV(strings.NewReader(header + "\n" + strings.Join(testLines, "\n") + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		begin, rounds := time.Now(), co.Rounds
		var m *Model
		var central []float64
		if kind == KindLogistic {
			if m, err = TrainLogisticOn(co, s, secure()); err == nil {
				central, err = CentralLogistic(train)
			}
		} else {
			if m, err = TrainRidgeOn(co, s, secure()); err == nil {
				central, err = CentralRidge(train)
			}
		}
		if err != nil {
			t.Fatalf("%s: %v\nlocations' stderr: %v", kind, err, stderr)
		}
		base := &Model{Kind: kind, Coefficients: central}
		var got, want float64
		if kind == KindLogistic {
			got, want = AUC(m.Scores(test), test.Y), AUC(base.Scores(test), test.Y)
		} else {
			got, want = R2(m.Scores(test), test.Y), R2(base.Scores(test), test.Y)
		}
		metrics[kind] = [2]float64{got, want}
		fmt.Printf("separate processes, %s: federated %.4f, central %.4f; ε=%.3f; %d rounds in %.1fs, ≤%d bytes per location per round; dropped %v\n",
			kind, got, want, m.Epsilon, co.Rounds-rounds, time.Since(begin).Seconds(), co.BytesPerLoc, co.Dropped)
		if m.Epsilon > 1+1e-9 {
			t.Errorf("%s charged ε=%g, budget 1", kind, m.Epsilon)
		}
	}
	if err := co.Stop(); err != nil {
		t.Fatal(err)
	}
	for i, p := range procs[:5] {
		if err := p.Wait(); err != nil {
			t.Errorf("location %d exited with %v: %s", i, err, stderr[i])
		}
	}
	fmt.Printf("separate processes: setup %.1fs\n", setup.Seconds())
	if !co.Dropped[5] || len(co.Dropped) != 1 {
		t.Errorf("dropped %v, want exactly location 5", co.Dropped)
	}
	// The targets (AUC within 0.03, R² within 5%) are held by
	// TestFederatedAccuracy, where every location's customers contribute.
	// Here the sixth location's customers are missing from the federated fit
	// but not from the central one, and that costs: TestSweepMissingLocation
	// (this configuration without the crypto, 3 hold-out splits) measured the
	// ridge ratio below 0.95 in 0.4–2.5% of trainings (lowest 0.930 of 4,200;
	// this test failed CI once at 0.949) and the AUC gap above 0.03 in 0–1%
	// (largest 0.0346 of 1,800). The checks are 0.04 and 8%: a fit that is
	// broken rather than noisy falls far outside them.
	if g := metrics[KindLogistic]; g[1]-g[0] > 0.04 {
		t.Errorf("logistic AUC %.4f is more than 0.04 below the central %.4f", g[0], g[1])
	}
	if g := metrics[KindRidge]; g[0] < 0.92*g[1] {
		t.Errorf("ridge R² %.4f is more than 8%% below the central %.4f", g[0], g[1])
	}

	// What must never reach the relay: rows and plaintext cells.
	var needles [][]byte
	for i := range 5 {
		b, err := os.ReadFile(filepath.Join(home, fmt.Sprintf("tap-%d.txt", i)))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			v, _ := strconv.ParseInt(f[1], 10, 64)
			needles = append(needles, binary.LittleEndian.AppendUint64(nil, uint64(v)))
			if len(f[1]) >= 8 {
				needles = append(needles, []byte(f[1]))
			}
		}
	}
	if len(needles) < 5*co.Rounds {
		t.Fatalf("only %d cell needles for %d rounds of 5 locations; the tap saw too few", len(needles), co.Rounds)
	}
	for _, l := range trainLines[:300] {
		needles = append(needles, []byte(l))
	}
	if found := scanDir(t, relayDir, needles); len(found) > 0 {
		t.Fatalf("the relay's directory holds customer data: %v", found)
	}
	// Positive control: one row and one cell planted in the directory.
	plant := append(append([]byte("x"), needles[0]...), needles[len(needles)-1]...)
	if err := os.WriteFile(filepath.Join(relayDir, "planted"), plant, 0o600); err != nil {
		t.Fatal(err)
	}
	if found := scanDir(t, relayDir, needles); len(found) < 2 {
		t.Fatalf("positive control: planted a cell and a row, the search found %v", found)
	}
}

// bankLines returns the bank CSV's data lines and its header.
func bankLines(t *testing.T) ([]string, string) {
	b, err := os.ReadFile(bankFile(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\r\n"), "\n")
	if len(lines) != 11436 {
		t.Fatalf("%d lines, the README says 11,435 rows and a header", len(lines))
	}
	return lines[1:], lines[0]
}

// scanDir reports which needles (each ≥ 8 bytes) occur in which file of
// dir, in one pass per file: every 8-byte window is looked up among the
// needles' first 8 bytes, and only candidates are compared in full.
func scanDir(t *testing.T, dir string, needles [][]byte) []string {
	t.Helper()
	byPrefix := map[uint64][]int{}
	for i, n := range needles {
		if len(n) < 8 {
			t.Fatalf("needle %d is shorter than 8 bytes", i)
		}
		k := binary.LittleEndian.Uint64(n)
		byPrefix[k] = append(byPrefix[k], i)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 50 {
		t.Fatalf("the relay stored only %d files; the search would prove nothing", len(entries))
	}
	var found []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+8 <= len(b); off++ {
			for _, i := range byPrefix[binary.LittleEndian.Uint64(b[off:])] {
				if bytes.HasPrefix(b[off:], needles[i]) {
					found = append(found, fmt.Sprintf("%s holds needle %d at %d", e.Name(), i, off))
				}
			}
		}
	}
	return found
}

// TestLocationRefusesTasksOverItsCap: the relay is untrusted and tasks are
// not signed, so a location adds up what the tasks it answers cost its
// customers and refuses, before computing anything, the one that would pass
// its cap. Here a ridge training at ε = 1 meets a location capped at 0.5: it
// sends nothing, the round cannot reach t and no sum is decrypted.
func TestLocationRefusesTasksOverItsCap(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(bankFile(t))
	if err != nil {
		t.Fatal(err)
	}
	parts, _ := SplitCSV(raw, 2, 0.2, 1)
	dir := t.TempDir()
	relay := &Relay{Dir: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := httptest.NewServer(relay.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	co, err := NewCoordinator(ctx, srv.URL, "capped", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	co.Window = time.Second
	errs := make(chan error, 2)
	for i, capEps := range []float64{2, 0.5} {
		go func() {
			errs <- RunLocation(ctx, LocationConfig{Relay: srv.URL, Index: i, CSV: parts[i], Mechanisms: dp.Secure(), MaxEpsilon: capEps, Delta: 1e-5})
		}()
	}
	if err := co.WaitReady(); err != nil {
		t.Fatal(err)
	}
	_, err = TrainRidgeOn(co, BankSchema("age"), secure())
	if privalytics.ErrorCode(err) != privalytics.EUNAVAILABLE || !co.Dropped[1] {
		t.Fatalf("training with a refusing location: %v (dropped %v)", err, co.Dropped)
	}
	var codes []string
	for range 2 {
		codes = append(codes, privalytics.ErrorCode(<-errs))
	}
	if !slices.Contains(codes, privalytics.EBUDGET) {
		t.Fatalf("locations ended with %v; the capped one must refuse with %s", codes, privalytics.EBUDGET)
	}
	for _, name := range []string{"contrib-0-1", "agg-0", "result-0"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("the relay holds %s", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "contrib-0-0")); err != nil {
		t.Errorf("the uncapped location did not answer: %v", err)
	}
}
