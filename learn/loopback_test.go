package learn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// loopbackServer is the federation server over HTTP on 127.0.0.1:0: it
// stores every body it receives in its data directory (as a real server
// keeps a round's state) and logs every request, then does LocalServer's
// computation. It holds no key.
type loopbackServer struct {
	dir  string
	log  *slog.Logger
	comp LocalServer
}

// frame/unframe carry a list of blobs in one body (uvarint lengths).
func frame(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

func unframe(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, fmt.Errorf("malformed frame")
		}
		out = append(out, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return out, nil
}

func (s *loopbackServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	round, _ := strconv.Atoi(r.URL.Query().Get("round"))
	s.log.Info("request", "path", r.URL.Path, "round", round, "bytes", len(body))
	if err := os.WriteFile(filepath.Join(s.dir, fmt.Sprintf("round-%03d%s.bin", round, strings.ReplaceAll(r.URL.Path, "/", "-"))), body, 0o600); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	parts, err := unframe(body)
	if err != nil || len(parts) == 0 {
		http.Error(w, "malformed body", http.StatusBadRequest)
		return
	}
	var out []byte
	switch r.URL.Path {
	case "/sum":
		out, err = s.comp.Sum(round, parts)
	case "/keyswitch":
		out, err = s.comp.KeySwitch(round, parts[0], parts[1:])
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.log.Error("round failed", "round", round, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Write(out)
}

// httpServer is the locations' client of the loopback server.
type httpServer struct{ url string }

func (h httpServer) post(path string, round int, body []byte) ([]byte, error) {
	resp, err := http.Post(fmt.Sprintf("%s%s?round=%d", h.url, path, round), "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, b)
	}
	return b, err
}

func (h httpServer) Sum(round int, c [][]byte) ([]byte, error) {
	return h.post("/sum", round, frame(c...))
}
func (h httpServer) KeySwitch(round int, agg []byte, shares [][]byte) ([]byte, error) {
	return h.post("/keyswitch", round, frame(append([][]byte{agg}, shares...)...))
}

// TestLoopbackServerHoldsNoCustomerData trains the logistic model with the
// server behind HTTP on 127.0.0.1:0, then searches the server's data
// directory and log for what must never reach it: the locations' customer
// rows (the CSV lines) and the plaintext cells they encrypted (sufficient
// statistics and gradients, as 8-byte integers and as decimal text). A
// positive control plants one row and one location's cells in the directory
// and checks the search finds both. (300 CSV lines are searched: the
// rows are not in the server's files at all, and 300 keeps the test fast.)
func TestLoopbackServerHoldsNoCustomerData(t *testing.T) {
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nw, err := NewNetwork(6, 5)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &loopbackServer{dir: dir, log: slog.New(slog.NewTextHandler(logf, nil)), comp: LocalServer{P: nw.P}}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(ln) }()
	defer func() { srv.Close(); wg.Wait() }()
	nw.Server = httpServer{url: "http://" + ln.Addr().String()}
	nw.Offline[5] = true
	var mu sync.Mutex
	var needles [][]byte
	nw.tap = func(loc int, cells []int64) {
		mu.Lock()
		defer mu.Unlock()
		// The largest cells are the distinctive ones (small ones such as 0
		// occur in any binary file).
		for _, c := range cells {
			if c > 1<<20 || c < -(1<<20) {
				needles = append(needles, binary.LittleEndian.AppendUint64(nil, uint64(c)), []byte(strconv.FormatInt(c, 10)))
				break
			}
		}
	}
	all := loadBank(t, "y")
	train, test := HoldOut(all, 0.2, 19)
	m, err := TrainLogistic(nw, BankSchema("y"), SplitRandom(train, 6, 7), secure())
	if err != nil {
		t.Fatal(err)
	}
	central, err := CentralLogistic(train)
	if err != nil {
		t.Fatal(err)
	}
	got, want := AUC(m.Scores(test), test.Y), AUC((&Model{Kind: KindLogistic, Coefficients: central}).Scores(test), test.Y)
	fmt.Printf("loopback: test AUC %.4f (central %.4f), %d rounds over HTTP\n", got, want, nw.Rounds)
	if want-got > 0.03 {
		t.Errorf("over HTTP the model's AUC %.4f is more than 0.03 below the central %.4f", got, want)
	}
	f, err := os.Open(bankFile(t))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for i := 0; sc.Scan() && i < 300; i++ {
		needles = append(needles, append([]byte(nil), sc.Bytes()...))
	}
	f.Close()
	if len(needles) < 300+2*nw.Rounds {
		t.Fatalf("only %d needles; the tap saw too few cells", len(needles))
	}
	if found := search(t, dir, needles); len(found) > 0 {
		t.Fatalf("the server's directory holds customer data: %v", found)
	}
	// Positive control.
	plant := append(append([]byte("x"), needles[0]...), needles[len(needles)-1]...)
	if err := os.WriteFile(filepath.Join(dir, "planted.bin"), plant, 0o600); err != nil {
		t.Fatal(err)
	}
	if found := search(t, dir, needles); len(found) < 2 {
		t.Fatalf("positive control: planted a cell and a row, the search found %v", found)
	}
}

func search(t *testing.T, dir string, needles [][]byte) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 3 {
		t.Fatalf("the server stored only %d files; the search would prove nothing", len(entries))
	}
	var found []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range needles {
			if bytes.Contains(b, n) {
				found = append(found, fmt.Sprintf("%s holds needle %d", e.Name(), i))
			}
		}
	}
	return found
}
