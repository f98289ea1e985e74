package he

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

var allOps = []Op{OpCount, OpSum, OpMean, OpVariance, OpCategoryCount, OpCategorySum, OpDot, OpCovariance, OpRegression}

type fixture struct {
	keys *OwnerKeys
	evk  *EvaluationKeys
}

var fixtures sync.Map // preset name → func() (fixture, error)

// keysFor generates keys for a preset once per test binary: key generation is
// the slowest step and tests only read the keys.
func keysFor(t testing.TB, p Preset, ops ...Op) fixture {
	t.Helper()
	if len(ops) == 0 {
		ops = allOps
	}
	key := p.Name + fmt.Sprint(ops)
	f, _ := fixtures.LoadOrStore(key, sync.OnceValues(func() (fixture, error) {
		k, e, err := KeyGen(p, ops...)
		return fixture{k, e}, err
	}))
	fx, err := f.(func() (fixture, error))()
	if err != nil {
		t.Fatalf("KeyGen(%s): %v", p.Name, err)
	}
	return fx
}

// uniformInts returns n integers in [lo, hi] from crypto/rand (test data only).
func uniformInts(t testing.TB, n int, lo, hi int64) []float64 {
	t.Helper()
	b := make([]byte, 8*n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(lo + int64(binary.LittleEndian.Uint64(b[8*i:])%uint64(hi-lo+1)))
	}
	return out
}

// dataset is a small shop table: amount and quantity values, and a category
// turned into indicator columns.
type dataset struct {
	spec    []ColumnSpec
	columns [][]float64
	named   map[string][]float64
}

func newDataset(t testing.TB, rows int) dataset {
	amount := uniformInts(t, rows, -50, 500)
	qty := uniformInts(t, rows, 0, 20)
	catIdx := uniformInts(t, rows, 0, 3)
	cats := []string{"books", "games", "toys"}
	catVals := make([]string, rows)
	for i, c := range catIdx {
		if int(c) < len(cats) {
			catVals[i] = cats[int(c)]
		} else {
			catVals[i] = "other" // undeclared: in no indicator
		}
	}
	specs, inds := IndicatorColumns("category", cats, catVals)
	d := dataset{
		spec:    append([]ColumnSpec{{Name: "amount", Kind: KindValue, Min: -50, Max: 500}, {Name: "quantity", Kind: KindValue, Min: 0, Max: 20}}, specs...),
		columns: append([][]float64{amount, qty}, inds...),
		named:   map[string][]float64{},
	}
	for i, s := range d.spec {
		d.named[s.Name] = d.columns[i]
	}
	return d
}

func encrypt(t testing.TB, p Preset, keys *OwnerKeys, d dataset) *Table {
	t.Helper()
	var buf bytes.Buffer
	if err := EncryptTable(context.Background(), &buf, keys.Public, TableSpec{Preset: p, Columns: d.spec}, d.columns); err != nil {
		t.Fatalf("EncryptTable: %v", err)
	}
	tab, err := ReadTable(&buf)
	if err != nil {
		t.Fatalf("ReadTable: %v", err)
	}
	return tab
}

// plainTerms computes, in the clear, the aggregates a job's outputs hold.
func plainTerms(t testing.TB, d dataset, job Job, h *TableHeader) map[string]float64 {
	t.Helper()
	terms, err := job.terms(h)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, tm := range terms {
		a := d.columns[tm.a]
		s := 0.0
		for r := range a {
			if tm.b < 0 {
				s += a[r]
			} else {
				s += a[r] * d.columns[tm.b][r]
			}
		}
		out[tm.name] = s
	}
	return out
}

func decryptMap(t testing.TB, keys *OwnerKeys, res *Result) (map[string]float64, map[string]float64) {
	t.Helper()
	dec, err := NewDecryptor(keys)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := dec.Decrypt(res)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	got, std := map[string]float64{}, map[string]float64{}
	for _, v := range pl.Values {
		got[v.Name], std[v.Name] = v.Value, v.ErrorStd
	}
	return got, std
}

