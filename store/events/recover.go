package events

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/privalytics/privalytics"
)

// Recovery refuses instead of deleting (see FORMAT.md, "Recovery"): a tenant's
// files are first inspected without changing anything. What a crash can leave
// (a torn tail on the newest log, logs already in a segment, the segment of an
// interrupted seal, a stray compaction file) is cleaned up on open, because
// nothing acknowledged is in it. Anything else that cannot be read, or that
// disagrees with another file, is a Damage: the tenant is not loaded, every
// file stays as it is, and `privalytics fsck` reports it while `privalytics
// repair` applies the fix the Damage describes.

// Damage is a problem in a tenant's files that recovery will not resolve on its
// own, because every way to resolve it could lose acknowledged events.
type Damage struct {
	Tenant  string `json:"tenant"`
	File    string `json:"file"`    // relative to the event store's directory: <tenant>/wal/00000003.log
	Problem string `json:"problem"` // what is wrong
	// Repair says what `privalytics repair` does about it and what that gives
	// up; empty when no repair can help (a newer format, a missing master key).
	Repair string `json:"repair,omitempty"`

	fix func() error
}

func (d *Damage) Error() string {
	s := fmt.Sprintf("events: tenant %s: %s: %s", d.Tenant, d.File, d.Problem)
	if d.Repair != "" {
		s += "; `privalytics repair` would " + d.Repair
	} else {
		s += "; no repair can help"
	}
	return s
}

// Unwrap gives callers the coded error: the tenant is unavailable until the
// operator decides, and the message says where to look.
func (d *Damage) Unwrap() error {
	return privalytics.Errorf(privalytics.EUNAVAILABLE,
		"tenant %s's stored events cannot be loaded until the operator decides: %s %s (see `privalytics fsck`); nothing was deleted",
		d.Tenant, d.File, d.Problem)
}

// Damages is every Damage of one tenant, so one fsck run names them all.
type Damages []*Damage

