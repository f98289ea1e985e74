package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
)

type child struct {
	cmd      *exec.Cmd
	url      string
	operator string
}

// startChild starts this test binary as a server on dir and waits until it is ready.
func startChild(t *testing.T, dir string) *child {
	t.Helper()
	return startChildEnv(t, dir, nil)
}

// startChildEnv starts a child server with extra environment variables.
func startChildEnv(t *testing.T, dir string, extra []string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), extra...),
		"PRIVALYTICS_TEST_CHILD=serve",
		"PRIVALYTICS_ADDR=127.0.0.1:0",
		"PRIVALYTICS_DATA_DIR="+dir,
		"PRIVALYTICS_SEAL_ROWS=5000", // seal often, so kills also land during sealing
		"PRIVALYTICS_LOG_LEVEL=warn",
	)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
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
	if c.url == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child server did not report its URL")
	}
	go func() {
		for sc.Scan() {
		}
	}()
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

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

const crashBatchRows = 200

// crashBatch is one batch whose rows all carry order_id "<id>-<row>".
func crashBatch(id string) []byte {
	var sb strings.Builder
	for i := range crashBatchRows {
		fmt.Fprintf(&sb, `{"customer_id":"cust-%d","ts":"2025-06-01T12:00:00Z","type":"purchase","order_id":"%s-%d","amount":"1.5","quantity":1}`+"\n", i%37, id, i)
	}
	return []byte(sb.String())
}

// TestCrashIngest kills a server under ingest load with SIGKILL at random moments,
// several times. After each kill, every acknowledged batch must be present exactly
// once and every other batch either whole or absent — never half-present.
func TestCrashIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs several server processes; skipped with -short")
	}
	t.Parallel()
	dir := t.TempDir()
	const cycles = 5
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		tried   = map[string]bool{}
		ingTok  string
		batchNo int
	)
	for cycle := range cycles {
		c := startChild(t, dir)
		if cycle == 0 {
			res, err := client.New(c.url, c.operator).CreateTenant(context.Background(), wire.CreateTenantRequest{Period: "lifetime", ID: "crash", Budget: wire.Cost{Epsilon: 1}})
			if err != nil {
				c.kill()
				t.Fatal(err)
			}
			k, err := client.New(c.url, res.AdminKey.Token).CreateKey(context.Background(), "load", wire.RoleIngest)
			if err != nil {
				c.kill()
				t.Fatal(err)
			}
			ingTok = k.Token
		}
		cl := client.New(c.url, ingTok)
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					mu.Lock()
					batchNo++
					id := fmt.Sprintf("b%d", batchNo)
					tried[id] = true
					mu.Unlock()
					_, err := cl.Ingest(ctx, crashBatch(id), client.IngestOptions{IdempotencyKey: id})
					if err != nil {
						return // the server is gone: this batch is unacknowledged
					}
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(200+rand.IntN(1300)) * time.Millisecond)
		c.kill()
		stop()
		wg.Wait()
		checkCrashStore(t, dir, acked, tried)
		if t.Failed() {
			return
		}
	}
	if len(acked) < cycles {
		t.Errorf("only %d batches acknowledged over %d cycles: the load did not reach the server", len(acked), cycles)
	}
	t.Logf("%d batches acknowledged, %d attempted, over %d SIGKILLs", len(acked), len(tried), cycles)
}

// checkCrashStore opens the store directly — a test-only, non-private read — and
// counts each batch's rows.
func checkCrashStore(t *testing.T, dir string, acked, tried map[string]bool) {
	t.Helper()
	// The server encrypts at rest under its master key, which it created in dir.
	mk, _, err := keyring.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := events.Open(filepath.Join(dir, "events"), events.Options{SealRows: 5000, SyncWrites: true, Encryption: mk})
	if err != nil {
		t.Fatalf("reopen store after kill: %v", err)
	}
	defer st.Close()
	snap, err := st.Snapshot(context.Background(), "crash", privalytics.DefaultRetailSchema())
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]int{}
	for _, ch := range snap.Chunks {
		idx := ch.Record.Schema().FieldIndices("order_id")[0]
		col := ch.Record.Column(idx).(*array.Dictionary)
		dict := col.Dictionary().(*array.String)
		for i := range col.Len() {
			id, _, _ := strings.Cut(dict.Value(col.GetValueIndex(i)), "-")
			rows[id]++
		}
	}
	for id := range acked {
		if rows[id] != crashBatchRows {
			t.Errorf("acknowledged batch %s has %d rows stored, want %d", id, rows[id], crashBatchRows)
		}
	}
	for id, n := range rows {
		if !tried[id] {
			t.Errorf("batch %s is stored but was never sent", id)
		} else if n != crashBatchRows {
			t.Errorf("batch %s is half-present: %d of %d rows", id, n, crashBatchRows)
		}
	}
}
