package events

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/privalytics/privalytics"
)

// Encryption at rest (see FORMAT.md, "Encryption at rest"): each tenant has
// AES-256-GCM data keys, wrapped by the server's master key in the tenant's
// KEYS file. Log frames and segment files are sealed under the tenant's current
// key; older keys stay readable until compaction has re-encrypted what they
// sealed. Destroying the KEYS file crypto-shreds the tenant.

// KeyWrapper encrypts and decrypts data keys under the master key
// (store/keyring.MasterKey).
type KeyWrapper interface {
	Wrap(plaintext, associatedData []byte) ([]byte, error)
	Unwrap(wrapped, associatedData []byte) ([]byte, error)
}

var (
	encFrameMagic   = [4]byte{'P', 'V', 'E', '1'}
	encSegmentMagic = [4]byte{'P', 'V', 'S', '1'}
)

const (
	segHeader     = 4 + 4 + 4 + 7 // magic, key ID, chunk size, nonce prefix
	segChunk      = 1 << 20       // plaintext bytes per sealed chunk of a segment file
	maxSegChunk   = 1 << 26
	gcmTag        = 16
	gcmNonce      = 12
	frameKeyBytes = 4 + gcmNonce // key ID and nonce before a frame's ciphertext
)

// keysVersion is the KEYS format this build writes and reads.
const keysVersion = 1

// keysFile is a tenant's KEYS file.
type keysFile struct {
	Version   int          `json:"version,omitempty"` // keysVersion; absent in files of older builds
	Current   uint32       `json:"current"`
	Keys      []wrappedKey `json:"keys"`
	Shredded  *time.Time   `json:"shredded_at,omitempty"`
	ShredNote string       `json:"note,omitempty"`
}

type wrappedKey struct {
	ID      uint32    `json:"id"`
	Wrapped []byte    `json:"wrapped"`
	Created time.Time `json:"created"`
}

// tenantKeys holds a tenant's unwrapped data keys.
type tenantKeys struct {
	tenant string
	dir    string
	wrap   KeyWrapper

	mu      sync.RWMutex
	file    keysFile
	aeads   map[uint32]cipher.AEAD
	current uint32
}

var errShredded = errors.New("crypto-shredded")

func keyAD(tenant string, id uint32) []byte { return fmt.Appendf(nil, "events:%s:%d", tenant, id) }

// loadKeys reads (or, on first use, creates) a tenant's keys. A shredded
// tenant's data can never be read again: ECONFLICT.
// A missing KEYS file is created only for a tenant with no encrypted file:
// making a new key over encrypted files would leave them unreadable for good.
func loadKeys(dir, tenant string, wrap KeyWrapper) (*tenantKeys, error) {
	_, err := os.Stat(filepath.Join(dir, "KEYS"))
	if !errors.Is(err, os.ErrNotExist) {
		return readKeys(dir, tenant, wrap)
	}
	if f := encryptedFile(dir); f != "" {
		return nil, Damages{{Tenant: tenant, File: filepath.Join(tenant, "KEYS"),
			Problem: fmt.Sprintf("is missing, yet %s is encrypted with a key it held: restore KEYS from a backup", f)}}
	}
	k := &tenantKeys{tenant: tenant, dir: dir, wrap: wrap, aeads: map[uint32]cipher.AEAD{}}
	if err := k.rotate(); err != nil {
		return nil, err
	}
	return k, nil
}

// shredded reports whether the tenant in dir was crypto-shredded.
func shredded(dir string) bool {
	raw, err := os.ReadFile(filepath.Join(dir, "KEYS"))
	if err != nil {
		return false
	}
	var f keysFile
	return json.Unmarshal(raw, &f) == nil && f.Shredded != nil
}

// encryptedFile returns the first log or segment of the tenant that is
// encrypted at rest, or "".
func encryptedFile(dir string) string {
	for _, sub := range []string{"wal", "segments"} {
		names, _ := readDirNames(filepath.Join(dir, sub))
		for _, n := range names {
			f, err := os.Open(filepath.Join(dir, sub, n))
			if err != nil {
				continue
			}
			var magic [4]byte
			_, err = io.ReadFull(f, magic[:])
			f.Close()
			if err == nil && (magic == encFrameMagic || magic == encSegmentMagic) {
				return filepath.Join(sub, n)
			}
		}
	}
	return ""
}

