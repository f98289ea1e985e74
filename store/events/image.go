package events

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/privalytics/privalytics"
)

// A load image (segments/<N>.image) is a cache beside sealed segment N: the
// in-memory records the loader builds from the Parquet file (pieces of at most
// chunkRows rows, gathered and compacted, before erasures and purges are
// applied), as uncompressed Arrow IPC files, so a restart reads them back
// without decoding Parquet. It is never the source of truth: an image that is
// missing, of another segment version, damaged or of a newer format is ignored
// and the segment is read instead (and the image rewritten). Format:
//
//	0   4   magic "PVI1"
//	4   4   body length n
//	8   n   body: plaintext, or sealed like an encrypted segment (PVS1 chunks)
//	8+n 4   CRC-32C of bytes 0 … 8+n
//
// Plaintext body: header length h (uint32 LE) | header JSON (imageHeader) |
// the pieces, each a whole Arrow IPC file, back to back (lengths in the header).
// The header names the segment file and its size and CRC-32C, so an image of an
// older version of the segment (rewritten by compaction) is never used; with
// encryption it is inside the sealed body, so it is authenticated too.

var imageMagic = [4]byte{'P', 'V', 'I', '1'}

const imageSuffix = ".image"

// imageHeader binds an image to one version of its segment.
type imageHeader struct {
	Segment string  `json:"segment"`
	Bytes   int64   `json:"bytes"`
	CRC     uint32  `json:"crc32c"`
	Rows    int     `json:"rows"`
	Pieces  []int64 `json:"pieces"` // byte length of each IPC file
}

// imageName is the image file of a segment file.
func imageName(segFile string) string {
	return strings.TrimSuffix(segFile, ".parquet") + imageSuffix
}

// errImageNewer marks an image written by a newer build.
var errImageNewer = errors.New("the image was written by a newer build")

