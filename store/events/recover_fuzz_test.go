package events

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLogTail feeds arbitrary bytes to the checks that tell a torn write from
// damage and that backups use to cut a log at its last whole frame. They must
// never panic; parseLog never keeps more than the whole frames; a tail with a
// whole frame after its start is never called a torn write.
func FuzzLogTail(f *testing.F) {
	whole := validLog(f, 3, 1)
	f.Add(whole)
	f.Add(append(append([]byte{}, whole...), make([]byte, 700)...))
	f.Add(whole[:len(whole)-9])
	f.Add([]byte("PVL2\x10\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := wholeFrames(data)
		if n < 0 || n > len(data) {
			t.Fatalf("wholeFrames %d outside 0..%d", n, len(data))
		}
		_, good, reason, err := parseLog(data, nil)
		if err != nil {
			return
		}
		if int(good) > n {
			t.Fatalf("parseLog kept %d bytes, only %d are whole frames", good, n)
		}
		if reason == "" {
			return
		}
		rest := data[good:]
		_ = newerMagic(rest)
		if laterFrame(rest) && tornWrite(rest, good) {
			t.Fatal("a tail with a whole frame after its start was called a torn write")
		}
	})
}

// FuzzInspectManifest runs recovery's inspection on a tenant whose MANIFEST
// is arbitrary bytes, next to one log and one segment file. It must never
// panic or change a file, and must either plan a load or report damage.
func FuzzInspectManifest(f *testing.F) {
	f.Add([]byte(`{"version": 1, "segments": [{"file": "00000001.parquet", "rows": 3}], "sealed_through": 1, "last_log": 2}`))
	f.Add([]byte(`{"version": 2}`))
	f.Add([]byte(`{"version": 1, "sealed_through": 9}`))
	f.Add([]byte(`{"version": 1, "segments": [{"file": "../../x", "rows": -1, "next": {"rows": 1}}]}`))
	f.Add([]byte(`{"vers`))
	f.Fuzz(func(t *testing.T, manifestBytes []byte) {
		dir := t.TempDir()
		tdir := filepath.Join(dir, "t1")
		for _, d := range []string{"wal", "segments"} {
			if err := os.MkdirAll(filepath.Join(tdir, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		files := map[string][]byte{
			"MANIFEST":                  manifestBytes,
			"wal/00000002.log":          validLog(t, 1),
			"segments/00000001.parquet": []byte("PAR1 not really"),
		}
		for name, raw := range files {
			if err := os.WriteFile(filepath.Join(tdir, name), raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		before := treeBytes(t, dir)
		p, err := inspect(dir, "t1", nil)
		if err != nil {
			return // an I/O error, not a decision
		}
		if p == nil {
			t.Fatal("inspect returned neither a plan nor an error")
		}
		for _, d := range p.damage {
			if d.File == "" || d.Problem == "" {
				t.Fatalf("damage without a file or problem: %+v", d)
			}
		}
		if after := treeBytes(t, dir); len(after) != len(before) {
			t.Fatal("inspect changed the files")
		}
	})
}