var jobs = []Job{
	{Op: OpCount}, // the public row count: no ciphertext
	{Op: OpCount, Column: "category=books"},
	{Op: OpSum, Column: "amount"},
	{Op: OpMean, Column: "amount"},
	{Op: OpVariance, Column: "amount"},
	{Op: OpCategoryCount, Group: "category"},
	{Op: OpCategorySum, Group: "category", Column: "amount"},
	{Op: OpDot, Columns: []string{"amount", "quantity"}},
	{Op: OpCovariance, Columns: []string{"amount", "quantity"}},
	{Op: OpRegression, Columns: []string{"quantity"}, Target: "amount"},
}

// TestJobsBGV: every job on random integers decrypts to exactly the plaintext
// aggregate, through flooding, over 3 blocks with a partial last one.
func TestJobsBGV(t *testing.T) {
	t.Parallel()
	p := testInsecureBGV
	fx := keysFor(t, p)
	d := newDataset(t, 2*2048+517)
	tab := encrypt(t, p, fx.keys, d)
	proc, err := NewProcessor(fx.evk)
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range jobs {
		t.Run(string(job.Op)+job.Column, func(t *testing.T) {
			t.Parallel()
			res, err := proc.Run(context.Background(), tab, job)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := decryptMap(t, fx.keys, res)
			if diff := cmp.Diff(plainTerms(t, d, job, &tab.Header), got); diff != "" {
				t.Errorf("decrypted aggregates (-want +got):\n%s", diff)
			}
		})
	}
}

// TestJobsCKKS: every job on random reals lands within 6 stated standard
// deviations of the plaintext aggregate (false-failure probability per value
// < 2·10⁻⁹ if the stated σ is right; TestCKKSErrorStd checks that it is).
func TestJobsCKKS(t *testing.T) {
	t.Parallel()
	p := testInsecureCKKS
	fx := keysFor(t, p)
	d := newDataset(t, 2*2048+517)
	for _, col := range d.columns[:2] {
		noise := uniformInts(t, len(col), 0, 999)
		for i := range col {
			col[i] = math.Min(col[i]+noise[i]/1000, d.spec[0].Max) // non-integers within bounds
		}
	}
	d.spec[1].Max = 21
	tab := encrypt(t, p, fx.keys, d)
	proc, err := NewProcessor(fx.evk)
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range jobs {
		t.Run(string(job.Op)+job.Column, func(t *testing.T) {
			t.Parallel()
			res, err := proc.Run(context.Background(), tab, job)
			if err != nil {
				t.Fatal(err)
			}
			got, std := decryptMap(t, fx.keys, res)
			want := plainTerms(t, d, job, &tab.Header)
			if diff := cmp.Diff(sortedKeys(want), sortedKeys(got)); diff != "" {
				t.Errorf("output names (-want +got):\n%s", diff)
			}
			for name, w := range want {
				if e := math.Abs(got[name] - w); e > 6*std[name] || std[name] > 1e-4*math.Max(1, math.Abs(w)) {
					t.Errorf("%s = %g, want %g: error %g, stated σ %g", name, got[name], w, e, std[name])
				}
			}
		})
	}
}

// TestCKKSErrorStd: the stated σ of a decrypted CKKS value is not below the
// measured RMS error over 48 encryptions. 48·(RMS/σ)² is χ² with 48 degrees
// of freedom, which exceeds 48 × 1.35² = 87.5 with probability 4.3·10⁻⁴:
// with the two values checked, a correct σ fails a run about once in 1,150. (With 24 encryptions, as before, that probability
// was 0.83% a value, and CI failed now and then.)
func TestCKKSErrorStd(t *testing.T) {
	t.Parallel()
	p := testInsecureCKKS
	fx := keysFor(t, p)
	d := newDataset(t, 3000)
	proc, err := NewProcessor(fx.evk)
	if err != nil {
		t.Fatal(err)
	}
	job := Job{Op: OpVariance, Column: "amount"}
	const trials = 48
	sq := map[string]float64{}
	var std map[string]float64
	var want map[string]float64
	for range trials {
		tab := encrypt(t, p, fx.keys, d)
		want = plainTerms(t, d, job, &tab.Header)
		res, err := proc.Run(context.Background(), tab, job)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]float64
		got, std = decryptMap(t, fx.keys, res)
		for k, w := range want {
			sq[k] += (got[k] - w) * (got[k] - w)
		}
	}
	for k := range want {
		rms := math.Sqrt(sq[k] / trials)
		t.Logf("%s: measured RMS error %.3g, stated σ %.3g", k, rms, std[k])
		if rms > 1.35*std[k] {
			t.Errorf("%s: RMS error %.3g exceeds the stated σ %.3g", k, rms, std[k])
		}
	}
}

