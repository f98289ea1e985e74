package he

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"math/big"
	"math/bits"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"

	"github.com/privalytics/privalytics"
)

// Result is a job's encrypted output, as the processor returns it. Each
// output's value is in slot 0 of its ciphertext.
type Result struct {
	Preset  Preset
	Job     Job
	Header  TableHeader // the table's header, from which the owner re-derives bounds and noise
	Outputs []Output
}

// Output is one encrypted aggregate of a result.
type Output struct {
	Name       string
	Ciphertext *rlwe.Ciphertext
}

const resultMagic = "PVHR\x01"

type resultMeta struct {
	Preset  Preset       `json:"preset"`
	Job     Job          `json:"job"`
	Header  TableHeader  `json:"header"`
	Outputs []outputMeta `json:"outputs"`
}

type outputMeta struct {
	Name  string `json:"name"`
	Level int    `json:"level"`
	Scale string `json:"scale"` // exact decimal of the Lattigo scale
}

// MarshalBinary encodes the result: a JSON description, then each ciphertext
// as raw coefficients (the same encoding as table ciphertexts).
func (r *Result) MarshalBinary() ([]byte, error) {
	meta := resultMeta{Preset: r.Preset, Job: r.Job, Header: r.Header}
	for _, o := range r.Outputs {
		if o.Ciphertext.Degree() != 1 {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "he: output %s is not relinearised", o.Name)
		}
		meta.Outputs = append(meta.Outputs, outputMeta{Name: o.Name, Level: o.Ciphertext.Level(), Scale: o.Ciphertext.Scale.Value.Text('g', 60)})
	}
	mb, _ := json.Marshal(meta)
	var buf bytes.Buffer
	buf.WriteString(resultMagic)
	if err := writeFrame(&buf, mb); err != nil {
		return nil, err
	}
	for _, o := range r.Outputs {
		if err := writeFrame(&buf, appendCiphertext(nil, o.Ciphertext)); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes a result, checking every length and coefficient.
func (r *Result) UnmarshalBinary(b []byte) error {
	rd := bytes.NewReader(b)
	m := make([]byte, len(resultMagic))
	if _, err := io.ReadFull(rd, m); err != nil || string(m) != resultMagic {
		return privalytics.Errorf(privalytics.EINVALID, "he: not an encrypted result of this version (bad magic)")
	}
	mb, err := readFrame(rd, maxHeaderBytes, "result header")
	if err != nil {
		return err
	}
	var meta resultMeta
	if err := json.Unmarshal(mb, &meta); err != nil {
		return privalytics.Errorf(privalytics.EINVALID, "he: result header: %v", err)
	}
	if meta.Preset, err = resolvePreset(meta.Preset); err != nil {
		return err
	}
	c, err := meta.Preset.compile()
	if err != nil {
		return err
	}
	if len(meta.Outputs) > maxColumns*maxColumns {
		return privalytics.Errorf(privalytics.EINVALID, "he: result has %d outputs", len(meta.Outputs))
	}
	out := Result{Preset: meta.Preset, Job: meta.Job, Header: meta.Header}
	for _, om := range meta.Outputs {
		if om.Level < 0 || om.Level > c.rlwe.MaxLevel() {
			return privalytics.Errorf(privalytics.EINVALID, "he: output %s: level %d out of range", om.Name, om.Level)
		}
		size := ciphertextBytes(c, om.Level)
		fb, err := readFrame(rd, uint64(size), "output "+om.Name)
		if err != nil {
			return err
		}
		if len(fb) != size {
			return privalytics.Errorf(privalytics.EINVALID, "he: output %s is %d bytes, want %d", om.Name, len(fb), size)
		}
		ct, err := decodeCiphertext(c, om.Level, fb)
		if err != nil {
			return err
		}
		f, ok := new(big.Float).SetPrec(ct.Scale.Value.Prec()).SetString(om.Scale)
		if !ok || f.Sign() <= 0 {
			return privalytics.Errorf(privalytics.EINVALID, "he: output %s: scale %q is not a positive number", om.Name, om.Scale)
		}
		ct.Scale.Value = *f
		out.Outputs = append(out.Outputs, Output{Name: om.Name, Ciphertext: ct})
	}
	*r = out
	return nil
}

// floodStd is σ_flood for a ciphertext whose noise has standard deviation
// noiseStd per coefficient: σ = noiseStd·√(k·N)·2^(λ/2). Per coefficient the KL
// divergence between decryptions with and without the secret-dependent noise e
// is e²/(2σ²); summed over N coefficients (Σe² ≤ 2N·noiseStd² with
// overwhelming probability) and k decryptions it stays ≤ 2^-λ.
func (c *params) floodStd(noiseStd float64) float64 {
	return math.Max(noiseStd, 1) * math.Sqrt(float64(c.MaxDecryptions)*float64(c.rlwe.N())) * math.Exp2(float64(c.FloodBits)/2)
}

// Value is one decrypted aggregate.
type Value struct {
	Name  string
	Value float64
	// Exact is true for BGV results: Value is the exact integer.
	Exact bool
	// ErrorStd is the standard deviation of the error flooding and encryption
	// noise leave in Value (0 for BGV).
	ErrorStd float64
	// Bound is the largest magnitude the declared bounds allow.
	Bound float64
	// NoiseStd and FloodStd are the estimated ring noise σ_noise and the
	// flooding σ_flood added at decryption (per coefficient, before decoding).
	NoiseStd, FloodStd float64
	// LaplaceScale is the scale b of the DP noise Release added (0 before release).
	LaplaceScale float64
}

// Plain is a decrypted result.
type Plain struct {
	Job    Job
	Header TableHeader // the table's header: bounds for sensitivities, the row count
	Values []Value
	// RowsLaplaceScale is the scale b of the DP noise Release added to
	// Header.Rows (0 before release: the row count is then exact).
	RowsLaplaceScale float64
}

// Decryptor is the owner's side: it decrypts results with noise flooding and
// refuses to decrypt one ciphertext more often than the preset's
// MaxDecryptions, for which the flooding was sized. Safe for concurrent use.
type Decryptor struct {
	keys   *OwnerKeys
	c      *params
	mu     sync.Mutex
	counts map[[32]byte]int
}

// NewDecryptor returns the owner's decryptor.
func NewDecryptor(keys *OwnerKeys) (*Decryptor, error) {
	c, err := keys.Preset.compile()
	if err != nil {
		return nil, err
	}
	return &Decryptor{keys: keys, c: c, counts: map[[32]byte]int{}}, nil
}

// Decrypt decrypts every output of a result, flooding each before decoding.
func (d *Decryptor) Decrypt(r *Result) (*Plain, error) {
	if !d.c.Preset.equal(r.Preset) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "he: the result uses preset %q but the keys are for %q", r.Preset.Name, d.c.Name)
	}
	if err := r.Header.validate(d.c); err != nil {
		return nil, err
	}
	terms, err := r.Job.terms(&r.Header)
	if err != nil {
		return nil, err
	}
	if len(terms) != len(r.Outputs) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "he: job %s has %d outputs, the result %d", r.Job.Op, len(terms), len(r.Outputs))
	}
	plain := &Plain{Job: r.Job, Header: r.Header}
	for i, tm := range terms {
		o := r.Outputs[i]
		est, err := d.c.estimateTerm(&r.Header, tm)
		if err != nil {
			return nil, err
		}
		if o.Name != tm.name || o.Ciphertext.Level() != est.level || o.Ciphertext.Degree() != 1 {
			return nil, privalytics.Errorf(privalytics.EINVALID, "he: output %d is %q at level %d, want %q at level %d", i, o.Name, o.Ciphertext.Level(), tm.name, est.level)
		}
		if err := d.charge(o.Ciphertext); err != nil {
			return nil, err
		}
		v, err := d.decryptOne(o.Ciphertext, est)
		if err != nil {
			return nil, err
		}
		v.Name = tm.name
		plain.Values = append(plain.Values, v)
	}
	return plain, nil
}