// readKeys reads a tenant's existing KEYS file and unwraps its keys.
func readKeys(dir, tenant string, wrap KeyWrapper) (*tenantKeys, error) {
	k := &tenantKeys{tenant: tenant, dir: dir, wrap: wrap, aeads: map[uint32]cipher.AEAD{}}
	raw, err := os.ReadFile(filepath.Join(dir, "KEYS"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &k.file); err != nil {
		return nil, fmt.Errorf("tenant %s: KEYS: %w", tenant, err)
	}
	if k.file.Version > keysVersion {
		return nil, privalytics.Errorf(privalytics.EUNAVAILABLE, "tenant %s: KEYS has format version %d, written by a newer build; this build reads version %d: run the newer build", tenant, k.file.Version, keysVersion)
	}
	if k.file.Shredded != nil {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "tenant %s's data keys were destroyed at %s (crypto-shredded): its events can never be read again", tenant, k.file.Shredded.Format(time.RFC3339))
	}
	for _, wk := range k.file.Keys {
		key, err := wrap.Unwrap(wk.Wrapped, keyAD(tenant, wk.ID))
		if err != nil {
			return nil, fmt.Errorf("tenant %s: KEYS: unwrap data key %d: %w (is this the master key the data was written with?)", tenant, wk.ID, err)
		}
		if k.aeads[wk.ID], err = newAEAD(key); err != nil {
			return nil, err
		}
	}
	if _, ok := k.aeads[k.file.Current]; !ok {
		return nil, fmt.Errorf("KEYS names current key %d, which it does not hold", k.file.Current)
	}
	k.current = k.file.Current
	return k, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("data key is %d bytes, want 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// rotate makes a new current key; writes after it use the new key. The KEYS
// file is replaced atomically before the key is used.
func (k *tenantKeys) rotate() error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	id := uint32(1)
	for _, wk := range k.file.Keys {
		id = max(id, wk.ID+1)
	}
	wrapped, err := k.wrap.Wrap(key, keyAD(k.tenant, id))
	if err != nil {
		return err
	}
	f := k.file
	f.Version = keysVersion
	f.Keys = append(slices.Clone(f.Keys), wrappedKey{ID: id, Wrapped: wrapped, Created: time.Now().UTC()})
	f.Current = id
	aead, err := newAEAD(key)
	if err != nil {
		return err
	}
	if err := writeAtomic(k.dir, "KEYS", f); err != nil {
		return err
	}
	k.file, k.current, k.aeads[id] = f, id, aead
	return nil
}

// retire forgets every key but the current one, once nothing on disk uses them.
func (k *tenantKeys) retire() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := k.file
	f.Keys = slices.DeleteFunc(slices.Clone(f.Keys), func(wk wrappedKey) bool { return wk.ID != f.Current })
	if len(f.Keys) == len(k.file.Keys) {
		return nil
	}
	if err := writeAtomic(k.dir, "KEYS", f); err != nil {
		return err
	}
	for id := range k.aeads {
		if id != f.Current {
			delete(k.aeads, id)
		}
	}
	k.file = f
	return nil
}

func (k *tenantKeys) aead(id uint32) (cipher.AEAD, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	a, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("data key %d of tenant %s is not in its KEYS file", id, k.tenant)
	}
	return a, nil
}

func (k *tenantKeys) currentID() uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

func (k *tenantKeys) currentAEAD() (uint32, cipher.AEAD) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current, k.aeads[k.current]
}

// shred destroys the keys: the KEYS file is overwritten in place and fsynced,
// then replaced by a record that the tenant was shredded.
func shredKeys(dir string) error {
	path := filepath.Join(dir, "KEYS")
	if fi, err := os.Stat(path); err == nil {
		if f, err := fsys.OpenFile(path, os.O_WRONLY, 0); err == nil {
			_, werr := f.Write(make([]byte, fi.Size()))
			serr := f.Sync()
			f.Close()
			if err := errors.Join(werr, serr); err != nil {
				return err
			}
		}
	}
	now := time.Now().UTC()
	return writeAtomic(dir, "KEYS", keysFile{Shredded: &now, ShredNote: "the data keys were destroyed; the tenant's event files cannot be decrypted"})
}

// writeAtomic writes v as JSON to dir/name: temp file, fsync, rename, fsync dir.
func writeAtomic(dir, name string, v any) error {
	raw, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, name+".tmp")
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(raw)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// sealFrame turns a plaintext log frame into an encrypted one:
//
//	"PVE1" | length | CRC-32C | key ID uint32 LE | nonce (12) | AES-GCM(payload)
//
// The associated data is the tenant's ID, so a frame cannot be moved to
// another tenant's log.
func (k *tenantKeys) sealFrame(plain []byte) ([]byte, error) {
	id, aead := k.currentAEAD()
	payload := plain[frameHeader:]
	out := frameBuf()
	if need := frameHeader + frameKeyBytes + len(payload) + gcmTag; cap(out) < need {
		out = make([]byte, 0, need)
	}
	out = out[:frameHeader+frameKeyBytes]
	copy(out, encFrameMagic[:])
	binary.LittleEndian.PutUint32(out[frameHeader:], id)
	nonce := out[frameHeader+4 : frameHeader+frameKeyBytes]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = aead.Seal(out, nonce, payload, []byte(k.tenant))
	body := out[frameHeader:]
	if len(body) > maxFrame {
		return nil, fmt.Errorf("batch of %d bytes is over the %d-byte frame limit", len(body), maxFrame)
	}
	binary.LittleEndian.PutUint32(out[4:], uint32(len(body)))
	binary.LittleEndian.PutUint32(out[8:], crcOf(body))
	return out, nil
}