// encodeImage lays out an image of recs (compacted pieces) for seg.
func encodeImage(seg segment, recs []arrow.Record, keys *tenantKeys) ([]byte, error) {
	hdr := imageHeader{Segment: seg.File, Bytes: seg.Bytes, CRC: seg.CRC}
	var pieces bytes.Buffer
	for _, r := range recs {
		var piece seekBuffer
		w, err := ipc.NewFileWriter(&piece, ipc.WithSchema(r.Schema()), ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			return nil, err
		}
		if err := w.Write(r); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		pieces.Write(piece.b)
		hdr.Pieces = append(hdr.Pieces, int64(len(piece.b)))
		hdr.Rows += int(r.NumRows())
	}
	hj, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	body := make([]byte, 0, 4+len(hj)+pieces.Len())
	body = binary.LittleEndian.AppendUint32(body, uint32(len(hj)))
	body = append(body, hj...)
	body = append(body, pieces.Bytes()...)
	if keys != nil {
		var sealed bytes.Buffer
		if err := keys.sealSegment(&sealed, body); err != nil {
			return nil, err
		}
		body = sealed.Bytes()
	}
	out := make([]byte, 0, 12+len(body))
	out = append(out, imageMagic[:]...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	return binary.LittleEndian.AppendUint32(out, crcOf(out)), nil
}

// writeImage writes the image of seg atomically (a .tmp file, fsync, rename,
// fsync of the directory).
func writeImage(segDir string, seg segment, recs []arrow.Record, keys *tenantKeys) error {
	raw, err := encodeImage(seg, recs, keys)
	if err != nil {
		return err
	}
	path := filepath.Join(segDir, imageName(seg.File))
	tmp := path + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(raw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		fsys.Remove(tmp)
		return err
	}
	return syncDir(segDir)
}

// readImage reads the image of seg, returning its pieces, or why it cannot be
// used (the caller then reads the segment).
func readImage(segDir string, seg segment, schema *arrow.Schema, keys *tenantKeys) ([]arrow.Record, error) {
	raw, err := os.ReadFile(filepath.Join(segDir, imageName(seg.File)))
	if err != nil {
		return nil, err
	}
	return decodeImage(raw, seg, schema, keys)
}

// decodeImage checks an image against seg and decodes its pieces. It never
// panics on damaged input (the IPC reader may; that is an error here).
func decodeImage(raw []byte, seg segment, schema *arrow.Schema, keys *tenantKeys) (out []arrow.Record, err error) {
	if len(raw) >= 4 && raw[0] == 'P' && raw[1] == 'V' && raw[2] == 'I' && raw[3] > '1' && raw[3] <= '9' {
		return nil, fmt.Errorf("%w (format %q)", errImageNewer, raw[:4])
	}
	if len(raw) < 12 || !bytes.Equal(raw[:4], imageMagic[:]) {
		return nil, errors.New("not an image file")
	}
	n := int64(binary.LittleEndian.Uint32(raw[4:]))
	if 8+n+4 != int64(len(raw)) {
		return nil, fmt.Errorf("the image is %d bytes, its header says %d", len(raw), 8+n+4)
	}
	if got, want := crcOf(raw[:8+n]), binary.LittleEndian.Uint32(raw[8+n:]); got != want {
		return nil, fmt.Errorf("the image's checksum does not match (CRC-32C %08x, stored %08x)", got, want)
	}
	body := raw[8 : 8+n]
	if len(body) >= 4 && bytes.Equal(body[:4], encSegmentMagic[:]) {
		if keys == nil {
			return nil, errors.New("the image is encrypted at rest and the store has no master key")
		}
		if body, err = keys.openSegmentInPlace(body); err != nil {
			return nil, err
		}
	} else if keys != nil {
		return nil, errors.New("the image is in plaintext but encryption at rest is on")
	}
	if len(body) < 4 {
		return nil, errors.New("the image body is shorter than its header")
	}
	h := int64(binary.LittleEndian.Uint32(body))
	if 4+h > int64(len(body)) {
		return nil, errors.New("the image header runs past its body")
	}
	var hdr imageHeader
	if err := json.Unmarshal(body[4:4+h], &hdr); err != nil {
		return nil, fmt.Errorf("the image header: %w", err)
	}
	if hdr.Segment != seg.File || hdr.Bytes != seg.Bytes || hdr.CRC != seg.CRC || seg.Bytes == 0 {
		return nil, fmt.Errorf("the image is of %s (%d bytes, CRC-32C %08x), not of the segment as it is (%d bytes, CRC-32C %08x)",
			hdr.Segment, hdr.Bytes, hdr.CRC, seg.Bytes, seg.CRC)
	}
	if seg.Rows > 0 && hdr.Rows != seg.Rows {
		return nil, fmt.Errorf("the image holds %d rows, the MANIFEST says %d", hdr.Rows, seg.Rows)
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("the IPC reader failed: %v", r)
		}
	}()
	rest := body[4+h:]
	rows := 0
	for _, size := range hdr.Pieces {
		if size <= 0 || size > int64(len(rest)) {
			return nil, errors.New("the image's pieces run past its body")
		}
		r, err := readPiece(rest[:size], schema)
		if err != nil {
			return nil, err
		}
		rows += int(r.NumRows())
		out = append(out, r)
		rest = rest[size:]
	}
	if len(rest) != 0 || rows != hdr.Rows {
		return nil, fmt.Errorf("the image holds %d rows and %d stray bytes, its header says %d rows", rows, len(rest), hdr.Rows)
	}
	return out, nil
}

// readPiece reads one IPC file holding one compacted record and checks it
// against the tenant's schema (names and logical types; the in-memory forms
// are narrower, see privalytics.CompactRecord).
func readPiece(b []byte, schema *arrow.Schema) (arrow.Record, error) {
	fr, err := ipc.NewFileReader(bytes.NewReader(b), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, err
	}
	defer fr.Close()
	if fr.NumRecords() != 1 {
		return nil, fmt.Errorf("an image piece holds %d records, want 1", fr.NumRecords())
	}
	r, err := fr.RecordAt(0)
	if err != nil {
		return nil, err
	}
	got := r.Schema()
	if got.NumFields() != schema.NumFields() {
		return nil, fmt.Errorf("an image piece has %d columns, the tenant's schema %d", got.NumFields(), schema.NumFields())
	}
	for i := range got.NumFields() {
		g, w := got.Field(i), schema.Field(i)
		if g.Name != w.Name || !memoryFormOf(g.Type, w.Type) {
			return nil, fmt.Errorf("image column %s is %s, the tenant's schema says %s %s", g.Name, g.Type, w.Name, w.Type)
		}
	}
	if err := validPiece(r); err != nil {
		return nil, err
	}
	return shareZeros(r), nil
}