func (d *Decryptor) charge(ct *rlwe.Ciphertext) error {
	sum := sha256.Sum256(appendCiphertext(nil, ct))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.counts[sum] >= d.c.MaxDecryptions {
		return privalytics.Errorf(privalytics.EFORBIDDEN, "he: this ciphertext was already decrypted %d times, the most its flooding allows; keep the first answer", d.c.MaxDecryptions)
	}
	d.counts[sum]++
	return nil
}

func (d *Decryptor) decryptOne(ct *rlwe.Ciphertext, est estimate) (Value, error) {
	c := d.c
	level := ct.Level()
	pt := rlwe.NewPlaintext(c.rlwe, level)
	rlwe.NewDecryptor(c.rlwe, d.keys.Secret).Decrypt(ct, pt)
	if err := addFlooding(c, pt, est.floodStd); err != nil {
		return Value{}, err
	}
	v := Value{Bound: est.bound, NoiseStd: est.noiseStd, FloodStd: est.floodStd}
	if c.Scheme == BGV {
		vals := make([]int64, c.slots())
		if err := heint.NewEncoder(c.bgv).Decode(pt, vals); err != nil {
			return Value{}, privalytics.Errorf(privalytics.EINTERNAL, "he: decode: %v", err)
		}
		v.Value, v.Exact = float64(vals[0]), true
		return v, nil
	}
	vals := make([]float64, c.slots())
	if err := hefloat.NewEncoder(c.ckks).Decode(pt, vals); err != nil {
		return Value{}, privalytics.Errorf(privalytics.EINTERNAL, "he: decode: %v", err)
	}
	v.Value = vals[0]
	v.ErrorStd = ckksErrorStd(c, est, pt.Scale.Float64())
	return v, nil
}