// openFrame decrypts an encrypted frame's body (after the header).
func (k *tenantKeys) openFrame(body []byte) ([]byte, error) {
	if len(body) < frameKeyBytes+gcmTag {
		return nil, errors.New("encrypted frame shorter than its key ID, nonce and tag")
	}
	aead, err := k.aead(binary.LittleEndian.Uint32(body))
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, body[4:frameKeyBytes], body[frameKeyBytes:], []byte(k.tenant))
}

// sealSegment writes plain (a whole Parquet file) to w in chunks:
//
//	header: "PVS1" | key ID uint32 LE | chunk size uint32 LE | nonce prefix (7)
//	chunks: AES-GCM(≤ chunk size bytes) with nonce = prefix | chunk index uint32 BE | last flag
//
// The header is the associated data of every chunk, and the last chunk's flag
// is 1, so chunks cannot be reordered, dropped or the file cut short unseen.
func (k *tenantKeys) sealSegment(w io.Writer, plain []byte) error {
	id, aead := k.currentAEAD()
	hdr := make([]byte, segHeader)
	copy(hdr, encSegmentMagic[:])
	binary.LittleEndian.PutUint32(hdr[4:], id)
	binary.LittleEndian.PutUint32(hdr[8:], segChunk)
	if _, err := rand.Read(hdr[12:]); err != nil {
		return err
	}
	ad := append([]byte(k.tenant), hdr...)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	nonce := make([]byte, gcmNonce)
	copy(nonce, hdr[12:])
	buf := make([]byte, 0, segChunk+gcmTag)
	for i := uint32(0); ; i++ {
		n := min(len(plain), segChunk)
		binary.BigEndian.PutUint32(nonce[7:], i)
		nonce[11] = 0
		if n == len(plain) {
			nonce[11] = 1
		}
		buf = aead.Seal(buf[:0], nonce, plain[:n], ad)
		if _, err := w.Write(buf); err != nil {
			return err
		}
		plain = plain[n:]
		if nonce[11] == 1 {
			return nil
		}
	}
}

// openSegment decrypts a sealed segment file.
func (k *tenantKeys) openSegment(data []byte) ([]byte, error) {
	return k.openChunks(data, false)
}

// openSegmentInPlace is openSegment decrypting into data itself (which it
// overwrites), saving a copy of the whole file (load images).
func (k *tenantKeys) openSegmentInPlace(data []byte) ([]byte, error) {
	return k.openChunks(data, true)
}

func (k *tenantKeys) openChunks(data []byte, inPlace bool) ([]byte, error) {
	if len(data) < segHeader {
		return nil, errors.New("encrypted segment shorter than its header")
	}
	hdr := data[:segHeader]
	chunk := int(binary.LittleEndian.Uint32(hdr[8:]))
	if chunk <= 0 || chunk > maxSegChunk {
		return nil, fmt.Errorf("encrypted segment chunk size %d out of range", chunk)
	}
	aead, err := k.aead(binary.LittleEndian.Uint32(hdr[4:]))
	if err != nil {
		return nil, err
	}
	ad := append([]byte(k.tenant), hdr...)
	nonce := make([]byte, gcmNonce)
	copy(nonce, hdr[12:])
	rest := data[segHeader:]
	var out []byte
	if inPlace {
		out = data[:0] // each chunk opens where it lies, then moves down to the end of out
	} else {
		out = make([]byte, 0, len(rest))
	}
	for i := uint32(0); ; i++ {
		n := min(len(rest), chunk+gcmTag)
		last := n == len(rest)
		binary.BigEndian.PutUint32(nonce[7:], i)
		nonce[11] = 0
		if last {
			nonce[11] = 1
		}
		if inPlace {
			plain, err := aead.Open(rest[:0], nonce, rest[:n], ad)
			if err != nil {
				return nil, fmt.Errorf("encrypted segment chunk %d: %w", i, err)
			}
			out = append(out, plain...) // never past plain: out ends before it
		} else if out, err = aead.Open(out, nonce, rest[:n], ad); err != nil {
			return nil, fmt.Errorf("encrypted segment chunk %d: %w", i, err)
		}
		rest = rest[n:]
		if last {
			return out, nil
		}
	}
}

// segmentKey returns the key ID an encrypted segment file is sealed under, or
// false for a plaintext one.
func segmentKey(path string) (uint32, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return 0, false, err
	}
	if !bytes.Equal(hdr[:4], encSegmentMagic[:]) {
		return 0, false, nil
	}
	return binary.LittleEndian.Uint32(hdr[4:]), true, nil
}
