package he

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/privalytics/privalytics"
)

// OwnerKeys are the data owner's keys. The secret key never leaves the owner;
// the processor gets only EvaluationKeys.
type OwnerKeys struct {
	Preset Preset
	Secret *rlwe.SecretKey
	Public *rlwe.PublicKey
}

// EvaluationKeys are what a processor needs for the operations the owner
// allowed, and nothing more: a relinearisation key only if some operation
// multiplies ciphertexts, and Galois keys only for the rotations that sum slots.
type EvaluationKeys struct {
	Preset Preset
	Ops    []Op
	Relin  *rlwe.RelinearizationKey // nil when no operation multiplies ciphertexts
	Galois []*rlwe.GaloisKey
}

// KeyGen creates the owner's keys for a preset and the evaluation keys for ops.
func KeyGen(p Preset, ops ...Op) (*OwnerKeys, *EvaluationKeys, error) {
	c, err := p.compile()
	if err != nil {
		return nil, nil, err
	}
	if len(ops) == 0 {
		return nil, nil, privalytics.Errorf(privalytics.EINVALID, "he: KeyGen needs at least one operation, e.g. %q", OpSum)
	}
	depth := 0
	for _, op := range ops {
		d, err := op.depth()
		if err != nil {
			return nil, nil, err
		}
		depth = max(depth, d)
	}
	if depth > p.Depth {
		return nil, nil, privalytics.Errorf(privalytics.EINVALID, "he: the operations need %d products but preset %q allows %d; use PresetFor", depth, p.Name, p.Depth)
	}
	kgen := rlwe.NewKeyGenerator(c.rlwe)
	sk, pk := kgen.GenKeyPairNew()
	evk := &EvaluationKeys{Preset: p, Ops: slices.Clone(ops)}
	if depth > 0 {
		evk.Relin = kgen.GenRelinearizationKeyNew(sk)
	}
	evk.Galois = kgen.GenGaloisKeysNew(c.galoisElements(), sk)
	return &OwnerKeys{Preset: p, Secret: sk, Public: pk}, evk, nil
}

// galoisElements are the automorphisms that sum all slots of a ciphertext.
// Lattigo lists the identity (1) too; its key is never used, so it is dropped.
func (c *params) galoisElements() []uint64 {
	var els []uint64
	if c.Scheme == BGV {
		// InnerSum over N/2 only sums within one of BGV's two slot rows; the row
		// rotation adds the other row (the BGV InnerSum trap in BENCHMARKS.md).
		els = append(c.bgv.GaloisElementsForInnerSum(1, c.bgv.N()/2), c.bgv.GaloisElementForRowRotation())
	} else {
		els = c.ckks.GaloisElementsForInnerSum(1, c.ckks.MaxSlots())
	}
	return slices.DeleteFunc(els, func(g uint64) bool { return g == 1 })
}

// keySet is the Lattigo view of the evaluation keys.
func (e *EvaluationKeys) keySet() *rlwe.MemEvaluationKeySet {
	return rlwe.NewMemEvaluationKeySet(e.Relin, e.Galois...)
}

const (
	ownerKeysMagic = "PVHK\x02"
	evalKeysMagic  = "PVHE\x02"
	maxMetaFrame   = 1 << 16
)

// Keys are stored as raw coefficients, like ciphertexts: their shapes follow
// from the preset, so decoding allocates a template of the right shape and
// checks every coefficient against its modulus. Lattigo's own decoders trust
// the lengths embedded in their input (a fuzzed length made one recurse until
// the stack overflowed), so untrusted bytes never reach them.

type keyMeta struct {
	Preset Preset   `json:"preset"`
	Ops    []Op     `json:"ops,omitempty"`
	Relin  bool     `json:"relin,omitempty"`
	Galois []uint64 `json:"galois,omitempty"` // Galois elements, one key frame each, in order
}