// memoryFormOf reports whether got is want or an in-memory form of it.
func memoryFormOf(got, want arrow.DataType) bool {
	if arrow.TypeEqual(got, want) {
		return true
	}
	gd, ok := got.(*arrow.DictionaryType)
	if !ok {
		return false
	}
	switch gd.IndexType.ID() {
	case arrow.UINT8, arrow.UINT16:
	default:
		return false
	}
	if wd, ok := want.(*arrow.DictionaryType); ok {
		return arrow.TypeEqual(gd.ValueType, wd.ValueType)
	}
	return (want.ID() == arrow.INT64 || want.ID() == arrow.UINT64) && arrow.TypeEqual(gd.ValueType, want)
}

// validPiece checks that dictionary codes are in range, which the executor
// trusts (the checksum, and the AEAD tag with encryption, guard the rest).
func validPiece(r arrow.Record) error {
	for i, c := range r.Columns() {
		if d, ok := c.(*array.Dictionary); ok && d.NullN() == 0 { // null rows' codes are never read
			if k, m := maxCode(d), d.Dictionary().Len(); d.Len() > 0 && k >= m {
				return fmt.Errorf("image column %d has code %d of a %d-value dictionary", i, k, m)
			}
		}
	}
	return nil
}

// maxCode is the largest code of a dictionary array with uint8 or uint16
// indices (the only forms an image holds).
func maxCode(d *array.Dictionary) int {
	k := 0
	switch idx := d.Indices().(type) {
	case *array.Uint8:
		var m uint8
		for _, v := range idx.Uint8Values() {
			m = max(m, v)
		}
		k = int(m)
	case *array.Uint16:
		var m uint16
		for _, v := range idx.Uint16Values() {
			m = max(m, v)
		}
		k = int(m)
	default:
		for _, v := range privalytics.DictCodes(d) {
			k = max(k, int(v))
		}
	}
	return k
}

// shareZeros swaps every all-zero value buffer of r for the shared zeros, as
// the loader's own records have (a constant or always-null column costs
// nothing per row).
func shareZeros(r arrow.Record) arrow.Record {
	cols := make([]arrow.Array, r.NumCols())
	changed := false
	zero := zeroBytes()
	for i, c := range r.Columns() {
		cols[i] = c
		d := c.Data()
		bufs := d.Buffers()
		if len(bufs) != 2 || bufs[1] == nil || bufs[1].Len() == 0 || bufs[1].Len() > len(zero) {
			continue
		}
		b := bufs[1].Bytes()
		if !bytes.Equal(b, zero[:len(b)]) {
			continue
		}
		nb := []*memory.Buffer{bufs[0], memory.NewBufferBytes(zero[:len(b)])}
		var nd *array.Data
		if dict := d.Dictionary(); dict != nil {
			nd = array.NewDataWithDictionary(d.DataType(), d.Len(), nb, d.NullN(), d.Offset(), dict.(*array.Data))
		} else {
			nd = array.NewData(d.DataType(), d.Len(), nb, nil, d.NullN(), d.Offset())
		}
		cols[i] = array.MakeFromData(nd)
		changed = true
	}
	if !changed {
		return r
	}
	return array.NewRecord(r.Schema(), cols, r.NumRows())
}

// removeImage deletes a segment's image (and a leftover temporary file).
func removeImage(segDir, segFile string) {
	p := filepath.Join(segDir, imageName(segFile))
	fsys.Remove(p)
	fsys.Remove(p + ".tmp")
}

// seekBuffer is an in-memory io.WriteSeeker (the IPC file writer seeks).
type seekBuffer struct {
	b   []byte
	pos int
}

func (s *seekBuffer) Write(p []byte) (int, error) {
	if end := s.pos + len(p); end > len(s.b) {
		s.b = append(s.b, make([]byte, end-len(s.b))...)
	}
	copy(s.b[s.pos:], p)
	s.pos += len(p)
	return len(p), nil
}

func (s *seekBuffer) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += int64(s.pos)
	case io.SeekEnd:
		off += int64(len(s.b))
	}
	if off < 0 {
		return 0, errors.New("seek before the start")
	}
	s.pos = int(off)
	return off, nil
}
