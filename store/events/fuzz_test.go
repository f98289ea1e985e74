package events

import (
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

// validLog returns a log of frames for the given batch sizes, keyed "k<i>".
func validLog(tb testing.TB, sizes ...int) []byte {
	tb.Helper()
	var out []byte
	for i, n := range sizes {
		var err error
		if out, err = encodeFrame(out, "k"+string(rune('0'+i)), testRecord(i, n)); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// FuzzParseLog feeds arbitrary bytes to the log decoder recovery uses. It must
// never panic, must keep exactly a prefix of whole frames, and that prefix must
// parse again to the same frames with nothing cut.
func FuzzParseLog(f *testing.F) {
	whole := validLog(f, 3, 1)
	f.Add(whole)
	f.Add(whole[:len(whole)-1])
	f.Add(whole[:frameHeader+5])
	f.Add([]byte("PVL1\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Add([]byte{})
	sealed := sealLog(f, fuzzKeys(f), whole)
	f.Add(sealed)
	f.Add(sealed[:len(sealed)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, good, reason, err := parseLog(data, fuzzKeys(t))
		if err != nil {
			return // a whole encrypted frame that does not decrypt: an error, never a cut
		}
		if good < 0 || good > int64(len(data)) {
			t.Fatalf("good offset %d outside 0..%d", good, len(data))
		}
		if (reason == "") != (good == int64(len(data))) {
			t.Fatalf("reason %q with %d of %d bytes good", reason, good, len(data))
		}
		again, good2, reason2 := parseLogT(t, data[:good])
		if len(again) != len(frames) || good2 != good || reason2 != "" {
			t.Fatalf("the kept prefix parses to %d frames, %d bytes, %q; first pass %d frames, %d bytes", len(again), good2, reason2, len(frames), good)
		}
		for i, fr := range frames {
			if fr.key != again[i].key || fr.rec.NumRows() != again[i].rec.NumRows() {
				t.Fatalf("frame %d differs between passes", i)
			}
			// A kept frame re-encodes to a frame that parses back the same.
			enc, err := encodeFrame(nil, fr.key, fr.rec)
			if err != nil {
				t.Fatalf("re-encode frame %d: %v", i, err)
			}
			back, _, reason := parseLogT(t, enc)
			if len(back) != 1 || reason != "" || back[0].key != fr.key || back[0].rec.NumRows() != fr.rec.NumRows() {
				t.Fatalf("frame %d does not survive re-encoding (%q)", i, reason)
			}
		}
	})
}

func TestEncodedFramesParseBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		sizes []int
	}{{"one frame", []int{5}}, {"three frames", []int{1, 10, 100}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			frames, good, reason := parseLogT(t, validLog(t, tc.sizes...))
			if reason != "" || len(frames) != len(tc.sizes) {
				t.Fatalf("%d frames, %d bytes good, cut because %q; want %d whole frames", len(frames), good, reason, len(tc.sizes))
			}
			for i, fr := range frames {
				if want := "k" + string(rune('0'+i)); fr.key != want || int(fr.rec.NumRows()) != tc.sizes[i] {
					t.Errorf("frame %d: key %q, %d rows; want %q, %d", i, fr.key, fr.rec.NumRows(), want, tc.sizes[i])
				}
			}
		})
	}
}

// FuzzDecodePayload skips the CRC to reach the Arrow IPC decoder: a payload that
// passes the CRC yet is malformed must come back as an error, never a panic.
func FuzzDecodePayload(f *testing.F) {
	whole := validLog(f, 2)
	f.Add(whole[frameHeader:])
	f.Add(whole[frameHeader : len(whole)/2])
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 'k'})
	f.Fuzz(func(t *testing.T, payload []byte) {
		fr, err := decodePayload(payload)
		if err == nil && (fr.rec == nil || int(fr.rec.NumCols()) != fr.rec.Schema().NumFields()) {
			t.Fatalf("decoded without error into an unusable record")
		}
	})
}

// fuzzKeys are fixed data keys (test-only, insecure) for the encrypted paths.
func fuzzKeys(tb testing.TB) *tenantKeys {
	tb.Helper()
	aead, err := newAEAD([]byte("testInsecureKey-32-bytes-long!!!"))
	if err != nil {
		tb.Fatal(err)
	}
	return &tenantKeys{tenant: "t1", aeads: map[uint32]cipher.AEAD{1: aead}, current: 1}
}

// parseLogT parses a log that must not fail to decrypt.
func parseLogT(tb testing.TB, data []byte) ([]frame, int64, string) {
	tb.Helper()
	frames, good, reason, err := parseLog(data, fuzzKeys(tb))
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	return frames, good, reason
}

// sealLog encrypts each frame of a plaintext log.
func sealLog(tb testing.TB, k *tenantKeys, plain []byte) []byte {
	tb.Helper()
	frames, _, reason, err := parseLog(plain, nil)
	if err != nil || reason != "" {
		tb.Fatalf("seed log: %v %s", err, reason)
	}
	var out []byte
	for _, fr := range frames {
		enc, err := encodeFrame(nil, fr.key, fr.rec)
		if err != nil {
			tb.Fatal(err)
		}
		sealed, err := k.sealFrame(enc)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, sealed...)
	}
	return out
}

