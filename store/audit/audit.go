// Package audit is the audit trail of a Privalytics server: an append-only file
// of JSON lines in the data directory (audit.log), each entry hash-chained to
// the one before, so that editing, deleting or reordering any entry is detected
// by Verify (and `privalytics audit verify`). It implements privalytics.AuditLog.
//
// Format, one entry per line, UTF-8 JSON (the fields of privalytics.AuditEntry):
//
//	{"seq":1,"time":"…","actor":"k_…","tenant_id":"shop","action":"key.issue",
//	 "target":"k_…","outcome":"ok","details":{…},"prev_hash":"00…00","hash":"…"}
//
// hash is the hex SHA-256 of the canonical encoding: the ASCII tag
// "privalytics-audit-v1", then each of seq (decimal), time (RFC 3339 with
// nanoseconds, UTC), actor, tenant_id, action, target, outcome, the number of
// details (decimal), each detail's key and value in byte order of the keys, and
// prev_hash — every one of these written as its length in bytes (unsigned
// varint) followed by its bytes. Length prefixes make the encoding unambiguous
// (no separator can be forged inside a field). prev_hash of the first entry is
// 64 zeros; seq starts at 1 and goes up by one.
//
// What the chain does not prove: that the newest entries were not cut off the
// end, nor that someone who can write the file did not rewrite the whole chain.
// Verify prints the head (seq and hash); recording it elsewhere from time to
// time (a ticket, an e-mail) anchors everything before it.
package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/privalytics/privalytics"
)

// FileName is the audit log's name inside a data directory.
const FileName = "audit.log"

// GenesisHash is the prev_hash of the first entry.
var GenesisHash = hex.EncodeToString(make([]byte, sha256.Size))

const tag = "privalytics-audit-v1"

// MaxLineBytes bounds one entry; Verify rejects longer lines rather than
// reading without limit.
const MaxLineBytes = 64 << 10

// Hash returns the hex SHA-256 of e's canonical encoding (e.Hash itself is not
// part of it).
func Hash(e *privalytics.AuditEntry) string {
	var b []byte
	put := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	put(tag)
	put(strconv.FormatUint(e.Seq, 10))
	put(e.Time.UTC().Format(time.RFC3339Nano))
	put(e.Actor)
	put(e.TenantID)
	put(e.Action)
	put(e.Target)
	put(e.Outcome)
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	put(strconv.Itoa(len(keys)))
	for _, k := range keys {
		put(k)
		put(e.Details[k])
	}
	put(e.PrevHash)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Log is the audit log file of one server. It is safe for concurrent use; one
// process writes it (the data directory's lock guarantees that).
type Log struct {
	mu     sync.Mutex // orders appends: seq, head, size
	f      *os.File
	path   string
	size   int64
	seq    uint64
	head   string
	now    func() time.Time
	broken error // set by a failed fsync: nothing more is appended

	// Group commit: an appender writes under mu, then waits until an fsync
	// covers its bytes. One fsync covers every entry written before it, so
	// concurrent requests share fsyncs instead of queueing for one each.
	syncMu sync.Mutex
	synced int64 // bytes known durable
}

var _ privalytics.AuditLog = (*Log)(nil)

// Open opens (creating, 0600) the audit log at path and finds its head. A torn
// last line — a crash during an append, whose action was never acknowledged —
// is cut off. Open does not verify the whole chain (that is Verify's job, and
// would make start-up time grow with the log); it refuses a log whose last
// entry cannot be read.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	l := &Log{f: f, path: path, head: GenesisHash, now: time.Now}
	if err := l.recover(); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) recover() error {
	data, err := io.ReadAll(l.f)
	if err != nil {
		return fmt.Errorf("audit: read %s: %w", l.path, err)
	}
	end := bytes.LastIndexByte(data, '\n') + 1
	if end < len(data) {
		if err := l.f.Truncate(int64(end)); err != nil {
			return fmt.Errorf("audit: cut torn tail of %s: %w", l.path, err)
		}
		data = data[:end]
	}
	l.size, l.synced = int64(end), int64(end)
	if end == 0 {
		return nil
	}
	last := data[bytes.LastIndexByte(data[:end-1], '\n')+1 : end-1]
	var e privalytics.AuditEntry
	if err := json.Unmarshal(last, &e); err != nil || e.Seq == 0 || len(e.Hash) != 64 {
		return fmt.Errorf("audit: the last entry of %s cannot be read; run `privalytics audit verify --file %s` and restore the log from a backup", l.path, l.path)
	}
	l.seq, l.head = e.Seq, e.Hash
	return nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Head returns the sequence number and hash of the newest entry (0 and
// GenesisHash for an empty log).
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.head
}

// Append chains e to the log and returns once it is fsynced. A failed write
// cuts the file back, so the chain stays whole; a failed fsync makes the log
// refuse further appends (the kernel may have dropped the data), and the
// server's requests fail until it is restarted and the log verified.
func (l *Log) Append(_ context.Context, e *privalytics.AuditEntry) error {
	l.mu.Lock()
	if l.f == nil {
		l.mu.Unlock()
		return errors.New("audit: append to a closed log")
	}
	if l.broken != nil {
		l.mu.Unlock()
		return l.broken
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	e.Seq, e.PrevHash = l.seq+1, l.head
	e.Hash = Hash(e)
	line, err := json.Marshal(e)
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("audit: encode: %w", err)
	}
	line = append(line, '\n')
	if _, err := l.f.WriteAt(line, l.size); err != nil {
		_ = l.f.Truncate(l.size)
		l.mu.Unlock()
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			// The client learns why (507) and that a retry later can succeed.
			return privalytics.Errorf(privalytics.ESTORAGEFULL, "the server's disk is full and the audit log cannot record this request; retry once the operator has freed space")
		}
		return fmt.Errorf("audit: append: %w", err)
	}
	l.size += int64(len(line))
	l.seq, l.head = e.Seq, e.Hash
	end := l.size
	l.mu.Unlock()
	return l.syncTo(end)
}