// TestBGVInnerSumBothRows: values only in the second slot row (slots N/2..N-1)
// still reach the total: InnerSum(N/2) alone would return 0 in slot 0.
func TestBGVInnerSumBothRows(t *testing.T) {
	t.Parallel()
	p := testInsecureBGV
	fx := keysFor(t, p)
	half := 1 << (p.LogN - 1)
	x := make([]float64, 2*half)
	want := 0.0
	for i := half; i < 2*half; i++ {
		x[i] = float64(i - half + 1)
		want += x[i]
	}
	var buf bytes.Buffer
	if err := EncryptTable(context.Background(), &buf, fx.keys.Public, TableSpec{Preset: p, Columns: []ColumnSpec{{Name: "x", Kind: KindValue, Min: 0, Max: float64(half)}}}, [][]float64{x}); err != nil {
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
	got, _ := decryptMap(t, fx.keys, res)
	if diff := cmp.Diff(map[string]float64{"sum(x)": want}, got); diff != "" {
		t.Errorf("sum over the second row (-want +got):\n%s", diff)
	}
}

// TestOverflowRefused: jobs whose declared bounds could wrap or overflow are
// refused from the header alone, before any ciphertext is touched.
func TestOverflowRefused(t *testing.T) {
	t.Parallel()
	header := func(p Preset, rows int64, level int, col ColumnSpec) TableHeader {
		c, err := p.compile()
		if err != nil {
			t.Fatal(err)
		}
		return TableHeader{Version: tableVersion, Preset: p, Columns: []ColumnSpec{col}, Rows: rows, RowsPerCiphertext: c.slots(), Packing: packingSlots, Level: level}
	}
	bgvProc, _ := NewProcessor(keysFor(t, testInsecureBGV).evk)
	ckksProc, _ := NewProcessor(keysFor(t, testInsecureCKKS).evk)
	tests := []struct {
		name    string
		proc    *Processor
		header  TableHeader
		job     Job
		wantErr string // "" means accepted
	}{
		{"bgv sum fits", bgvProc, header(testInsecureBGV, 1_000_000, 2, ColumnSpec{Name: "x", Kind: KindValue, Min: 0, Max: 1_000_000}), Job{Op: OpSum, Column: "x"}, ""},
		{"bgv sum wraps modulo t", bgvProc, header(testInsecureBGV, 1_000_000, 2, ColumnSpec{Name: "x", Kind: KindValue, Min: -2_000_000, Max: 0}), Job{Op: OpSum, Column: "x"}, "wraps modulo t"},
		{"bgv sum of squares wraps", bgvProc, header(testInsecureBGV, 1_000_000, 2, ColumnSpec{Name: "x", Kind: KindValue, Min: 0, Max: 10_000}), Job{Op: OpVariance, Column: "x"}, "wraps modulo t"},
		{"ckks 1M sum at top level fits", ckksProc, header(testInsecureCKKS, 1_000_000, 2, ColumnSpec{Name: "x", Kind: KindValue, Min: 0, Max: 1}), Job{Op: OpSum, Column: "x"}, ""},
		{"ckks 1M sum at level 0 overflows", ckksProc, header(testInsecureCKKS, 1_000_000, 0, ColumnSpec{Name: "x", Kind: KindValue, Min: 0, Max: 1}), Job{Op: OpSum, Column: "x"}, "overflows the ciphertext modulus at level 0"},
		{"ckks product needs a level to rescale", ckksProc, header(testInsecureCKKS, 100, 0, ColumnSpec{Name: "x", Kind: KindValue, Min: 0, Max: 1}), Job{Op: OpVariance, Column: "x"}, "encrypted at level 0"},
		{"ckks sum of squares overflows", ckksProc, header(testInsecureCKKS, 1_000_000, 2, ColumnSpec{Name: "x", Kind: KindValue, Min: 0, Max: 1e8}), Job{Op: OpVariance, Column: "x"}, "overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.proc.Check(tt.header, tt.job)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v, want accepted", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("Check: %v, want an EINVALID error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestCKKSLevel0TrapReproduced shows why the check above exists: summing 8192
// ones at level 0 with a 2^50 scale and a 60-bit modulus decrypts to garbage
// when computed anyway (bypassing Check).
func TestCKKSLevel0TrapReproduced(t *testing.T) {
	t.Parallel()
	p := testInsecureCKKS
	fx := keysFor(t, p)
	c, _ := p.compile()
	x := make([]float64, 8*c.slots())
	for i := range x {
		x[i] = 100
	}
	var buf bytes.Buffer
	spec := TableSpec{Preset: p, LevelsDropped: 2, Columns: []ColumnSpec{{Name: "x", Kind: KindValue, Min: 0, Max: 100}}}
	if err := EncryptTable(context.Background(), &buf, fx.keys.Public, spec, [][]float64{x}); err != nil {
		t.Fatal(err)
	}
	tab, err := ReadTable(&buf)
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := NewProcessor(fx.evk)
	if _, err := proc.Run(context.Background(), tab, Job{Op: OpSum, Column: "x"}); err == nil {
		t.Fatal("Run accepted a sum that overflows at level 0")
	}
	// Computed without the check, the result is wrong.
	tm := term{name: "sum(x)", a: 0, b: -1}
	ev := ckksEvaluator{proc.ckks.ShallowCopy(), proc.c}
	ct, err := proc.aggregate(context.Background(), ev, tab, tm)
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := NewDecryptor(fx.keys)
	v, err := dec.decryptOne(ct, estimate{floodStd: 1, logScale: 50})
	if err != nil {
		t.Fatal(err)
	}
	if want := 100.0 * float64(len(x)); math.Abs(v.Value-want) < 1 {
		t.Errorf("unchecked level-0 sum = %g, want it wrong (overflowed); the trap no longer reproduces", v.Value)
	}
}

// TestPresets: every built-in preset compiles, meets the HE standard's 128-bit
// bound for its ring, keeps the CKKS scale below 2^55, and round-trips.
func TestPresets(t *testing.T) {
	t.Parallel()
	for _, name := range PresetNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := LookupPreset(name)
			if err != nil {
				t.Fatal(err)
			}
			c, err := p.compile()
			if err != nil {
				t.Fatal(err)
			}
			if got, bound := c.rlwe.LogQP(), heStandardMaxLogQP[p.LogN]; got > bound {
				t.Errorf("log2(QP) = %.1f > %g for N=2^%d", got, bound, p.LogN)
			}
			if p.Scheme == CKKS && (p.LogScale >= 55 || c.ckks.LogDefaultScale() >= 55) {
				t.Errorf("scale 2^%d ≥ 2^55", p.LogScale)
			}
			b, err := p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back Preset
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(p, back, cmp.AllowUnexported(Preset{})); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPresetValidate(t *testing.T) {
	t.Parallel()
	base, _ := LookupPreset(PresetBGVAgg)
	tests := []struct {
		name    string
		edit    func(p *Preset)
		wantErr string
	}{
		{"weak: 3×60+60 bits at N=2^13", func(p *Preset) { p.LogQ = []int{60, 60, 60} }, "128-bit security bound"},
		{"scale at 2^55", func(p *Preset) { *p, _ = LookupPreset(PresetCKKSAgg); p.LogScale = 55 }, "log_scale must be"},
		{"t not ≡ 1 mod 2N", func(p *Preset) { p.PlaintextModulus = 40961 }, "plaintext_modulus"},
		{"depth beyond levels", func(p *Preset) { p.Depth = 2 }, "depth must be"},
		{"unknown scheme", func(p *Preset) { p.Scheme = "tfhe" }, "scheme must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := base
			p.LogQ = append([]int(nil), base.LogQ...)
			tt.edit(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.wantErr)
			}
			if _, _, err := KeyGen(p, OpSum); err == nil {
				t.Error("KeyGen accepted an invalid preset")
			}
		})
	}
}

func TestPresetFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scheme Scheme
		ops    []Op
		want   string
	}{
		{BGV, []Op{OpSum, OpCount}, PresetBGVAgg},
		{BGV, []Op{OpSum, OpCategorySum}, PresetBGVDepth1},
		{CKKS, []Op{OpMean}, PresetCKKSAgg},
		{CKKS, []Op{OpVariance, OpCovariance}, PresetCKKSDepth2},
		{CKKS, []Op{OpMean, OpRegression}, PresetCKKSRegression},
	}
	for _, tt := range tests {
		p, err := PresetFor(tt.scheme, tt.ops...)
		if err != nil {
			t.Fatalf("PresetFor(%s, %v): %v", tt.scheme, tt.ops, err)
		}
		if p.Name != tt.want {
			t.Errorf("PresetFor(%s, %v) = %s, want %s", tt.scheme, tt.ops, p.Name, tt.want)
		}
	}
	if _, err := PresetFor(BGV, "median"); err == nil {
		t.Error("PresetFor accepted an unknown operation")
	}
}

// TestKeyGenOnlyNeededKeys: no relinearisation key unless an operation
// multiplies ciphertexts; Galois keys only for the slot sum (log2 of the slot
// count rotations, and for BGV the row rotation).
func TestKeyGenOnlyNeededKeys(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		p         Preset
		ops       []Op
		wantRelin bool
		wantGal   int
	}{
		{testInsecureBGV, []Op{OpSum, OpMean}, false, 10 + 1},
		{testInsecureBGV, []Op{OpVariance}, true, 10 + 1},
		{testInsecureCKKS, []Op{OpCount}, false, 11}, // N real slots in the conjugate-invariant ring
		{testInsecureCKKS, []Op{OpDot}, true, 11},
	} {
		fx := keysFor(t, tt.p, tt.ops...)
		if got := fx.evk.Relin != nil; got != tt.wantRelin {
			t.Errorf("%s %v: relinearisation key present = %v, want %v", tt.p.Name, tt.ops, got, tt.wantRelin)
		}
		if got := len(fx.evk.Galois); got != tt.wantGal {
			t.Errorf("%s %v: %d Galois keys, want %d", tt.p.Name, tt.ops, got, tt.wantGal)
		}
	}
	if _, _, err := KeyGen(testInsecureBGV); err == nil {
		t.Error("KeyGen without operations succeeded")
	}
}

// TestProcessorRefusesOpsWithoutKeys: keys issued for sums do not run products.
func TestProcessorRefusesOpsWithoutKeys(t *testing.T) {
	t.Parallel()
	fx := keysFor(t, testInsecureBGV, OpSum)
	d := newDataset(t, 100)
	tab := encrypt(t, testInsecureBGV, fx.keys, d)
	proc, _ := NewProcessor(fx.evk)
	_, err := proc.Run(context.Background(), tab, Job{Op: OpVariance, Column: "amount"})
	if privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
		t.Fatalf("Run(variance) with sum-only keys: %v, want %s", err, privalytics.EFORBIDDEN)
	}
}

