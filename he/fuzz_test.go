package he

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/privalytics/privalytics"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzDecodeTable seeds")

// testInsecureTiny keeps fuzz inputs small: one 16 KiB ciphertext per block.
var testInsecureTiny = Preset{Name: "testInsecureTiny", Scheme: CKKS, LogN: 10, LogQ: []int{45}, LogP: []int{45}, LogScale: 25, ConjugateInvariant: true, FloodBits: 40, MaxDecryptions: 1, insecure: true}

func init() { registerPreset(testInsecureTiny) }

// fuzzSeeds are valid and nearly valid tables.
func fuzzSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	fx := keysFor(t, testInsecureTiny, OpSum)
	var buf bytes.Buffer
	spec := TableSpec{Preset: testInsecureTiny, Columns: []ColumnSpec{{Name: "x", Kind: KindValue, Min: 0, Max: 10}}}
	if err := EncryptTable(context.Background(), &buf, fx.keys.Public, spec, [][]float64{{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	valid := buf.Bytes()
	hlen := binary.LittleEndian.Uint64(valid[4:])
	header := valid[12 : 12+hlen]
	withHeader := func(h []byte) []byte {
		var b bytes.Buffer
		b.WriteString(tableMagic)
		_ = writeFrame(&b, h)
		b.Write(valid[12+hlen:])
		return b.Bytes()
	}
	hugeCoeff := bytes.Clone(valid)
	for i := 12 + int(hlen); i < 12+int(hlen)+8; i++ {
		hugeCoeff[i] = 0xff
	}
	return map[string][]byte{
		"valid":          valid,
		"truncated":      valid[:len(valid)-100],
		"header-only":    valid[:12+hlen],
		"huge-frame":     append([]byte(tableMagic), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
		"huge-rows":      withHeader(bytes.Replace(header, []byte(`"rows":3`), []byte(`"rows":68719476736`), 1)),
		"coefficient":    hugeCoeff,
		"unknown-preset": withHeader(bytes.Replace(header, []byte("testInsecureTiny"), []byte("testInsecureTinx"), 1)),
		"garbage":        []byte("PVHT\x05\x00\x00\x00\x00\x00\x00\x00{\"a\"}"),
	}
}

// TestFuzzSeedsRejected: each damaged seed fails with a coded error naming the
// problem, and the valid one decodes.
func TestFuzzSeedsRejected(t *testing.T) {
	t.Parallel()
	for name, data := range fuzzSeeds(t) {
		_, err := ReadTable(bytes.NewReader(data))
		if name == "valid" {
			if err != nil {
				t.Errorf("valid seed: %v", err)
			}
			continue
		}
		var perr *privalytics.Error
		if err == nil || !errors.As(err, &perr) {
			t.Errorf("%s: ReadTable error %v, want a *privalytics.Error", name, err)
		}
	}
	if *updateCorpus {
		dir := filepath.Join("testdata", "fuzz", "FuzzDecodeTable")
		for name, data := range fuzzSeeds(t) {
			writeSeed(t, dir, name, data)
		}
		result, evk := decoderSeeds(t)
		writeSeed(t, filepath.Join("testdata", "fuzz", "FuzzDecodeResult"), "valid", result)
		writeSeed(t, filepath.Join("testdata", "fuzz", "FuzzDecodeEvaluationKeys"), "valid", evk)
		pub, err := MarshalPublicKey(testInsecureTiny, keysFor(t, testInsecureTiny, OpSum).keys.Public)
		if err != nil {
			t.Fatal(err)
		}
		writeSeed(t, filepath.Join("testdata", "fuzz", "FuzzDecodePublicKey"), "valid", pub)
	}
}

func writeSeed(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecodeTable: any input either decodes or fails with a coded error; it
// never panics, and memory stays bounded by the frame limits.
func FuzzDecodeTable(f *testing.F) {
	for _, data := range fuzzSeeds(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := ReadTable(bytes.NewReader(data))
		if err != nil {
			var perr *privalytics.Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is not a *privalytics.Error", err)
			}
			return
		}
		if int64(len(tab.Blocks)) != tab.Header.Blocks() {
			t.Fatalf("decoded %d blocks, header implies %d", len(tab.Blocks), tab.Header.Blocks())
		}
	})
}

// decoderSeeds are valid encodings of a result and of evaluation keys.
func decoderSeeds(t testing.TB) (result, evk []byte) {
	t.Helper()
	fx := keysFor(t, testInsecureTiny, OpSum)
	var buf bytes.Buffer
	spec := TableSpec{Preset: testInsecureTiny, Columns: []ColumnSpec{{Name: "x", Kind: KindValue, Min: 0, Max: 10}}}
	if err := EncryptTable(context.Background(), &buf, fx.keys.Public, spec, [][]float64{{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	tab, err := ReadTable(&buf)
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := NewProcessor(fx.evk)
	res, err := proc.Run(context.Background(), tab, Job{Op: OpSum, Column: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if result, err = res.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	// One Galois key keeps the seed small enough for the fuzzer to mutate quickly.
	small := *fx.evk
	small.Galois = small.Galois[:1]
	if evk, err = small.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	return result, evk
}

// FuzzDecodeResult: a processor's reply is untrusted input to the owner.
func FuzzDecodeResult(f *testing.F) {
	result, _ := decoderSeeds(f)
	f.Add(result)
	f.Add(result[:len(result)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Result
		if err := r.UnmarshalBinary(data); err != nil {
			var perr *privalytics.Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is not a *privalytics.Error", err)
			}
		}
	})
}

// FuzzDecodeEvaluationKeys: keys arrive at the processor from outside.
func FuzzDecodeEvaluationKeys(f *testing.F) {
	_, evk := decoderSeeds(f)
	f.Add(evk)
	f.Add(evk[:len(evk)/3])
	// Lattigo's decoder read a length like this one and recursed until the
	// stack overflowed; ours must reject it by frame size.
	huge := bytes.Clone(evk)
	hlen := binary.LittleEndian.Uint64(huge[len(evalKeysMagic):])
	binary.LittleEndian.PutUint64(huge[len(evalKeysMagic)+8+int(hlen):], 0x3fff7fe<<3)
	f.Add(huge)
	f.Fuzz(func(t *testing.T, data []byte) {
		var e EvaluationKeys
		if err := e.UnmarshalBinary(data); err != nil {
			var perr *privalytics.Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is not a *privalytics.Error", err)
			}
		}
	})
}
