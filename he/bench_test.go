package he

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// BenchmarkEncryptedMean1M: the owner encrypts 1M values with ckks-agg, the
// processor reads the table and computes the sum, the owner decrypts with
// flooding. Each stage is reported in seconds per run.
//
//	go test ./he -run '^$' -bench EncryptedMean1M -benchtime 3x
func BenchmarkEncryptedMean1M(b *testing.B) {
	p, err := LookupPreset(PresetCKKSAgg)
	if err != nil {
		b.Fatal(err)
	}
	fx := keysFor(b, p, OpMean)
	const n = 1_000_000
	x := uniformInts(b, n, 0, 500)
	spec := TableSpec{Preset: p, Columns: []ColumnSpec{{Name: "amount", Kind: KindValue, Min: 0, Max: 500}}}
	proc, err := NewProcessor(fx.evk)
	if err != nil {
		b.Fatal(err)
	}
	var encrypt, upload, compute, decrypt time.Duration
	var size int
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		var buf bytes.Buffer
		if err := EncryptTable(context.Background(), &buf, fx.keys.Public, spec, [][]float64{x}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		size = buf.Len()
		tab, err := ReadTable(&buf)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		res, err := proc.Run(context.Background(), tab, Job{Op: OpMean, Column: "amount"})
		if err != nil {
			b.Fatal(err)
		}
		rb, err := res.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		var back Result
		if err := back.UnmarshalBinary(rb); err != nil {
			b.Fatal(err)
		}
		dec, _ := NewDecryptor(fx.keys)
		pl, err := dec.Decrypt(&back)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := pl.Mean(); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		encrypt += t1.Sub(t0)
		upload += t2.Sub(t1)
		compute += t3.Sub(t2)
		decrypt += t4.Sub(t3)
	}
	runs := float64(b.N)
	b.ReportMetric(encrypt.Seconds()/runs, "encrypt-s")
	b.ReportMetric(upload.Seconds()/runs, "decode-s")
	b.ReportMetric(compute.Seconds()/runs, "compute-s")
	b.ReportMetric(decrypt.Seconds()/runs, "decrypt-s")
	b.ReportMetric(float64(size)/n, "bytes/value")
}