// TestRoundTrips: every serialisable type decodes to what was encoded, and the
// decoded keys still work end to end.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	for _, p := range []Preset{testInsecureBGV, testInsecureCKKS} {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			fx := keysFor(t, p)
			ob, err := fx.keys.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var keys OwnerKeys
			if err := keys.UnmarshalBinary(ob); err != nil {
				t.Fatal(err)
			}
			if !keys.Secret.Equal(fx.keys.Secret) || !keys.Public.Equal(fx.keys.Public) || !keys.Preset.equal(p) {
				t.Error("owner keys differ after a round trip")
			}
			eb, err := fx.evk.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var evk EvaluationKeys
			if err := evk.UnmarshalBinary(eb); err != nil {
				t.Fatal(err)
			}
			if !evk.Relin.Equal(fx.evk.Relin) || len(evk.Galois) != len(fx.evk.Galois) || cmp.Diff(fx.evk.Ops, evk.Ops) != "" {
				t.Error("evaluation keys differ after a round trip")
			}
			for i := range evk.Galois {
				if !evk.Galois[i].Equal(fx.evk.Galois[i]) {
					t.Errorf("Galois key %d differs", i)
				}
			}

			// Table: ciphertexts and their metadata come back identical.
			d := newDataset(t, 300)
			var buf bytes.Buffer
			var progress []int64
			spec := TableSpec{Preset: p, Columns: d.spec, Progress: func(done, total int64) { progress = append(progress, done, total) }}
			if err := EncryptTable(context.Background(), &buf, keys.Public, spec, d.columns); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]int64{1, 1}, progress); diff != "" {
				t.Errorf("progress calls (-want +got):\n%s", diff)
			}
			tab, err := ReadTable(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			var again bytes.Buffer
			again.WriteString(tableMagic)
			hb := buf.Bytes()[len(tableMagic):]
			hlen := binary.LittleEndian.Uint64(hb)
			again.Write(hb[:8+hlen])
			for _, blk := range tab.Blocks {
				for _, ct := range blk {
					again.Write(appendCiphertext(nil, ct))
				}
			}
			if !bytes.Equal(buf.Bytes(), again.Bytes()) {
				t.Error("table bytes differ after read and re-encode")
			}

			// Result: decrypts to the same exact values before and after.
			proc, err := NewProcessor(&evk)
			if err != nil {
				t.Fatal(err)
			}
			res, err := proc.Run(context.Background(), tab, Job{Op: OpCategorySum, Group: "category", Column: "amount"})
			if err != nil {
				t.Fatal(err)
			}
			rb, err := res.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back Result
			if err := back.UnmarshalBinary(rb); err != nil {
				t.Fatal(err)
			}
			rb2, _ := back.MarshalBinary()
			if !bytes.Equal(rb, rb2) {
				t.Error("result bytes differ after a round trip")
			}
			for i := range res.Outputs {
				if !res.Outputs[i].Ciphertext.Equal(back.Outputs[i].Ciphertext) {
					t.Errorf("output %s differs after a round trip", res.Outputs[i].Name)
				}
			}
			got, std := decryptMap(t, &keys, &back)
			for name, w := range plainTerms(t, d, back.Job, &tab.Header) {
				if math.Abs(got[name]-w) > 6*std[name] {
					t.Errorf("%s = %g after round trips, want %g", name, got[name], w)
				}
			}
		})
	}
}

