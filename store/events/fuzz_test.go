package events

import (
	"testing"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, good, reason := parseLog(data)
		if good < 0 || good > int64(len(data)) {
			t.Fatalf("good offset %d outside 0..%d", good, len(data))
		}
		if (reason == "") != (good == int64(len(data))) {
			t.Fatalf("reason %q with %d of %d bytes good", reason, good, len(data))
		}
		again, good2, reason2 := parseLog(data[:good])
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
			back, _, reason := parseLog(enc)
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
			frames, good, reason := parseLog(validLog(t, tc.sizes...))
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
