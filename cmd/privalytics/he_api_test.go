package main

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/he"
)

// startProcessor runs the real App in the processor role in this process.
func startProcessor(t *testing.T, mutate func(*Config)) *client.Client {
	t.Helper()
	cfg := DefaultConfig()
	dir := t.TempDir()
	cfg.Addr, cfg.DataDir, cfg.MasterKeyFile, cfg.LogLevel, cfg.Role = "127.0.0.1:0", dir, dir+"/master.key", "warn", "processor"
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := openApp(ctx, cfg, appOptions{logOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	op := client.New(app.URL(), app.OperatorToken)
	res, err := op.CreateTenant(context.Background(), wire.CreateTenantRequest{Period: "lifetime", ID: "owner", Budget: wire.Cost{Epsilon: 1, Delta: 1e-6}})
	if err != nil {
		t.Fatal(err)
	}
	admin := op.WithToken(res.AdminKey.Token)
	k, err := admin.CreateKey(context.Background(), "processor", wire.RoleProcessor)
	if err != nil {
		t.Fatal(err)
	}
	return admin.WithToken(k.Token)
}

// heUpload encrypts x (integers in [0, 100]) under a fresh bgv-agg key pair.
func heUploadFixture(t *testing.T, x []float64) (*he.OwnerKeys, []byte, []byte) {
	t.Helper()
	p, _ := he.LookupPreset(he.PresetBGVAgg)
	keys, evk, err := he.KeyGen(p, he.OpSum, he.OpMean, he.OpCount)
	if err != nil {
		t.Fatal(err)
	}
	evb, _ := evk.MarshalBinary()
	var tab bytes.Buffer
	spec := he.TableSpec{Preset: p, Columns: []he.ColumnSpec{{Name: "x", Kind: he.KindValue, Min: 0, Max: 100}}}
	if err := he.EncryptTable(context.Background(), &tab, keys.Public, spec, [][]float64{x}); err != nil {
		t.Fatal(err)
	}
	return keys, evb, tab.Bytes()
}

// TestHEProcessorConcurrentJobs: many jobs on one dataset at once (run it
// with -race) all decrypt to the plaintext sum; with room for one dataset
// only, a second upload gets 503 until the first is deleted.
func TestHEProcessorConcurrentJobs(t *testing.T) {
	t.Parallel()
	x := make([]float64, 20_000)
	var sum float64
	for i := range x {
		x[i] = float64((i * 37) % 101)
		sum += x[i]
	}
	keys, evb, tab := heUploadFixture(t, x)
	room := int64(len(evb)+len(tab)) + 4<<20 // one dataset and its results
	pc := startProcessor(t, func(c *Config) { c.HEMaxUploadBytes, c.HEMaxHeldBytes, c.HEJobs = room, room, 2 })
	ctx := context.Background()
	ds, err := pc.UploadHEDataset(ctx, evb, bytes.NewReader(tab), int64(len(tab)))
	if err != nil {
		t.Fatal(err)
	}
	if ds.Rows != int64(len(x)) || ds.Preset != he.PresetBGVAgg {
		t.Fatalf("dataset: %+v", ds)
	}
	_, err = pc.UploadHEDataset(ctx, evb, bytes.NewReader(tab), int64(len(tab)))
	if privalytics.ErrorCode(err) != privalytics.EUNAVAILABLE {
		t.Fatalf("second upload past --he-max-held-bytes: %v, want %s", err, privalytics.EUNAVAILABLE)
	}

	const jobs = 6
	results := make([][]byte, jobs)
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := []string{"sum", "mean"}[i%2]
			j, err := pc.SubmitHEJob(ctx, ds.ID, client.HEJobSpec{Op: op, Column: "x"})
			if err != nil {
				t.Error(err)
				return
			}
			if results[i], err = pc.WaitHEJob(ctx, ds.ID, j.ID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	dec, _ := he.NewDecryptor(keys)
	for i, b := range results {
		var res he.Result
		if err := res.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		plain, err := dec.Decrypt(&res)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := plain.Get("sum(x)"); v != sum {
			t.Errorf("job %d: sum %v, plaintext %v", i, v, sum)
		}
	}
	if _, err := pc.SubmitHEJob(ctx, ds.ID, client.HEJobSpec{Op: "sum", Column: "nope"}); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("job on a missing column: %v", err)
	}
	if err := pc.DeleteHEDataset(ctx, ds.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.UploadHEDataset(ctx, evb, bytes.NewReader(tab), int64(len(tab))); err != nil {
		t.Fatalf("upload after delete: %v", err)
	}
}