// TestDecryptionLimit: one ciphertext decrypts at most MaxDecryptions times.
func TestDecryptionLimit(t *testing.T) {
	t.Parallel()
	p := testInsecureCKKS
	fx := keysFor(t, p)
	tab := encrypt(t, p, fx.keys, newDataset(t, 50))
	proc, _ := NewProcessor(fx.evk)
	res, err := proc.Run(context.Background(), tab, Job{Op: OpSum, Column: "amount"})
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := NewDecryptor(fx.keys)
	for i := range p.MaxDecryptions {
		if _, err := dec.Decrypt(res); err != nil {
			t.Fatalf("decryption %d: %v", i+1, err)
		}
	}
	if _, err := dec.Decrypt(res); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
		t.Fatalf("decryption %d: %v, want %s", p.MaxDecryptions+1, err, privalytics.EFORBIDDEN)
	}
}

// TestTableWriterStreams: rows written in uneven batches give the same
// aggregates as one call, with progress per block; a row count that differs
// from the header is refused.
func TestTableWriterStreams(t *testing.T) {
	t.Parallel()
	p := testInsecureBGV
	fx := keysFor(t, p)
	d := newDataset(t, 3*2048+5)
	var buf bytes.Buffer
	var progress []int64
	spec := TableSpec{Preset: p, Columns: d.spec, Progress: func(done, total int64) { progress = append(progress, done, total) }}
	tw, err := NewTableWriter(&buf, fx.keys.Public, spec, int64(len(d.columns[0])))
	if err != nil {
		t.Fatal(err)
	}
	for lo, step := 0, 1; lo < len(d.columns[0]); lo, step = lo+step, step*3+1 {
		hi := min(lo+step, len(d.columns[0]))
		batch := make([][]float64, len(d.columns))
		for i, c := range d.columns {
			batch[i] = c[lo:hi]
		}
		if err := tw.WriteRows(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{1, 4, 2, 4, 3, 4, 4, 4}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	tab, err := ReadTable(&buf)
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := NewProcessor(fx.evk)
	job := Job{Op: OpCategorySum, Group: "category", Column: "amount"}
	res, err := proc.Run(context.Background(), tab, job)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := decryptMap(t, fx.keys, res)
	if diff := cmp.Diff(plainTerms(t, d, job, &tab.Header), got); diff != "" {
		t.Errorf("aggregates (-want +got):\n%s", diff)
	}

	short, err := NewTableWriter(io.Discard, fx.keys.Public, TableSpec{Preset: p, Columns: d.spec[:1]}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := short.WriteRows(context.Background(), [][]float64{{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := short.Close(); err == nil || !strings.Contains(err.Error(), "2 rows written but the header declares 10") {
		t.Errorf("Close after 2 of 10 rows: %v", err)
	}
	if err := short.WriteRows(context.Background(), [][]float64{make([]float64, 9)}); err == nil {
		t.Error("WriteRows accepted more rows than declared")
	}
}

// TestEncryptRefusesOutOfBounds: values outside the declared bounds would void
// the overflow checks, so they are refused at encryption.
func TestEncryptRefusesOutOfBounds(t *testing.T) {
	t.Parallel()
	fx := keysFor(t, testInsecureBGV)
	for _, tt := range []struct {
		name string
		v    float64
	}{{"above max", 11}, {"not an integer", 1.5}, {"NaN", math.NaN()}} {
		err := EncryptTable(context.Background(), io.Discard, fx.keys.Public,
			TableSpec{Preset: testInsecureBGV, Columns: []ColumnSpec{{Name: "x", Kind: KindValue, Min: 0, Max: 10}}}, [][]float64{{1, tt.v}})
		if err == nil || !strings.Contains(err.Error(), "outside the declared bounds") {
			t.Errorf("%s: EncryptTable: %v, want a bounds error", tt.name, err)
		}
	}
}

// TestConcurrentJobs runs all jobs on one table at once (run with -race).
func TestConcurrentJobs(t *testing.T) {
	t.Parallel()
	p := testInsecureBGV
	fx := keysFor(t, p)
	d := newDataset(t, 2048+10)
	tab := encrypt(t, p, fx.keys, d)
	proc, _ := NewProcessor(fx.evk)
	dec, _ := NewDecryptor(fx.keys)
	var wg sync.WaitGroup
	errs := make([]error, 2*len(jobs))
	for i := range errs {
		wg.Go(func() {
			job := jobs[i%len(jobs)]
			res, err := proc.Run(context.Background(), tab, job)
			if err != nil {
				errs[i] = err
				return
			}
			pl, err := dec.Decrypt(res)
			if err != nil {
				errs[i] = err
				return
			}
			want := plainTerms(t, d, job, &tab.Header)
			for _, v := range pl.Values {
				if v.Value != want[v.Name] {
					errs[i] = fmt.Errorf("%s = %g, want %g", v.Name, v.Value, want[v.Name])
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// TestRealPresets runs one job per scheme with the production presets.
func TestRealPresets(t *testing.T) {
	if testing.Short() {
		t.Skip("real presets take seconds; skipped with -short")
	}
	t.Parallel()
	for _, tt := range []struct {
		preset string
		job    Job
	}{
		{PresetBGVAgg, Job{Op: OpCategoryCount, Group: "category"}},
		{PresetCKKSAgg, Job{Op: OpMean, Column: "amount"}},
		{PresetBGVDepth1, Job{Op: OpCategorySum, Group: "category", Column: "amount"}},
		{PresetCKKSDepth2, Job{Op: OpVariance, Column: "amount"}},
		{PresetCKKSRegression, Job{Op: OpRegression, Columns: []string{"quantity"}, Target: "amount"}},
	} {
		t.Run(tt.preset, func(t *testing.T) {
			p, _ := LookupPreset(tt.preset)
			fx := keysFor(t, p, tt.job.Op)
			d := newDataset(t, 20_000)
			tab := encrypt(t, p, fx.keys, d)
			proc, _ := NewProcessor(fx.evk)
			res, err := proc.Run(context.Background(), tab, tt.job)
			if err != nil {
				t.Fatal(err)
			}
			got, std := decryptMap(t, fx.keys, res)
			for name, w := range plainTerms(t, d, tt.job, &tab.Header) {
				t.Logf("%s: got %.6f want %.0f stated σ %.3g", name, got[name], w, std[name])
				if math.Abs(got[name]-w) > 6*std[name] || (p.Scheme == BGV && got[name] != w) {
					t.Errorf("%s = %g, want %g (σ %g)", name, got[name], w, std[name])
				}
			}
		})
	}
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sharedData returns ../shared/data relative to the module root, or skips.
func sharedData(t testing.TB) string {
	t.Helper()
	dir, _ := os.Getwd()
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
	}
	data := filepath.Join(filepath.Dir(dir), "shared", "data")
	if _, err := os.Stat(data); err != nil {
		t.Skipf("shared data folder %s is absent; it holds the UCI Online Retail set", data)
	}
	return data
}
