package backup

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/privalytics/privalytics"
)

func TestBackupAndRestoreRefuseANonEmptyDestination(t *testing.T) {
	t.Parallel()
	src, dest := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "something"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Backup(context.Background(), Files{DataDir: src}, dest); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Errorf("backup into a non-empty directory: %v, want a conflict", err)
	}
	if _, err := Restore(src, dest); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Errorf("restore into a non-empty directory: %v, want a conflict", err)
	}
}

// An audit line being appended while the copy runs is left out, as a crash
// would leave it; whole lines are copied.
func TestCopyWholeLinesLeavesATornLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(src, []byte("{\"seq\":1}\n{\"seq\":2}\n{\"se"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "copy", "audit.log")
	n, err := copyWholeLines(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(dst)
	if want := "{\"seq\":1}\n{\"seq\":2}\n"; string(raw) != want || n != int64(len(want)) {
		t.Errorf("copied %q (%d bytes), want %q", raw, n, want)
	}
}
