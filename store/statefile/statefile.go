// Package statefile writes and reads the small state files that live beside
// the event store in the data directory: the HE processor's datasets and jobs
// (he.Datasets) and the federations' setup and rounds (federation.Registry).
//
// DESIGN: why files, not the metadata store. That state is mostly opaque
// blobs — an encrypted table can be a gigabyte, a round's aggregate and result
// are 262 kB ciphertexts, a setup holds up to 64 sealed-share bundles of
// 16 MB — written once and read back whole at start. Rows in SQLite and
// PostgreSQL would need streaming large objects on one and not the other, and a
// migration pair for what no query ever filters on. A file per object, written
// to a temporary name, fsynced and renamed over the old one (then the
// directory fsynced), is atomic on both store choices and is copied by
// `privalytics backup` with the rest of the data directory.
//
// Format (version 1): "PVSF", a version byte, a mode byte (0 plaintext, 1
// sealed), a kind length byte and the kind (what the file holds, e.g.
// "he-table"); then frames of at most ChunkSize plaintext bytes, each a 4-byte
// big-endian body length, a flags byte (1 = last frame) and the body. A
// plaintext body ends in the CRC-32C of its data; a sealed body is the master
// key's AES-256-GCM Wrap of the data, bound (associated data) to the kind, the
// file's base name, the frame's index and its last flag, so a frame cannot be
// moved, dropped, or a file renamed over another. Encryption follows the
// event store's rule: with --encrypt-at-rest (the default) files are sealed
// under the master key; a plaintext file is still read after encryption is
// turned on. Every way a file can be wrong — torn, flipped, truncated, a newer
// version, sealed without the key — is a *Damaged error naming the file.
package statefile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/privalytics/privalytics"
)

// Sealer encrypts frames at rest (keyring.MasterKey); nil writes plaintext.
type Sealer interface {
	Wrap(plaintext, associatedData []byte) ([]byte, error)
	Unwrap(wrapped, associatedData []byte) ([]byte, error)
}

// Version is the format version this build writes; it reads it and older.
const Version = 1

// ChunkSize is the most plaintext bytes in one frame.
const ChunkSize = 1 << 20

var magic = [4]byte{'P', 'V', 'S', 'F'}

const maxFrame = ChunkSize + 4096 // a sealed frame's nonce and tag, with room

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Damaged reports a state file that cannot be read as written.
type Damaged struct {
	File    string
	Problem string
}

func (d *Damaged) Error() string {
	return fmt.Sprintf("state file %s %s; restore it from a backup (`privalytics restore`) or move it aside to drop what it holds", d.File, d.Problem)
}

// Writer streams one file to a temporary name; Commit makes it visible.
type Writer struct {
	path, kind string
	tmp        *os.File
	bw         *bufio.Writer
	s          Sealer
	buf        []byte
	index      uint64
	err        error
}

// Create starts writing path (which appears only at Commit) holding kind.
func Create(path, kind string, s Sealer) (*Writer, error) {
	if len(kind) == 0 || len(kind) > 255 {
		return nil, fmt.Errorf("statefile: kind %q must be 1..255 bytes", kind)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, kind: kind, tmp: f, bw: bufio.NewWriterSize(f, 1<<16), s: s, buf: make([]byte, 0, ChunkSize)}
	mode := byte(0)
	if s != nil {
		mode = 1
	}
	hdr := append(magic[:], Version, mode, byte(len(kind)))
	hdr = append(hdr, kind...)
	if _, err := w.bw.Write(hdr); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && w.err == nil {
		k := min(len(p), ChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == ChunkSize {
			w.err = w.frame(false)
		}
	}
	return n, w.err
}

func associated(kind, name string, index uint64, last bool) []byte {
	ad := make([]byte, 0, len(kind)+len(name)+10)
	ad = append(ad, kind...)
	ad = append(ad, 0)
	ad = append(ad, name...)
	ad = append(ad, 0)
	ad = binary.BigEndian.AppendUint64(ad, index)
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}

func (w *Writer) frame(last bool) error {
	var body []byte
	if w.s != nil {
		var err error
		if body, err = w.s.Wrap(w.buf, associated(w.kind, filepath.Base(w.path), w.index, last)); err != nil {
			return err
		}
	} else {
		body = binary.BigEndian.AppendUint32(w.buf, crc32.Checksum(w.buf, castagnoli))
	}
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(body)))
	if last {
		hdr[4] = 1
	}
	if _, err := w.bw.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.bw.Write(body); err != nil {
		return err
	}
	w.buf, w.index = w.buf[:0], w.index+1
	return nil
}