func (ds Damages) Error() string {
	msgs := make([]string, len(ds))
	for i, d := range ds {
		msgs[i] = d.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the first Damage, so errors.As finds it and its coded error.
func (ds Damages) Unwrap() error { return ds[0] }

// replayLog is one log file recovery will replay.
type replayLog struct {
	seq    int
	path   string
	frames []frame
	cut    int64  // >= 0: a torn tail from this offset is cut before replay
	reason string // why it is cut
	size   int64
}

// plan is what inspecting a tenant's files found: the manifest, the logs to
// replay, the cleanup a crash calls for, and the damage that stops loading.
type plan struct {
	man        manifest
	noManifest bool // the tenant has no MANIFEST yet (new, or written by an older build before its first seal)
	logs       []replayLog
	removeLogs []string // already in a segment (or every row hidden)
	removeSegs []string // an interrupted seal's segment, a dropped segment, a stray .compact file
	last       int      // highest log number seen or recorded
	damage     Damages
}

// inspect reads a tenant's manifest and logs and lists its segment files,
// without changing any file. keys may be nil when encryption is off.
func inspect(storeDir, id string, keys *tenantKeys) (*plan, error) {
	dir := filepath.Join(storeDir, id)
	walDir, segDir := filepath.Join(dir, "wal"), filepath.Join(dir, "segments")
	rel := func(parts ...string) string { return filepath.Join(append([]string{id}, parts...)...) }
	p := &plan{}
	damage := func(file, problem, repair string, fix func() error) {
		p.damage = append(p.damage, &Damage{Tenant: id, File: file, Problem: problem, Repair: repair, fix: fix})
	}

	segFiles, err := readDirNames(segDir)
	if err != nil {
		return nil, fmt.Errorf("events: tenant %s: %w", id, err)
	}
	seqs, err := logFiles(walDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("events: tenant %s: %w", id, err)
	}
	var parquets []string
	for _, f := range segFiles {
		if strings.HasSuffix(f, ".parquet") {
			parquets = append(parquets, f)
		}
	}

	raw, err := os.ReadFile(filepath.Join(dir, "MANIFEST"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		p.noManifest, p.man = true, manifest{Version: manifestVersion}
		if len(parquets) > 0 {
			// Without the manifest nothing says which logs the segments hold,
			// nor which erasures are pending: guessing could duplicate rows,
			// delete logs, or show erased customers again.
			damage(rel("MANIFEST"), fmt.Sprintf("is missing, yet %d segment files exist", len(parquets)),
				"write a new MANIFEST naming every segment file, and move the logs those segments already hold to quarantine/; erasures that were pending in the lost MANIFEST are not re-applied (run them again), and the idempotency keys of sealed batches are forgotten",
				func() error { return rebuildManifest(dir, parquets, seqs, keys) })
			return p, nil
		}
		if _, err := os.Stat(filepath.Join(dir, markerFile)); err == nil && len(seqs) > 0 {
			// This build wrote a MANIFEST for this tenant (the marker says so):
			// replaying the logs without it would show again customers whose
			// erasure it held.
			damage(rel("MANIFEST"), fmt.Sprintf("is missing, yet this build wrote one for the tenant (%s exists) and %d logs remain", markerFile, len(seqs)),
				"write a new MANIFEST and replay every log; erasures that were pending in the lost MANIFEST are not re-applied (run them again)",
				func() error { return rebuildManifest(dir, parquets, seqs, keys) })
			return p, nil
		}
	case err != nil:
		return nil, fmt.Errorf("events: tenant %s: %w", id, err)
	default:
		if v, perr := manifestFormat(raw); perr != nil {
			damage(rel("MANIFEST"), "cannot be read: "+perr.Error(),
				"move it to quarantine/ and write a new MANIFEST naming every segment file (as for a missing MANIFEST)",
				func() error {
					if err := quarantine(dir, "MANIFEST"); err != nil {
						return err
					}
					return rebuildManifest(dir, parquets, seqs, keys)
				})
			return p, nil
		} else if v > manifestVersion {
			damage(rel("MANIFEST"), fmt.Sprintf("has format version %d, written by a newer build; this build reads version %d: run the newer build", v, manifestVersion), "", nil)
			return p, nil
		}
		if err := json.Unmarshal(raw, &p.man); err != nil {
			damage(rel("MANIFEST"), "cannot be read: "+err.Error(), "", nil)
			return p, nil
		}
	}
	m := &p.man
	p.last = max(m.SealedThrough, m.LastLog)
	if len(seqs) > 0 {
		p.last = max(p.last, seqs[len(seqs)-1])
	}

	// Segments: every named one must exist (its checksum is verified as it
	// loads); an unnamed one may go only when something proves its rows are
	// elsewhere or meant to be gone.
	named := map[string]bool{}
	maxSeg := 0
	for _, seg := range m.Segments {
		named[seg.File] = true
		maxSeg = max(maxSeg, segmentSeq(seg.File))
		if _, err := os.Stat(filepath.Join(segDir, seg.File)); err != nil {
			damage(rel("segments", seg.File), fmt.Sprintf("is named by the MANIFEST (%d rows) but cannot be opened: %v", seg.Rows, err),
				fmt.Sprintf("drop it from the MANIFEST, giving up its %d rows (restore the file from a backup instead if you have one)", seg.Rows),
				func() error { return dropSegment(dir, seg.File) })
		}
	}
	hasLog := map[int]bool{}
	for _, s := range seqs {
		hasLog[s] = true
	}
	for _, f := range segFiles {
		if named[f] {
			continue
		}
		if strings.HasSuffix(f, ".compact") && named[strings.TrimSuffix(f, ".compact")] {
			p.removeSegs = append(p.removeSegs, f) // a compaction stopped before its rename; the original is intact
			continue
		}
		seq, ok := parseSeq(f, ".parquet")
		switch {
		case !ok:
			continue // not ours: left alone
		case seq > m.SealedThrough && hasLog[seq]:
			p.removeSegs = append(p.removeSegs, f) // an interrupted seal: its rows are still in the logs
		case slices.Contains(m.Dropped, f):
			p.removeSegs = append(p.removeSegs, f) // compaction left it with no rows and dropped it
		case seq <= m.SealedThrough:
			// Sealed, and its logs are gone: its rows are nowhere else.
			damage(rel("segments", f), "is not named by the MANIFEST, and the logs it was sealed from are gone, so it holds the only copy of its rows",
				"name it in the MANIFEST again (erasures that were pending for it and are no longer in the MANIFEST are not re-applied)",
				func() error { return nameSegment(dir, f, keys) })
		default:
			damage(rel("segments", f), "is not named by the MANIFEST, and the last log it was sealed from is missing, so it may hold the only copy of its rows",
				"move it to quarantine/, giving up whatever rows only it holds",
				func() error { return quarantine(dir, filepath.Join("segments", f)) })
		}
	}

	// Logs: those at or below sealed_through are in a segment (or every row of
	// them was hidden) and go; the rest must run without a gap up to the last
	// one recorded, and only the newest may end in a torn write.
	covered := max(maxSeg, m.DroppedThrough)
	var live []int
	for _, seq := range seqs {
		if seq > m.SealedThrough {
			live = append(live, seq)
			continue
		}
		if seq <= covered {
			p.removeLogs = append(p.removeLogs, filepath.Join(walDir, logName(seq)))
			continue
		}
		damage(rel("wal", logName(seq)), fmt.Sprintf("is at or below the MANIFEST's sealed_through %d, yet no segment holds it (the newest segment is numbered %d)", m.SealedThrough, maxSeg),
			fmt.Sprintf("lower sealed_through to %d so the log is replayed", covered),
			func() error { return lowerSealedThrough(dir, covered) })
	}
	for seq := max(m.SealedThrough+1, m.LogsFrom); m.LogsFrom > 0 && seq <= max(m.LastLog, lastOf(live)); seq++ {
		if !hasLog[seq] {
			damage(rel("wal", logName(seq)), "is missing: the batches acknowledged into it are lost unless the file is restored from a backup",
				"create it empty, giving up those batches",
				func() error { return createEmpty(filepath.Join(walDir, logName(seq))) })
		}
	}
	for i, seq := range live {
		path := filepath.Join(walDir, logName(seq))
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("events: tenant %s: %w", id, err)
		}
		frames, good, reason, err := parseLog(data, keys)
		file := rel("wal", logName(seq))
		if err != nil {
			damage(file, "cannot be decrypted: "+err.Error()+" (is this the master key the data was written with?)", "", nil)
			continue
		}
		rl := replayLog{seq: seq, path: path, frames: frames, cut: -1, size: int64(len(data))}
		if reason != "" {
			rest := data[good:]
			switch {
			case newerMagic(rest):
				damage(file, fmt.Sprintf("holds a frame at offset %d in format %q, written by a newer build; this build reads PVL1 and PVE1: run the newer build", good, rest[:4]), "", nil)
				continue
			case i < len(live)-1 || !tornWrite(rest, good):
				// A torn write is only ever the end of the newest log: no
				// frame is written after a failed one until it is cut back.
				// Bytes that do not read followed by more frames or logs are
				// damage, and those frames were acknowledged; so is a whole
				// last frame damaged in place (a flipped bit, not a write
				// cut short).
				after := "later logs follow"
				if i == len(live)-1 {
					after = "it is a whole frame damaged in place, or whole frames follow it"
				}
				kept := int64(good)
				damage(file, fmt.Sprintf("has an unreadable frame at offset %d (%s) and %s, so it is not a torn write", good, reason, after),
					fmt.Sprintf("move its last %d bytes (from offset %d, every frame after the bad one included) to quarantine/ and keep the %d frames before it and every later log", len(data)-int(good), good, len(frames)),
					func() error { return quarantineTail(dir, filepath.Join("wal", logName(seq)), kept) })
				continue
			}
			rl.cut, rl.reason = good, reason
		}
		p.logs = append(p.logs, rl)
	}
	return p, nil
}

// markerFile is written in a tenant's directory once this build has written
// its MANIFEST, so a MANIFEST lost later is told apart from a tenant an older
// build wrote before its first seal (which had none).
const markerFile = "EVENTS"

// manifestVersion is the MANIFEST format this build writes and reads.
const manifestVersion = 1

// manifestFormat reads only the version, so a newer manifest is recognised
// even when this build cannot decode the rest.
func manifestFormat(raw []byte) (int, error) {
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, err
	}
	if v.Version < 1 {
		return 0, fmt.Errorf("format version %d", v.Version)
	}
	return v.Version, nil
}

// newerMagic reports whether b starts with a frame magic of a later format of
// ours ("PVL2", "PVE3", …): it must be refused, not cut as a torn write.
func newerMagic(b []byte) bool {
	if len(b) < 4 || b[0] != 'P' || b[1] != 'V' || (b[2] != 'L' && b[2] != 'E') {
		return false
	}
	return b[3] > '1' && b[3] <= '9'
}

// tornWrite reports whether rest, the unreadable end of the newest log from
// file offset off, is what a write cut short by a crash or a failed write
// leaves: a frame whose bytes stop early, or whose missing pages read back as
// zeros. It is not when a whole frame with a good CRC follows, when the bytes
// are one whole frame with only its magic or length damaged (its CRC matches
// the rest of the file), or when they are one whole frame of the right length
// with no zeroed block in it (a bit flipped in place): those frames were
// acknowledged, and cutting them would lose them.
func tornWrite(rest []byte, off int64) bool {
	if laterFrame(rest) {
		return false
	}
	if len(rest) < frameHeader {
		return true
	}
	sum := binary.LittleEndian.Uint32(rest[8:])
	if crcOf(rest[frameHeader:]) == sum && len(rest) > frameHeader {
		return false // whole, with a damaged magic or length field
	}
	n := int(binary.LittleEndian.Uint32(rest[4:]))
	if n != len(rest)-frameHeader {
		return true // stops early (or a length no frame here could have)
	}
	return hasZeroBlock(rest, off)
}

// hasZeroBlock reports whether b (at file offset off) holds a 512-byte block,
// aligned in the file, of zeros only: a block the crash kept from reaching disk.
// The last partial block counts when it is all zeros.
func hasZeroBlock(b []byte, off int64) bool {
	const blk = 512
	start := int((blk - off%blk) % blk)
	for i := start; i < len(b); i += blk {
		end := min(i+blk, len(b))
		zero := true
		for _, c := range b[i:end] {
			if c != 0 {
				zero = false
				break
			}
		}
		if zero {
			return true
		}
	}
	return false
}

// laterFrame reports whether a whole frame with a good CRC starts anywhere in
// b after its first byte: then b is not a torn tail but damage with
// acknowledged frames after it.
func laterFrame(b []byte) bool {
	for off := 1; off+frameHeader <= len(b); off++ {
		if !bytes.Equal(b[off:off+4], frameMagic[:]) && !bytes.Equal(b[off:off+4], encFrameMagic[:]) {
			continue
		}
		n := int(binary.LittleEndian.Uint32(b[off+4:]))
		if n > maxFrame || len(b)-off-frameHeader < n {
			continue
		}
		if crcOf(b[off+frameHeader:off+frameHeader+n]) == binary.LittleEndian.Uint32(b[off+8:]) {
			return true
		}
	}
	return false
}

func lastOf(s []int) int {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

func parseSeq(name, suffix string) (int, bool) {
	n, ok := strings.CutSuffix(name, suffix)
	if !ok || len(n) != 8 {
		return 0, false
	}
	seq, err := strconv.Atoi(n)
	return seq, err == nil && seq > 0
}

func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// The fixes `privalytics repair` applies. Each moves what it gives up to the
// tenant's quarantine/ directory instead of deleting it.

func quarantine(dir, name string) error {
	q := filepath.Join(dir, "quarantine")
	if err := fsys.MkdirAll(q, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(q, strings.ReplaceAll(name, string(filepath.Separator), "_"))
	if _, err := os.Stat(dst); err == nil {
		dst += "." + strconv.FormatInt(int64(os.Getpid()), 10)
	}
	if err := fsys.Rename(filepath.Join(dir, name), dst); err != nil {
		return err
	}
	if err := syncDir(q); err != nil {
		return err
	}
	return syncDir(filepath.Dir(filepath.Join(dir, name)))
}

// quarantineTail copies the bytes of dir/name from offset keep to quarantine/,
// then cuts the file there.
func quarantineTail(dir, name string, keep int64) error {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	q := filepath.Join(dir, "quarantine")
	if err := fsys.MkdirAll(q, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(q, fmt.Sprintf("%s.from-%d", filepath.Base(name), keep))
	if err := writeFileSync(dst, data[keep:]); err != nil {
		return err
	}
	if err := syncDir(q); err != nil {
		return err
	}
	return truncateSync(path, keep)
}

func writeFileSync(path string, data []byte) error {
	f, err := fsys.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	return errors.Join(werr, serr, f.Close())
}

func truncateSync(path string, size int64) error {
	f, err := fsys.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	terr := f.Truncate(size)
	serr := f.Sync()
	return errors.Join(terr, serr, f.Close())
}

func createEmpty(path string) error {
	if err := writeFileSync(path, nil); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func editManifest(dir string, edit func(*manifest)) error {
	m, err := readManifest(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		return err
	}
	edit(&m)
	return writeManifest(dir, m)
}

func dropSegment(dir, file string) error {
	return editManifest(dir, func(m *manifest) {
		m.Segments = slices.DeleteFunc(m.Segments, func(s segment) bool { return s.File == file })
	})
}

func nameSegment(dir, file string, keys *tenantKeys) error {
	rows, err := segmentRowCount(filepath.Join(dir, "segments", file), keys)
	if err != nil {
		return fmt.Errorf("segment %s: %w (move it away by hand if it is damaged)", file, err)
	}
	return editManifest(dir, func(m *manifest) {
		m.Segments = append(m.Segments, segment{File: file, Rows: rows})
		slices.SortFunc(m.Segments, func(a, b segment) int { return strings.Compare(a.File, b.File) })
	})
}

func lowerSealedThrough(dir string, to int) error {
	return editManifest(dir, func(m *manifest) { m.SealedThrough = to })
}

// rebuildManifest writes a manifest naming every segment file. A segment is
// named after the last log it holds, so the logs up to the newest segment are
// in segments and move to quarantine/ (never replayed twice).
func rebuildManifest(dir string, parquets []string, seqs []int, keys *tenantKeys) error {
	m := manifest{Version: manifestVersion}
	for _, f := range parquets {
		seq, ok := parseSeq(f, ".parquet")
		if !ok {
			continue
		}
		rows, err := segmentRowCount(filepath.Join(dir, "segments", f), keys)
		if err != nil {
			return fmt.Errorf("segment %s: %w (move it away by hand if it is damaged)", f, err)
		}
		m.Segments = append(m.Segments, segment{File: f, Rows: rows})
		m.SealedThrough = max(m.SealedThrough, seq)
	}
	for _, seq := range seqs {
		if seq <= m.SealedThrough {
			if err := quarantine(dir, filepath.Join("wal", logName(seq))); err != nil {
				return err
			}
		}
	}
	m.LastLog = max(m.SealedThrough, lastOf(seqs))
	m.LogsFrom = m.LastLog + 1 // the logs kept are not known to be gapless
	return writeManifest(dir, m)
}

// Fsck inspects every tenant under the store's directory without changing a
// file and returns the damage found. Segments are read whole to verify their
// checksums. Encrypted tenants need opt.Encryption.
func Fsck(dir string, opt Options) (Damages, error) {
	return check(dir, opt)
}

// Repair applies the fix of every Damage Fsck reports (what each gives up is
// in its Repair text; nothing is deleted, what is given up moves to the
// tenant's quarantine/ directory) and returns the damage it could not fix.
// Run it only with the server stopped: it takes no lock of its own.
func Repair(dir string, opt Options) (fixed, left Damages, err error) {
	for range 4 { // a fix can uncover the next problem (a rebuilt manifest, then its logs)
		ds, err := check(dir, opt)
		if err != nil {
			return fixed, left, err
		}
		left = nil
		progress := false
		for _, d := range ds {
			if d.fix == nil {
				left = append(left, d)
				continue
			}
			if err := d.fix(); err != nil {
				return fixed, left, fmt.Errorf("repair %s: %w", d.File, err)
			}
			fixed, progress = append(fixed, d), true
		}
		if !progress {
			return fixed, left, nil
		}
	}
	return fixed, left, nil
}

func check(dir string, opt Options) (Damages, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("events: fsck %s: %w", dir, err)
	}
	var out Damages
	for _, e := range ents {
		if !e.IsDir() || !tenantIDPattern.MatchString(e.Name()) {
			continue
		}
		id := e.Name()
		tdir := filepath.Join(dir, id)
		var keys *tenantKeys
		if _, err := os.Stat(filepath.Join(tdir, "KEYS")); os.IsNotExist(err) {
			if f := encryptedFile(tdir); f != "" {
				out = append(out, &Damage{Tenant: id, File: filepath.Join(id, "KEYS"),
					Problem: fmt.Sprintf("is missing, yet %s is encrypted with a key it held: restore KEYS from a backup", f)})
				continue
			}
		} else if err == nil {
			if opt.Encryption == nil {
				out = append(out, &Damage{Tenant: id, File: filepath.Join(id, "KEYS"), Problem: "the tenant is encrypted at rest: run fsck with the master key"})
				continue
			}
			if keys, err = readKeys(tdir, id, opt.Encryption); err != nil {
				out = append(out, &Damage{Tenant: id, File: filepath.Join(id, "KEYS"), Problem: err.Error()})
				continue
			}
		}
		p, err := inspect(dir, id, keys)
		if err != nil {
			return out, err
		}
		out = append(out, p.damage...)
		if len(p.damage) > 0 {
			continue
		}
		for _, seg := range p.man.Segments {
			if _, err := readSegmentFile(filepath.Join(tdir, "segments", seg.File), seg, keys); err != nil {
				out = append(out, segmentDamage(dir, id, seg, err))
			}
		}
	}
	return out, nil
}

// segmentDamage describes a named segment that fails to load.
func segmentDamage(storeDir, id string, seg segment, err error) *Damage {
	var ferr *formatError
	if errors.As(err, &ferr) {
		return &Damage{Tenant: id, File: filepath.Join(id, "segments", seg.File), Problem: err.Error()}
	}
	dir := filepath.Join(storeDir, id)
	return &Damage{Tenant: id, File: filepath.Join(id, "segments", seg.File), Problem: "cannot be read: " + err.Error(),
		Repair: fmt.Sprintf("move it to quarantine/ and drop it from the MANIFEST, giving up its %d rows (restore the file from a backup instead if you have one)", seg.Rows),
		fix: func() error {
			if err := quarantine(dir, filepath.Join("segments", seg.File)); err != nil {
				return err
			}
			return dropSegment(dir, seg.File)
		}}
}

// formatError is a file in a format this build does not know (a newer one).
type formatError struct{ msg string }

func (e *formatError) Error() string { return e.msg }

// Tenants lists the tenants under an event store directory that hold any
// stored file (a MANIFEST, a log, a segment, KEYS), without opening them; a
// missing directory has none. Start-up uses it to refuse a metadata database
// or master key recreated over existing events.
func Tenants(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || !tenantIDPattern.MatchString(e.Name()) {
			continue
		}
		tdir := filepath.Join(dir, e.Name())
		has := false
		for _, f := range []string{"MANIFEST", "KEYS"} {
			if _, err := os.Stat(filepath.Join(tdir, f)); err == nil {
				has = true
			}
		}
		for _, sub := range []string{"wal", "segments"} {
			if names, _ := readDirNames(filepath.Join(tdir, sub)); len(names) > 0 {
				has = true
			}
		}
		if has {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