// MarshalBinary encodes the owner's keys. Store the result as a secret (0600).
func (k *OwnerKeys) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(ownerKeysMagic)
	meta, _ := json.Marshal(keyMeta{Preset: k.Preset})
	for _, err := range []error{
		writeFrame(&buf, meta),
		writeFrame(&buf, appendPolyQP(nil, k.Secret.Value)),
		writeFrame(&buf, appendVectorQP(nil, k.Public.Value)),
	} {
		if err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes keys written by MarshalBinary.
func (k *OwnerKeys) UnmarshalBinary(b []byte) error {
	r := bytes.NewReader(b)
	meta, c, err := readKeyHeader(r, ownerKeysMagic, "owner keys")
	if err != nil {
		return err
	}
	sk, pk := rlwe.NewSecretKey(c.rlwe), rlwe.NewPublicKey(c.rlwe)
	if err := readKeyFrame(r, c, "secret key", func(d *coeffReader) { d.polyQP(sk.Value) }); err != nil {
		return err
	}
	if err := readKeyFrame(r, c, "public key", func(d *coeffReader) { d.vectorQP(pk.Value) }); err != nil {
		return err
	}
	*k = OwnerKeys{Preset: meta.Preset, Secret: sk, Public: pk}
	return nil
}

// MarshalBinary encodes the evaluation keys for shipping to a processor.
func (e *EvaluationKeys) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(evalKeysMagic)
	meta := keyMeta{Preset: e.Preset, Ops: e.Ops, Relin: e.Relin != nil}
	for _, g := range e.Galois {
		meta.Galois = append(meta.Galois, g.GaloisElement)
	}
	mb, _ := json.Marshal(meta)
	if err := writeFrame(&buf, mb); err != nil {
		return nil, err
	}
	if e.Relin != nil {
		if err := writeFrame(&buf, appendGadget(nil, &e.Relin.GadgetCiphertext)); err != nil {
			return nil, err
		}
	}
	for _, g := range e.Galois {
		if err := writeFrame(&buf, appendGadget(nil, &g.GadgetCiphertext)); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes evaluation keys, refusing Galois elements the
// preset's slot sum does not use.
func (e *EvaluationKeys) UnmarshalBinary(b []byte) error {
	r := bytes.NewReader(b)
	meta, c, err := readKeyHeader(r, evalKeysMagic, "evaluation keys")
	if err != nil {
		return err
	}
	for _, op := range meta.Ops {
		if _, err := op.depth(); err != nil {
			return err
		}
	}
	allowed := c.galoisElements()
	for i, g := range meta.Galois {
		if !slices.Contains(allowed, g) || slices.Contains(meta.Galois[:i], g) {
			return privalytics.Errorf(privalytics.EINVALID, "he: evaluation keys hold Galois element %d, which preset %q never uses or which repeats", g, c.Name)
		}
	}
	out := EvaluationKeys{Preset: meta.Preset, Ops: meta.Ops}
	if meta.Relin {
		out.Relin = rlwe.NewRelinearizationKey(c.rlwe)
		if err := readKeyFrame(r, c, "relinearisation key", func(d *coeffReader) { d.gadget(&out.Relin.GadgetCiphertext) }); err != nil {
			return err
		}
	}
	for _, g := range meta.Galois {
		gk := rlwe.NewGaloisKey(c.rlwe)
		gk.GaloisElement, gk.NthRoot = g, c.rlwe.RingQ().NthRoot()
		if err := readKeyFrame(r, c, "Galois key", func(d *coeffReader) { d.gadget(&gk.GadgetCiphertext) }); err != nil {
			return err
		}
		out.Galois = append(out.Galois, gk)
	}
	*e = out
	return nil
}

func readKeyHeader(r io.Reader, magic, what string) (keyMeta, *params, error) {
	m := make([]byte, len(magic))
	if _, err := io.ReadFull(r, m); err != nil || string(m) != magic {
		return keyMeta{}, nil, privalytics.Errorf(privalytics.EINVALID, "he: not %s of this version (bad magic)", what)
	}
	mb, err := readFrame(r, maxMetaFrame, what+" header")
	if err != nil {
		return keyMeta{}, nil, err
	}
	var meta keyMeta
	if err := json.Unmarshal(mb, &meta); err != nil {
		return keyMeta{}, nil, privalytics.Errorf(privalytics.EINVALID, "he: %s header: %v", what, err)
	}
	meta.Preset, err = resolvePreset(meta.Preset)
	if err != nil {
		return keyMeta{}, nil, err
	}
	c, err := meta.Preset.compile()
	return meta, c, err
}

// readKeyFrame reads one frame and fills a key template from it; the frame
// must be exactly as long as the template needs.
func readKeyFrame(r io.Reader, c *params, what string, fill func(*coeffReader)) error {
	// The largest key is a relinearisation key: one QP vector of 2 polynomials
	// per RNS digit, at most len(LogQ) digits.
	limit := uint64(2*len(c.LogQ)*8*c.rlwe.N()*(len(c.LogQ)+len(c.LogP))) + 8
	b, err := readFrame(r, limit, what)
	if err != nil {
		return err
	}
	d := &coeffReader{b: b, q: c.rlwe.Q(), p: c.rlwe.P()}
	fill(d)
	if d.err == nil && d.off != len(b) {
		d.err = fmt.Errorf("%d bytes, want %d", len(b), d.off)
	}
	if d.err != nil {
		return privalytics.Errorf(privalytics.EINVALID, "he: %s is malformed: %v; the keys are corrupt or for other parameters", what, d.err)
	}
	return nil
}

// resolvePreset maps a decoded preset literal to the registered preset of that
// name, and refuses a literal that differs from it: a name always means the
// same parameters.
func resolvePreset(p Preset) (Preset, error) {
	reg, err := LookupPreset(p.Name)
	if err != nil {
		return Preset{}, err
	}
	a, _ := reg.MarshalBinary()
	b, _ := p.MarshalBinary()
	if !bytes.Equal(a, b) {
		return Preset{}, privalytics.Errorf(privalytics.EINVALID, "he: preset %q does not match the registered parameters of that name; the sender runs another version", p.Name)
	}
	return reg, nil
}