// FuzzOpenSegment feeds arbitrary bytes to the encrypted-segment decoder: it
// must never panic, and whatever it accepts must have been sealed under the key.
func FuzzOpenSegment(f *testing.F) {
	k := fuzzKeys(f)
	for _, n := range []int{0, 10, segChunk + 5} {
		var buf bytes.Buffer
		if err := k.sealSegment(&buf, bytes.Repeat([]byte("p"), n)); err != nil {
			f.Fatal(err)
		}
		if n < segChunk {
			f.Add(buf.Bytes())
		}
		f.Add(buf.Bytes()[:segHeader+3])
	}
	f.Add([]byte("PVS1\x01\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		plain, err := k.openSegment(data)
		if err != nil {
			return
		}
		var again bytes.Buffer
		if err := k.sealSegment(&again, plain); err != nil {
			t.Fatal(err)
		}
		back, err := k.openSegment(again.Bytes())
		if err != nil || !bytes.Equal(back, plain) {
			t.Fatalf("re-sealed segment does not open to the same bytes: %v", err)
		}
	})
}

func TestSegmentSealingDetectsTampering(t *testing.T) {
	t.Parallel()
	k := fuzzKeys(t)
	plain := bytes.Repeat([]byte("0123456789"), segChunk/5) // two chunks
	var buf bytes.Buffer
	if err := k.sealSegment(&buf, plain); err != nil {
		t.Fatal(err)
	}
	sealed := buf.Bytes()
	if got, err := k.openSegment(sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip: %v", err)
	}
	if bytes.Contains(sealed, []byte("0123456789")) {
		t.Error("the sealed segment holds plaintext")
	}
	cut := sealed[:segHeader+segChunk+gcmTag] // drop the last chunk: the first one is not marked last
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 1
	for name, bad := range map[string][]byte{"cut after a whole chunk": cut, "flipped byte": flipped, "header only": sealed[:segHeader]} {
		if _, err := k.openSegment(bad); err == nil {
			t.Errorf("%s: opened without error", name)
		}
	}
}

// FuzzDecodeImage feeds damaged load images to the loader's decoder: it
// must return pieces of the tenant's columns or an error, never panic.
func FuzzDecodeImage(f *testing.F) {
	recs := []arrow.Record{privalytics.CompactRecord(testRecord(1, 30)), privalytics.CompactRecord(testRecord(2, 5))}
	seg := segment{File: "00000001.parquet", Rows: 35, Bytes: 1000, CRC: 7}
	plain, err := encodeImage(seg, recs, nil)
	if err != nil {
		f.Fatal(err)
	}
	sealed, err := encodeImage(seg, recs, fuzzKeys(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain, false)
	f.Add(plain[:len(plain)/2], false)
	f.Add(sealed, true)
	f.Add([]byte("PVI2"), false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, enc bool) {
		data = bytes.Clone(data) // fixed up and decrypted in place below
		var keys *tenantKeys
		if enc {
			keys = fuzzKeys(t)
		}
		// The checksum guards the body; recompute it so the fuzzer reaches
		// the header and the IPC pieces.
		if len(data) >= 12 && bytes.Equal(data[:4], imageMagic[:]) && int(binary.LittleEndian.Uint32(data[4:])) == len(data)-12 {
			binary.LittleEndian.PutUint32(data[len(data)-4:], crcOf(data[:len(data)-4]))
		}
		out, err := decodeImage(data, seg, retail.Arrow(), keys)
		if err != nil {
			return
		}
		rows := 0
		for _, r := range out {
			if int(r.NumCols()) != retail.Arrow().NumFields() {
				t.Fatalf("a piece of %d columns", r.NumCols())
			}
			rows += int(r.NumRows())
		}
		if rows != seg.Rows {
			t.Fatalf("decoded %d rows, the segment holds %d", rows, seg.Rows)
		}
	})
}

// TestFrameSizeHint: encodeFrame sizes its buffer once from ipcSize; a hint
// below the real size would silently fall back to growing (and clearing) the
// buffer as the IPC writer writes, the cost the hint exists to avoid.
func TestFrameSizeHint(t *testing.T) {
	for _, n := range []int{1, 7, 1000, 20000} {
		rec := testRecord(n, n)
		key := "idem"
		frame, err := encodeFrame(nil, key, rec)
		if err != nil {
			t.Fatal(err)
		}
		hint := frameHeader + 2 + len(key) + ipcSize(rec)
		if len(frame) > hint || cap(frame) != hint {
			t.Errorf("%d rows: frame of %d bytes in a buffer of %d, hint %d: want the frame within the hint and no regrowth", n, len(frame), cap(frame), hint)
		}
		if hint > 2*len(frame)+64<<10 {
			t.Errorf("%d rows: hint %d for a frame of %d bytes is far too large", n, hint, len(frame))
		}
		rec.Release()
	}
}