// Commit writes the last frame, fsyncs and renames the file into place, and
// fsyncs the directory: after Commit returns, the file survives a crash.
func (w *Writer) Commit() error {
	if w.err == nil {
		w.err = w.frame(true)
	}
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.err == nil {
		w.err = w.tmp.Sync()
	}
	if cerr := w.tmp.Close(); w.err == nil {
		w.err = cerr
	}
	if w.err == nil {
		w.err = os.Rename(w.tmp.Name(), w.path)
	}
	if w.err != nil {
		_ = os.Remove(w.tmp.Name())
		return fmt.Errorf("write %s: %w", w.path, w.err)
	}
	return SyncDir(filepath.Dir(w.path))
}

// Abort drops the temporary file.
func (w *Writer) Abort() {
	_ = w.tmp.Close()
	_ = os.Remove(w.tmp.Name())
	if w.err == nil {
		w.err = errors.New("aborted")
	}
}

// SyncDir fsyncs a directory so that renames and removals in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// WriteFile writes data to path atomically.
func WriteFile(path, kind string, s Sealer, data []byte) error {
	w, err := Create(path, kind, s)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

// Reader reads one file back, frame by frame, checking each.
type Reader struct {
	f      *os.File
	br     *bufio.Reader
	path   string
	kind   string
	s      Sealer
	sealed bool
	index  uint64
	cur    []byte
	done   bool
}

// Open opens path, which must hold kind. A file that does not exist returns
// an error wrapping fs.ErrNotExist; every other problem is a *Damaged.
func Open(path, kind string, s Sealer) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := &Reader{f: f, br: bufio.NewReaderSize(f, 1<<16), path: path, kind: kind, s: s}
	if err := r.header(); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) damaged(format string, args ...any) error {
	return &Damaged{File: r.path, Problem: fmt.Sprintf(format, args...)}
}

func (r *Reader) header() error {
	var h [7]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return r.damaged("is shorter than its header")
	}
	if [4]byte(h[:4]) != magic {
		return r.damaged("is not a Privalytics state file (bad magic)")
	}
	if h[4] == 0 || h[4] > Version {
		return r.damaged("has format version %d but this build reads up to %d: it was written by a newer Privalytics; run that version", h[4], Version)
	}
	switch h[5] {
	case 0:
	case 1:
		if r.s == nil {
			return r.damaged("is encrypted at rest; start the server with its master key")
		}
		r.sealed = true
	default:
		return r.damaged("has unknown mode %d", h[5])
	}
	k := make([]byte, h[6])
	if _, err := io.ReadFull(r.br, k); err != nil {
		return r.damaged("is shorter than its header")
	}
	if string(k) != r.kind {
		return r.damaged("holds %q, not %q", k, r.kind)
	}
	return nil
}

func (r *Reader) next() error {
	var h [5]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return r.damaged("ends after frame %d without its last frame (torn or truncated)", r.index)
	}
	n := binary.BigEndian.Uint32(h[:4])
	last := h[4] == 1
	if h[4] > 1 || n > maxFrame || (!r.sealed && n < 4) {
		return r.damaged("frame %d has a bad header", r.index)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		return r.damaged("frame %d is truncated", r.index)
	}
	if r.sealed {
		pt, err := r.s.Unwrap(body, associated(r.kind, filepath.Base(r.path), r.index, last))
		if err != nil {
			return r.damaged("frame %d does not authenticate under the master key (damaged, moved, or another key)", r.index)
		}
		body = pt
	} else {
		data := body[:n-4]
		if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(body[n-4:]) {
			return r.damaged("frame %d fails its checksum", r.index)
		}
		body = data
	}
	r.cur, r.index = body, r.index+1
	if last {
		if _, err := r.br.ReadByte(); err != io.EOF {
			return r.damaged("has bytes after its last frame")
		}
		r.done = true
	}
	return nil
}

func (r *Reader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close closes the file.
func (r *Reader) Close() error { return r.f.Close() }

// ReadFile reads a whole file.
func ReadFile(path, kind string, s Sealer) ([]byte, error) {
	r, err := Open(path, kind, s)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// IsNotExist reports whether err is a missing file.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// StoreError is the client's view of a failed write of what (e.g. "the
// table"): storage_full (507) when the disk or quota is full, otherwise an
// internal error whose details only the log shows.
func StoreError(what string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return privalytics.Errorf(privalytics.ESTORAGEFULL, "the server's disk is full: %s was not stored; retry once the operator has freed space (nothing of this request was kept)", what)
	}
	return privalytics.Errorf(privalytics.EINTERNAL, "could not store %s: %v", what, err)
}

// RemoveTemps deletes the temporary files of writes a crash cut short
// (".<name>.tmp…") in dir; none of them was ever acknowledged.
func RemoveTemps(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() && len(e.Name()) > 1 && e.Name()[0] == '.' && strings.Contains(e.Name(), ".tmp") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
