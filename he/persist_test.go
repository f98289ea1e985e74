package he

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/keyring"
	"github.com/privalytics/privalytics/store/statefile"
)

func waitResult(t *testing.T, ds *Datasets, tenant, id, job string) []byte {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		b, err := ds.Result(tenant, id, job)
		if privalytics.ErrorCode(err) != privalytics.ECONFLICT {
			if err != nil {
				t.Fatalf("job %s: %v", job, err)
			}
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still not done after a minute", job)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Datasets and jobs kept on disk survive a close and reopen: a finished job's
// result is still there, and jobs cut by the shutdown (waiting for a slot)
// run after the reopen to results that decrypt to the plaintext. Encryption
// at rest on and off.
func TestDatasetsSurviveRestart(t *testing.T) {
	t.Parallel()
	p := testInsecureBGV
	fx := keysFor(t, p)
	d := newDataset(t, 100)
	ctype, body := uploadBody(t, fx, p, d)
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	mk, err := keyring.MasterKeyFromEnv(base64.StdEncoding.EncodeToString(k))
	if err != nil {
		t.Fatal(err)
	}
	job := Job{Op: OpSum, Column: "quantity"}
	for _, sealer := range []statefile.Sealer{nil, mk} {
		dir := t.TempDir()
		per := Persist{Dir: dir, Sealer: sealer}
		ds, err := OpenDatasets(Limits{Enabled: true, ConcurrentJobs: 1}, nil, per)
		if err != nil {
			t.Fatal(err)
		}
		info, err := ds.Upload(context.Background(), "shop", ctype, bytes.NewReader(body.Bytes()), int64(body.Len()))
		if err != nil {
			t.Fatal(err)
		}
		first, err := ds.Submit("shop", info.ID, job)
		if err != nil {
			t.Fatal(err)
		}
		firstResult := waitResult(t, ds, "shop", info.ID, first.ID)
		ds.slots <- struct{}{} // the only slot busy: the next jobs wait
		var cut []JobInfo
		for range 2 {
			j, err := ds.Submit("shop", info.ID, job)
			if err != nil {
				t.Fatal(err)
			}
			cut = append(cut, j)
		}
		if err := ds.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if sealer != nil {
			raw, _ := os.ReadFile(filepath.Join(dir, "shop", info.ID, "dataset"))
			if bytes.Contains(raw, []byte("quantity")) {
				t.Error("a sealed dataset file shows a column name in plaintext")
			}
		}

		again, err := OpenDatasets(Limits{Enabled: true, ConcurrentJobs: 1}, nil, per)
		if err != nil {
			t.Fatal(err)
		}
		got, err := again.Dataset("shop", info.ID)
		if err != nil || got.Rows != 100 || got.Bytes != info.Bytes {
			t.Fatalf("dataset after the restart: %+v, %v", got, err)
		}
		if b, err := again.Result("shop", info.ID, first.ID); err != nil || !bytes.Equal(b, firstResult) {
			t.Fatalf("the finished job's result after the restart: %d bytes, %v", len(b), err)
		}
		for _, j := range append(cut, first) {
			b := waitResult(t, again, "shop", info.ID, j.ID)
			var res Result
			if err := res.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			dec, _ := decryptMap(t, fx.keys, &res)
			want := plainTerms(t, d, job, &res.Header)
			if dec["sum(quantity)"] != want["sum(quantity)"] {
				t.Errorf("job %s after the restart: sum %v, want %v", j.ID, dec["sum(quantity)"], want["sum(quantity)"])
			}
		}
		if err := again.Delete("shop", info.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "shop", info.ID)); !os.IsNotExist(err) {
			t.Errorf("the deleted dataset's directory remains: %v", err)
		}
		_ = again.Close(context.Background())
	}
}

// A damaged or missing file stops the open with an error naming it; an
// upload cut before its dataset file is removed; an expired dataset is
// deleted at open and on lookup.
func TestDatasetsDamageAndExpiry(t *testing.T) {
	t.Parallel()
	p := testInsecureBGV
	fx := keysFor(t, p)
	d := newDataset(t, 50)
	ctype, body := uploadBody(t, fx, p, d)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	setup := func(t *testing.T) (string, DatasetInfo) {
		dir := t.TempDir()
		ds, err := OpenDatasets(Limits{Enabled: true}, clock, Persist{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		info, err := ds.Upload(context.Background(), "shop", ctype, bytes.NewReader(body.Bytes()), int64(body.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ds.Submit("shop", info.ID, Job{Op: OpSum, Column: "quantity"}); err != nil {
			t.Fatal(err)
		}
		_ = ds.Close(context.Background())
		return dir, info
	}
	for _, file := range []string{"table", "keys", "dataset", "job-"} {
		t.Run("flip "+file, func(t *testing.T) {
			dir, info := setup(t)
			path := filepath.Join(dir, "shop", info.ID, file)
			if file == "job-" {
				m, _ := filepath.Glob(path + "*")
				path = m[0]
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			raw[len(raw)-7] ^= 0x40
			_ = os.WriteFile(path, raw, 0o600)
			_, err = OpenDatasets(Limits{Enabled: true}, clock, Persist{Dir: dir})
			var dm *statefile.Damaged
			if !errors.As(err, &dm) || dm.File != path || !strings.Contains(err.Error(), path) {
				t.Fatalf("open over a damaged %s: %v, want a refusal naming %s", file, err, path)
			}
		})
	}
	t.Run("missing table", func(t *testing.T) {
		dir, info := setup(t)
		path := filepath.Join(dir, "shop", info.ID, "table")
		_ = os.Remove(path)
		if _, err := OpenDatasets(Limits{Enabled: true}, clock, Persist{Dir: dir}); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("open without the table: %v, want a refusal naming %s", err, path)
		}
	})
	t.Run("unacknowledged upload", func(t *testing.T) {
		dir, info := setup(t)
		_ = os.Remove(filepath.Join(dir, "shop", info.ID, "dataset"))
		ds, err := OpenDatasets(Limits{Enabled: true}, clock, Persist{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close(context.Background())
		if _, err := os.Stat(filepath.Join(dir, "shop", info.ID)); !os.IsNotExist(err) {
			t.Errorf("the cut upload's directory remains: %v", err)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		dir, info := setup(t)
		ds, err := OpenDatasets(Limits{Enabled: true, Expiry: time.Hour}, clock, Persist{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ds.Dataset("shop", info.ID); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour + time.Second)
		defer func() { now = now.Add(-time.Hour - time.Second) }()
		if _, err := ds.Dataset("shop", info.ID); privalytics.ErrorCode(err) != privalytics.ENOTFOUND || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("an expired dataset: %v, want %s saying expired", err, privalytics.ENOTFOUND)
		}
		if _, err := os.Stat(filepath.Join(dir, "shop", info.ID)); !os.IsNotExist(err) {
			t.Errorf("the expired dataset's directory remains: %v", err)
		}
		if ds.held != 0 {
			t.Errorf("held bytes after expiry = %d", ds.held)
		}
		_ = ds.Close(context.Background())
	})
}