// syncTo returns once the first end bytes of the file are durable.
func (l *Log) syncTo(end int64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= end {
		return nil
	}
	l.mu.Lock()
	f, upTo, broken := l.f, l.size, l.broken
	l.mu.Unlock()
	if broken != nil {
		return broken
	}
	if f == nil {
		return errors.New("audit: log closed before its entry was synced")
	}
	if err := f.Sync(); err != nil {
		err = fmt.Errorf("audit: sync %s: %w; restart the server and run privalytics audit verify", l.path, err)
		l.mu.Lock()
		l.broken = err
		l.mu.Unlock()
		return err
	}
	l.synced = upTo
	return nil
}

// Entries lists the tenant's entries newest first. It reads the file up to
// the last complete append.
func (l *Log) Entries(_ context.Context, tenantID string, offset, limit int) ([]privalytics.AuditEntry, error) {
	l.mu.Lock()
	size := l.size
	l.mu.Unlock()
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("audit: entries: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, size))
	sc.Buffer(make([]byte, 0, 4096), MaxLineBytes)
	var all []privalytics.AuditEntry
	for sc.Scan() {
		var e privalytics.AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("audit: entries: entry after seq %d: %w", len(all), err)
		}
		if e.TenantID == tenantID {
			all = append(all, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: entries: %w", err)
	}
	slices.Reverse(all)
	if offset >= len(all) {
		return []privalytics.AuditEntry{}, nil
	}
	return all[offset:min(len(all), offset+limit)], nil
}

// VerifyError names the first entry that breaks the chain.
type VerifyError struct {
	Line   int    // 1-based line of the file
	Seq    uint64 // the seq the line claims (0 if unreadable)
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit log broken at line %d (seq %d): %s", e.Line, e.Seq, e.Reason)
}

// Verify reads a whole audit log and checks every entry: readable, numbered in
// order, chained to the one before, and hashing to its recorded hash. It returns
// the number of good entries and the head hash, or a *VerifyError naming the
// first bad entry.
func Verify(r io.Reader) (n int, head string, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head = GenesisHash
	for line := 1; ; line++ {
		raw, rerr := br.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			return n, head, &VerifyError{Line: line, Reason: fmt.Sprintf("the line is longer than %d bytes; it is not an entry this server wrote", MaxLineBytes)}
		}
		if len(raw) == 0 && rerr == io.EOF {
			return n, head, nil
		}
		if rerr != nil && rerr != io.EOF {
			return n, head, fmt.Errorf("audit: verify: %w", rerr)
		}
		if raw[len(raw)-1] != '\n' {
			return n, head, &VerifyError{Line: line, Reason: "the last line is incomplete (no newline): cut or torn"}
		}
		var e privalytics.AuditEntry
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return n, head, &VerifyError{Line: line, Reason: fmt.Sprintf("not a readable entry: %v", err)}
		}
		want := uint64(n) + 1
		switch {
		case e.Seq != want:
			return n, head, &VerifyError{Line: line, Seq: e.Seq, Reason: fmt.Sprintf("seq %d where %d was expected: entries were deleted, inserted or reordered before this line", e.Seq, want)}
		case e.PrevHash != head:
			return n, head, &VerifyError{Line: line, Seq: e.Seq, Reason: "prev_hash does not match the hash of the entry before: an entry before this one was removed, replaced or moved"}
		case Hash(&e) != e.Hash:
			return n, head, &VerifyError{Line: line, Seq: e.Seq, Reason: "the entry does not hash to its recorded hash: it was edited"}
		}
		n, head = n+1, e.Hash
	}
}

// VerifyFile verifies the audit log at path.
func VerifyFile(path string) (int, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	return Verify(f)
}
