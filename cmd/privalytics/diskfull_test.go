package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
)

// The server on a full disk answers ingest with 507 and a message, keeps
// running, takes batches again once space is freed under it, and after a
// restart holds every acknowledged batch exactly once (the issue: 500, and 40
// of 40 batches acknowledged after space was freed deleted at the restart).
func TestDiskFullServerAnswers507AndLosesNothing(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "small-disk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=16m"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs on %s: %v (CI runs as root and must run the disk-full test)", disk, err)
		}
		t.Skipf("cannot mount a tmpfs on %s (%v): run as root to test a full disk", disk, err)
	}
	t.Cleanup(func() { syscall.Unmount(disk, 0) })
	dir := filepath.Join(disk, "data")
	acked, refused := 0, 0
	_, body := rightsEvents([]string{"alice", "bob"}, 5) // 10 events a batch
	runOnce(t, startupConfig(dir), func(a *App) {
		ctx := context.Background()
		op := client.New(a.URL(), a.OperatorToken)
		res, err := op.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "shop", Budget: wire.Cost{Epsilon: 10}})
		if err != nil {
			t.Fatal(err)
		}
		ingest := op.WithToken(res.AdminKey.Token)
		send := func(i int) error {
			_, err := ingest.Ingest(ctx, body, client.IngestOptions{IdempotencyKey: fmt.Sprint("batch-", i)})
			if err == nil {
				acked++
			}
			return err
		}
		i := 0
		for ; i < 5; i++ {
			if err := send(i); err != nil {
				t.Fatal(err)
			}
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(disk, &st); err != nil {
			t.Fatal(err)
		}
		filler := filepath.Join(disk, "filler")
		if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*st.Bsize-64<<10), 0o600); err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatal(err)
		}
		for ; refused < 5 && i < 2_000; i++ {
			if err := send(i); err != nil {
				if privalytics.ErrorCode(err) != privalytics.ESTORAGEFULL {
					t.Fatalf("ingest on a full disk: %v, want code %s (507)", err, privalytics.ESTORAGEFULL)
				}
				refused++
			}
		}
		if refused == 0 {
			t.Fatal("the disk never filled up")
		}
		os.Remove(filler)
		for range 40 {
			if err := send(i); err != nil {
				t.Fatalf("ingest after space was freed: %v", err)
			}
			i++
		}
	})
	t.Logf("%d batches acknowledged, %d refused with 507", acked, refused)
	mk, _, err := keyring.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := events.Open(filepath.Join(dir, "events"), events.Options{Encryption: mk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap, err := s.Snapshot(context.Background(), "shop", privalytics.DefaultRetailSchema())
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if snap.Rows() != acked*10 {
		t.Errorf("after the restart %d events are stored, want %d (%d acknowledged batches of 10)", snap.Rows(), acked*10, acked)
	}
}
