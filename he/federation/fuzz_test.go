package federation

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// Every decoder is fuzzed: it must never panic, allocate beyond what the
// parameters imply, or accept bytes that do not re-encode identically. Valid
// seeds are made at run time (they are hundreds of kilobytes); the small
// malformed seeds live in testdata/fuzz.

var (
	fuzzOnce sync.Once
	fuzzNet  *network
)

func fuzzNetwork(f *testing.F) *network {
	fuzzOnce.Do(func() { fuzzNet = newNetwork(f, 3, 2) })
	return fuzzNet
}

func fuzzDecoder[T any](f *testing.F, valid []byte, decode func([]byte) (T, error), encode func(T) []byte) {
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			return
		}
		if again := encode(v); !bytes.Equal(again, b) {
			t.Fatalf("decoded bytes re-encode differently (%d vs %d bytes)", len(again), len(b))
		}
	})
}

func FuzzDecodeKeyShare(f *testing.F) {
	nw := fuzzNetwork(f)
	ks, _ := nw.locs[0].KeyShare(nw.seed)
	fuzzDecoder(f, nw.p.EncodeKeyShare(ks), nw.p.DecodeKeyShare, nw.p.EncodeKeyShare)
}

func FuzzDecodeCiphertext(f *testing.F) {
	nw := fuzzNetwork(f)
	ct, _ := Encrypt(nw.p, nw.cpk, []int64{1, 2, 3})
	fuzzDecoder(f, nw.p.EncodeCiphertext(ct), nw.p.DecodeCiphertext, nw.p.EncodeCiphertext)
}

func FuzzDecodeDecryptionShare(f *testing.F) {
	nw := fuzzNetwork(f)
	ct, _ := Encrypt(nw.p, nw.cpk, []int64{1})
	s, err := nw.locs[0].DecryptionShare([]int{0, 1}, ct, nw.franchisor.Public)
	if err != nil {
		f.Fatal(err)
	}
	fuzzDecoder(f, nw.p.EncodeDecryptionShare(s), nw.p.DecodeDecryptionShare, nw.p.EncodeDecryptionShare)
}

func FuzzDecodePublicKey(f *testing.F) {
	nw := fuzzNetwork(f)
	fuzzDecoder(f, nw.p.EncodePublicKey(nw.cpk), nw.p.DecodePublicKey, nw.p.EncodePublicKey)
}

func FuzzDecodeSealed(f *testing.F) {
	nw := fuzzNetwork(f)
	l, _ := NewLocation(nw.p, 0)
	var transport [][]byte
	for _, x := range nw.locs {
		transport = append(transport, x.Transport.PublicKey().Bytes())
	}
	sealed, err := l.ShamirShares("fed_fuzz", nw.seed, transport)
	if err != nil {
		f.Fatal(err)
	}
	fuzzDecoder(f, nw.p.EncodeSealed(sealed), nw.p.DecodeSealed, nw.p.EncodeSealed)
}

func FuzzDecodeLocation(f *testing.F) {
	nw := fuzzNetwork(f)
	b, _ := nw.p.EncodeLocation(nw.locs[2])
	fuzzDecoder(f, b, nw.p.DecodeLocation, func(l *Location) []byte { b, _ := nw.p.EncodeLocation(l); return b })
}

func FuzzDecodeFranchisor(f *testing.F) {
	nw := fuzzNetwork(f)
	fuzzDecoder(f, nw.p.EncodeFranchisor(nw.franchisor), nw.p.DecodeFranchisor, nw.p.EncodeFranchisor)
}

// FuzzLocalAggregates checks the CSV reader's bounds: no panic, and every
// accepted file yields cells within the query's per-location bounds.
func FuzzLocalAggregates(f *testing.F) {
	f.Add("customer,category,amount\nc1,bread,320\nc2,cake,1250\nc1,bread,99999\n")
	q := Query{SubjectColumn: "customer", CategoryColumn: "category", ValueColumn: "amount", Categories: []string{"bread", "cake"},
		Aggregates: []string{AggCount, AggSum}, Lower: 0, Upper: 5000, MaxRowsPerSubject: 2, Epsilon: 1, Delta: 1e-6}
	f.Fuzz(func(t *testing.T, in string) {
		cells, err := q.LocalAggregates(strings.NewReader(in))
		if err != nil {
			return
		}
		rows := int64(strings.Count(in, "\n") + 1)
		for c := range q.Categories {
			n, s := cells[q.Cell(0, c)], cells[q.Cell(1, c)]
			if n < 0 || n > rows || s < 0 || s > n*q.Upper {
				t.Fatalf("category %d: count %d, sum %d out of bounds", c, n, s)
			}
		}
	})
}
