package events

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestLogPagesLeaveTheCache appends 8 MB of frames with fsync on and asks the
// kernel (mincore) how much of the log is still in the page cache: the store
// drops what it has synced (dropCached), so that a long import does not fill
// memory with log pages nobody reads. Without the advice, every page of a
// freshly written file stays resident.
func TestLogPagesLeaveTheCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, 1<<30, nil)
	defer s.Close()
	appendAll(t, s, 0, batches(0, 8, 20_000))
	logs := walFiles(t, dir)
	if len(logs) != 1 {
		t.Fatalf("%d log files, want 1", len(logs))
	}
	f, err := os.Open(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 4<<20 {
		t.Fatalf("the log holds %d bytes; the test wants megabytes", fi.Size())
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	// One page per append may stay: the partial one at the log's end.
	if resident > len(vec)/10 {
		t.Errorf("%d of the log's %d pages are in the page cache after the appends were synced", resident, len(vec))
	}
}
