package events

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// A log file is a sequence of frames (see FORMAT.md):
//
//	magic "PVL1" | payload length uint32 LE | CRC-32C of payload uint32 LE | payload
//	payload = key length uint16 LE | idempotency key | Arrow IPC stream of one record batch
const frameHeader = 12

var (
	frameMagic = [4]byte{'P', 'V', 'L', '1'}
	crcTable   = crc32.MakeTable(crc32.Castagnoli)
)

// maxFrame bounds a frame so a corrupt length cannot make recovery allocate wildly.
const maxFrame = 1 << 30

// encodeFrame appends one frame holding rec and its idempotency key.
func encodeFrame(dst []byte, key string, rec arrow.Record) ([]byte, error) {
	if len(key) > 0xffff {
		return nil, fmt.Errorf("idempotency key of %d bytes does not fit a frame", len(key))
	}
	if need := frameHeader + 2 + len(key) + ipcSize(rec); cap(dst)-len(dst) < need {
		// Room for the whole frame at once: growing as the IPC writer writes
		// would copy and clear a batch's megabytes several times over.
		dst = append(make([]byte, 0, len(dst)+need), dst...)
	}
	start := len(dst)
	dst = append(dst, frameMagic[:]...)
	dst = append(dst, make([]byte, 8)...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(key)))
	dst = append(dst, key...)
	buf := bytes.NewBuffer(dst)
	w := ipc.NewWriter(buf, ipc.WithSchema(rec.Schema()), ipc.WithAllocator(memory.DefaultAllocator))
	if err := w.Write(rec); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	dst = buf.Bytes()
	payload := dst[start+frameHeader:]
	if len(payload) > maxFrame {
		return nil, fmt.Errorf("batch of %d bytes is over the %d-byte frame limit", len(payload), maxFrame)
	}
	binary.LittleEndian.PutUint32(dst[start+4:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+8:], crcOf(payload))
	return dst, nil
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// ipcSize is about the bytes of rec as one Arrow IPC stream, a little over:
// its buffers, each padded to 8 bytes, dictionaries included, and room for
// the schema and batch messages.
func ipcSize(rec arrow.Record) int {
	n := 4096
	var add func(d arrow.ArrayData)
	add = func(d arrow.ArrayData) {
		n += 512 // the field's metadata; a dictionary's message
		for _, b := range d.Buffers() {
			if b != nil {
				n += b.Len() + 8
			}
		}
		for _, c := range d.Children() {
			add(c)
		}
		if d.DataType().ID() == arrow.DICTIONARY {
			add(d.Dictionary())
		}
	}
	for _, c := range rec.Columns() {
		add(c.Data())
	}
	return n
}

// framePool recycles frame buffers once they are written: a batch's frame is
// megabytes, and a fresh buffer costs its page faults and zeroing on every
// append.
var framePool sync.Pool // of *[]byte

// frameBuf returns an empty buffer for a frame, recycled when one is free.
func frameBuf() []byte {
	if p, ok := framePool.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return nil
}

// recycleFrame gives a written frame's buffer back. Nothing may use b after.
func recycleFrame(b []byte) {
	if cap(b) >= 64<<10 && cap(b) <= 64<<20 {
		framePool.Put(&b)
	}
}

type frame struct {
	key string
	rec arrow.Record
}

// readLog decodes every whole, valid frame of a log file. It returns the frames,
// the offset just after the last good one and, when bytes follow it, why they are
// not trusted: a torn write, a corrupt frame, and everything after a corrupt frame.
func readLog(path string, keys *tenantKeys) (frames []frame, good int64, reason string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, "", err
	}
	return parseLog(data, keys)
}

// parseLog is readLog on bytes in memory. An encrypted frame that is whole and
// passes its CRC yet cannot be decrypted (no keys, an unknown key, a failed
// tag) is an error, not a torn tail: cutting it would destroy good data read
// with the wrong master key.
func parseLog(data []byte, keys *tenantKeys) ([]frame, int64, string, error) {
	var out []frame
	off := 0
	for off < len(data) {
		if len(data)-off < frameHeader {
			return out, int64(off), "short frame header", nil
		}
		encrypted := bytes.Equal(data[off:off+4], encFrameMagic[:])
		if !encrypted && !bytes.Equal(data[off:off+4], frameMagic[:]) {
			return out, int64(off), "bad magic", nil
		}
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		sum := binary.LittleEndian.Uint32(data[off+8:])
		if n > maxFrame {
			return out, int64(off), "length over the limit", nil
		}
		if len(data)-off-frameHeader < n {
			return out, int64(off), "short payload", nil
		}
		payload := data[off+frameHeader : off+frameHeader+n]
		if crcOf(payload) != sum {
			return out, int64(off), "CRC mismatch", nil
		}
		if encrypted {
			if keys == nil {
				return out, int64(off), "", errors.New("the log is encrypted at rest; open the store with the master key")
			}
			plain, err := keys.openFrame(payload)
			if err != nil {
				return out, int64(off), "", fmt.Errorf("decrypt log frame at offset %d: %w", off, err)
			}
			payload = plain
		}
		f, err := decodePayload(payload)
		if err != nil {
			return out, int64(off), "undecodable payload: " + err.Error(), nil
		}
		out = append(out, f)
		off += frameHeader + n
	}
	return out, int64(off), "", nil
}

// decodePayload decodes a frame's payload. The Arrow IPC reader trusts its input
// and may panic on bytes that pass the CRC yet are not a valid stream (a bug
// elsewhere, not disk corruption); that is reported as an error, never a crash.
func decodePayload(p []byte) (f frame, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = frame{}, fmt.Errorf("malformed Arrow IPC stream: %v", r)
		}
	}()
	if len(p) < 2 {
		return frame{}, errors.New("short payload")
	}
	kl := int(binary.LittleEndian.Uint16(p))
	if len(p) < 2+kl {
		return frame{}, errors.New("key longer than the payload")
	}
	key := string(p[2 : 2+kl])
	r, err := ipc.NewReader(bytes.NewReader(p[2+kl:]), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return frame{}, err
	}
	defer r.Release()
	if !r.Next() {
		if r.Err() != nil && !errors.Is(r.Err(), io.EOF) {
			return frame{}, r.Err()
		}
		return frame{}, errors.New("no record in frame")
	}
	rec := r.Record()
	rec.Retain()
	if r.Next() {
		rec.Release()
		return frame{}, errors.New("more than one record in frame")
	}
	return frame{key: key, rec: rec}, nil
}