// ckksErrorStd is the standard deviation of the decoded error: in the
// conjugate-invariant ring a slot is e₀ + 2Σⱼ eⱼcos(θj) over N coefficients,
// variance 2N·σ², divided by the scale (TestCKKSErrorStd measures it).
func ckksErrorStd(c *params, est estimate, scale float64) float64 {
	return math.Hypot(est.floodStd, est.noiseStd) * math.Sqrt(2*float64(c.rlwe.N())) / scale
}

// addFlooding adds a discrete Gaussian of standard deviation sigma to every
// coefficient of the decrypted plaintext. For BGV the decoder multiplies by t
// before reducing mod t, so the flood becomes t·E: it hides the noise in the
// ring and vanishes mod t, leaving the decryption exact (estimateTerm checked
// that it fits the modulus).
func addFlooding(c *params, pt *rlwe.Plaintext, sigma float64) error {
	prng, err := sampling.NewPRNG() // keyed from crypto/rand
	if err != nil {
		return privalytics.Errorf(privalytics.EINTERNAL, "he: flooding randomness: %v", err)
	}
	ringQ := c.rlwe.RingQ().AtLevel(pt.Level())
	e := ringQ.NewPoly()
	hi := make([]int64, ringQ.N())
	lo := make([]uint64, ringQ.N())
	k, err := sampleGaussian(prng, sigma, hi, lo)
	if err != nil {
		return err
	}
	// x = hi·2^k + lo − 2^(k−1), reduced modulo every prime of the level.
	for j, q := range ringQ.ModuliChain()[:pt.Level()+1] {
		twoK := modPow2(k, q)
		half := uint64(0)
		if k > 0 {
			half = modPow2(k-1, q)
		}
		for i := range hi {
			h := uint64(hi[i] % int64(q))
			if hi[i] < 0 && h != 0 {
				h = q - uint64(-(hi[i] % int64(q)))
			} else if hi[i] < 0 {
				h = 0
			}
			ph, pl := bits.Mul64(h, twoK)
			r := bits.Rem64(ph, pl, q)
			r = (r + lo[i]%q) % q
			r = (r + q - half) % q
			e.Coeffs[j][i] = r
		}
	}
	if pt.IsNTT {
		ringQ.NTT(e, e)
	}
	ringQ.Add(pt.Value, e, pt.Value)
	return nil
}

func modPow2(k int, q uint64) uint64 {
	r := uint64(1) % q
	for ; k > 0; k-- {
		r = (r << 1) % q // q < 2^62, so r<<1 does not overflow
	}
	return r
}

// sampleGaussian draws N(0, σ²) truncated at 6σ, as x = hi·2^k + lo − 2^(k−1):
// a float64 carries 53 significant bits, so above σ = 2^52 the top part comes
// from a scaled-down Gaussian and the k low bits are uniform. The flood must
// cover every residue, or its support would reveal the noise it hides.
func sampleGaussian(prng sampling.PRNG, sigma float64, hi []int64, lo []uint64) (int, error) {
	if !(sigma > 0) || sigma > 0x1p200 {
		return 0, privalytics.Errorf(privalytics.EINTERNAL, "he: flooding σ=%g out of range", sigma)
	}
	k := max(0, int(math.Ceil(math.Log2(sigma)))-52)
	scaled := sigma / math.Exp2(float64(k))
	var buf [24]byte
	for i := range hi {
		for {
			if _, err := prng.Read(buf[:]); err != nil {
				return 0, privalytics.Errorf(privalytics.EINTERNAL, "he: flooding randomness: %v", err)
			}
			u1 := (float64(binary.LittleEndian.Uint64(buf[:8])>>11) + 0.5) / (1 << 53)
			u2 := float64(binary.LittleEndian.Uint64(buf[8:16])>>11) / (1 << 53)
			z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
			if math.Abs(z) > 6 {
				continue
			}
			hi[i] = int64(math.Round(z * scaled))
			if k > 0 {
				lo[i] = binary.LittleEndian.Uint64(buf[16:]) & (1<<k - 1)
			}
			break
		}
	}
	return k, nil
}
