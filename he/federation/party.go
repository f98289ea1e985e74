package federation

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"

	"github.com/privalytics/privalytics"
)

const (
	nonceSize = 12
	tagSize   = 16
	// SeedSize is the size of a federation's public seed (the common reference
	// string of the CKG protocol and the HKDF salt of sealed shares).
	SeedSize = 32
)

// Location is one location's side of the protocol. Its secrets never leave it:
// Secret is its additive share of the collective key, Threshold its t-of-N
// share once setup is done, Transport the key its Shamir shares are sealed to.
type Location struct {
	P         *Params
	Index     int // 0-based; the Shamir point is Index+1
	Secret    *rlwe.SecretKey
	Threshold *mhe.ShamirSecretShare
	Transport *ecdh.PrivateKey

	own *mhe.ShamirSecretShare // the share of its own polynomial, kept between setup steps
}

// NewLocation draws a location's secret key share and transport key.
func NewLocation(p *Params, index int) (*Location, error) {
	if index < 0 || index >= p.Locations {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: location index must be 0..%d, got %d", p.Locations-1, index)
	}
	tk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: transport key: %v", err)
	}
	return &Location{P: p, Index: index, Secret: rlwe.NewKeyGenerator(p.Parameters).GenSecretKeyNew(), Transport: tk}, nil
}

func point(index int) mhe.ShamirPublicPoint { return mhe.ShamirPublicPoint(index + 1) }

func crp(p *Params, seed []byte) (mhe.PublicKeyGenCRP, error) {
	if len(seed) != SeedSize {
		return mhe.PublicKeyGenCRP{}, privalytics.Errorf(privalytics.EINVALID, "federation: seed must be %d bytes, got %d", SeedSize, len(seed))
	}
	crs, err := sampling.NewKeyedPRNG(seed)
	if err != nil {
		return mhe.PublicKeyGenCRP{}, privalytics.Errorf(privalytics.EINTERNAL, "federation: crs: %v", err)
	}
	return mhe.NewPublicKeyGenProtocol(p.Parameters).SampleCRP(crs), nil
}

// KeyShare is the location's CKG share for the federation's seed.
func (l *Location) KeyShare(seed []byte) (*KeyShare, error) {
	c, err := crp(l.P, seed)
	if err != nil {
		return nil, err
	}
	ckg := mhe.NewPublicKeyGenProtocol(l.P.Parameters)
	s := ckg.AllocateShare()
	ckg.GenShare(l.Secret, c, &s)
	return &KeyShare{Transport: l.Transport.PublicKey().Bytes(), CKG: s}, nil
}

// CollectivePublicKey aggregates all N CKG shares. It is public: the server
// computes it and anyone can recompute it.
func CollectivePublicKey(p *Params, seed []byte, shares []*KeyShare) (*rlwe.PublicKey, error) {
	if len(shares) != p.Locations {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: the collective key needs all %d key shares, got %d", p.Locations, len(shares))
	}
	c, err := crp(p, seed)
	if err != nil {
		return nil, err
	}
	ckg := mhe.NewPublicKeyGenProtocol(p.Parameters)
	agg := ckg.AllocateShare()
	for _, s := range shares {
		ckg.AggregateShares(agg, s.CKG, &agg)
	}
	pk := rlwe.NewPublicKey(p.Parameters)
	ckg.GenPublicKey(agg, c, pk)
	return pk, nil
}

// sealKey derives the AES key between two locations; the label binds the
// federation, the direction and the seed, so a box cannot be replayed
// elsewhere.
func sealKey(priv *ecdh.PrivateKey, peer []byte, seed []byte, label string) (cipher.AEAD, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: transport key: %v", err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: transport key: %v", err)
	}
	key, err := hkdf.Key(sha256.New, shared, seed, label, 32)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: hkdf: %v", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: aes: %v", err)
	}
	return cipher.NewGCM(block)
}

func sealLabel(federation string, from, to int) string {
	return fmt.Sprintf("privalytics federation %s shamir share %d->%d", federation, from, to)
}

// ShamirShares draws the location's Shamir polynomial of degree t−1 with its
// secret as constant term, keeps its own share and seals one share to every
// other location's transport key (transport[j] for location j).
func (l *Location) ShamirShares(federation string, seed []byte, transport [][]byte) ([]SealedShare, error) {
	if len(transport) != l.P.Locations {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: need the transport keys of all %d locations, got %d", l.P.Locations, len(transport))
	}
	thr := mhe.NewThresholdizer(l.P.Parameters)
	poly, err := thr.GenShamirPolynomial(l.P.Threshold, l.Secret)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: shamir: %v", err)
	}
	var out []SealedShare
	for j := range l.P.Locations {
		share := thr.AllocateThresholdSecretShare()
		thr.GenShamirSecretShare(point(j), poly, &share)
		if j == l.Index {
			l.own = &share
			continue
		}
		aead, err := sealKey(l.Transport, transport[j], seed, sealLabel(federation, l.Index, j))
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, nonceSize)
		if _, err := rand.Read(nonce); err != nil {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: nonce: %v", err)
		}
		box := aead.Seal(nonce, nonce, appendQP(nil, share.Poly), []byte(sealLabel(federation, l.Index, j)))
		out = append(out, SealedShare{Peer: j, Box: box})
	}
	return out, nil
}

// CombineShares opens the N−1 shares sealed to this location (Peer = sender)
// and adds them to its own: the result is its t-of-N share of the collective
// secret Σ sᵢ.
func (l *Location) CombineShares(federation string, seed []byte, transport [][]byte, inbox []SealedShare) error {
	if l.own == nil {
		return privalytics.Errorf(privalytics.ECONFLICT, "federation: draw this location's own Shamir shares first")
	}
	if len(inbox) != l.P.Locations-1 {
		return privalytics.Errorf(privalytics.EINVALID, "federation: expected %d shares from the other locations, got %d", l.P.Locations-1, len(inbox))
	}
	thr := mhe.NewThresholdizer(l.P.Parameters)
	tsk := thr.AllocateThresholdSecretShare()
	tsk.Poly.Copy(l.own.Poly)
	seen := map[int]bool{l.Index: true}
	for _, s := range inbox {
		if s.Peer < 0 || s.Peer >= l.P.Locations || seen[s.Peer] || len(s.Box) != l.P.sealedBytes() {
			return privalytics.Errorf(privalytics.EINVALID, "federation: share from location %d is unexpected, repeated or malformed", s.Peer)
		}
		seen[s.Peer] = true
		label := sealLabel(federation, s.Peer, l.Index)
		aead, err := sealKey(l.Transport, transport[s.Peer], seed, label)
		if err != nil {
			return err
		}
		plain, err := aead.Open(nil, s.Box[:nonceSize], s.Box[nonceSize:], []byte(label))
		if err != nil {
			return privalytics.Errorf(privalytics.EINVALID, "federation: the share from location %d does not open with its transport key; it was altered or sealed to someone else", s.Peer)
		}
		share := thr.AllocateThresholdSecretShare()
		r := &reader{b: plain, what: "Shamir share"}
		r.qp(share.Poly, l.P)
		if err := r.done(); err != nil {
			return err
		}
		if err := thr.AggregateShares(tsk, share, &tsk); err != nil {
			return privalytics.Errorf(privalytics.EINTERNAL, "federation: aggregate shares: %v", err)
		}
	}
	l.Threshold = &tsk
	l.own = nil
	return nil
}

// Encrypt encodes cells (already bounded and noised) into one BGV plaintext
// and encrypts it under the collective public key. Every cell must be within
// ±maxCell so that the sum of N contributions cannot wrap.
func Encrypt(p *Params, cpk *rlwe.PublicKey, cells []int64) (*rlwe.Ciphertext, error) {
	if len(cells) > p.Slots() {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: %d cells do not fit the %d slots of one ciphertext", len(cells), p.Slots())
	}
	limit := p.maxCell()
	for i, v := range cells {
		if v > limit || v < -limit {
			return nil, privalytics.Errorf(privalytics.EINVALID, "federation: cell %d is %d, beyond ±%d (the sum of %d locations would wrap); lower the query's bounds", i, v, limit, p.Locations)
		}
	}
	vals := make([]int64, p.Slots())
	copy(vals, cells)
	pt := heint.NewPlaintext(p.Parameters, p.MaxLevel())
	if err := heint.NewEncoder(p.Parameters).Encode(vals, pt); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: encode: %v", err)
	}
	ct := heint.NewCiphertext(p.Parameters, 1, p.MaxLevel())
	if err := rlwe.NewEncryptor(p.Parameters, cpk).Encrypt(pt, ct); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: encrypt: %v", err)
	}
	return ct, nil
}

// Sum adds contributions homomorphically; the server's only computation.
func Sum(p *Params, cts []*rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	if len(cts) == 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: nothing to add")
	}
	ev := heint.NewEvaluator(p.Parameters, nil)
	sum := cts[0].CopyNew()
	for _, ct := range cts[1:] {
		if err := ev.Add(sum, ct, sum); err != nil {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: add: %v", err)
		}
	}
	return sum, nil
}

// DecryptionShare is the location's public-key-switching share of the
// aggregate towards the franchisor's key, for the decrypting set active (t
// location indices including this one). The share is flooded with σ =
// P.FloodSigma. A location must never send two different shares for the same
// aggregate: two floods of the same secret product average the flood away.
func (l *Location) DecryptionShare(active []int, aggregate *rlwe.Ciphertext, franchisor *rlwe.PublicKey) (*mhe.PublicKeySwitchShare, error) {
	if l.Threshold == nil {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "federation: this location has no threshold share; finish setup first")
	}
	if len(active) != l.P.Threshold || !slices.Contains(active, l.Index) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: the decrypting set must have exactly t=%d locations including this one (%d), got %v", l.P.Threshold, l.Index, active)
	}
	points := make([]mhe.ShamirPublicPoint, len(active))
	all := make([]mhe.ShamirPublicPoint, l.P.Locations)
	for i := range all {
		all[i] = point(i)
	}
	for i, a := range active {
		if a < 0 || a >= l.P.Locations {
			return nil, privalytics.Errorf(privalytics.EINVALID, "federation: location %d of the decrypting set is out of range", a)
		}
		points[i] = point(a)
	}
	cmb := mhe.NewCombiner(*l.P.GetRLWEParameters(), point(l.Index), all, l.P.Threshold)
	additive := rlwe.NewSecretKey(l.P.Parameters)
	if err := cmb.GenAdditiveShare(points, point(l.Index), *l.Threshold, additive); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: combine: %v", err)
	}
	return pcksShare(l.P, additive, aggregate, franchisor)
}

func pcksShare(p *Params, sk *rlwe.SecretKey, ct *rlwe.Ciphertext, pk *rlwe.PublicKey) (*mhe.PublicKeySwitchShare, error) {
	pcks, err := mhe.NewPublicKeySwitchProtocol(p.Parameters, ring.DiscreteGaussian{Sigma: p.FloodSigma, Bound: 6 * p.FloodSigma})
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: key switch: %v", err)
	}
	s := pcks.AllocateShare(ct.Level())
	pcks.GenShare(sk, pk, ct, &s)
	return &s, nil
}

// KeySwitch combines exactly t decryption shares into the aggregate
// re-encrypted under the franchisor's key; public, done by the server.
func KeySwitch(p *Params, aggregate *rlwe.Ciphertext, shares []*mhe.PublicKeySwitchShare) (*rlwe.Ciphertext, error) {
	if len(shares) != p.Threshold {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: key switching needs t=%d shares, got %d", p.Threshold, len(shares))
	}
	pcks, err := mhe.NewPublicKeySwitchProtocol(p.Parameters, ring.DiscreteGaussian{Sigma: p.FloodSigma, Bound: 6 * p.FloodSigma})
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: key switch: %v", err)
	}
	agg := pcks.AllocateShare(aggregate.Level())
	for _, s := range shares {
		if err := pcks.AggregateShares(agg, *s, &agg); err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "federation: %v", err)
		}
	}
	out := heint.NewCiphertext(p.Parameters, 1, aggregate.Level())
	pcks.KeySwitch(aggregate, agg, out)
	return out, nil
}

// Franchisor holds the key pair the result is re-encrypted to.
type Franchisor struct {
	P      *Params
	Secret *rlwe.SecretKey
	Public *rlwe.PublicKey
}

// NewFranchisor draws the franchisor's key pair.
func NewFranchisor(p *Params) *Franchisor {
	sk, pk := rlwe.NewKeyGenerator(p.Parameters).GenKeyPairNew()
	return &Franchisor{P: p, Secret: sk, Public: pk}
}

// Decrypt returns the first n cells of a result switched to this key.
func (f *Franchisor) Decrypt(ct *rlwe.Ciphertext, n int) ([]int64, error) {
	return decrypt(f.P, f.Secret, ct, n)
}

func decrypt(p *Params, sk *rlwe.SecretKey, ct *rlwe.Ciphertext, n int) ([]int64, error) {
	if n < 0 || n > p.Slots() {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: %d cells requested, at most %d", n, p.Slots())
	}
	pt := heint.NewPlaintext(p.Parameters, ct.Level())
	rlwe.NewDecryptor(p.Parameters, sk).Decrypt(ct, pt)
	vals := make([]int64, p.Slots())
	if err := heint.NewEncoder(p.Parameters).Decode(pt, vals); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: decode: %v", err)
	}
	return vals[:n], nil
}

// EncodeFranchisor serialises the franchisor's key pair (keep it 0600).
func (p *Params) EncodeFranchisor(f *Franchisor) []byte {
	buf := appendQP([]byte(magicFranchisor), f.Secret.Value)
	for _, v := range f.Public.Value {
		buf = appendQP(buf, v)
	}
	return buf
}

// DecodeFranchisor parses the franchisor's key pair.
func (p *Params) DecodeFranchisor(b []byte) (*Franchisor, error) {
	r, err := start(b, magicFranchisor, 3*p.qpBytes(), "franchisor key")
	if err != nil {
		return nil, err
	}
	f := &Franchisor{P: p, Secret: rlwe.NewSecretKey(p.Parameters), Public: rlwe.NewPublicKey(p.Parameters)}
	r.qp(f.Secret.Value, p)
	for _, v := range f.Public.Value {
		r.qp(v, p)
	}
	return f, r.done()
}

// EncodeLocation serialises a location's secrets after setup (keep it 0600):
// uint16 index, the X25519 private key, the secret key share, the threshold share.
func (p *Params) EncodeLocation(l *Location) ([]byte, error) {
	if l.Threshold == nil {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "federation: location %d has not finished setup", l.Index)
	}
	buf := binary.LittleEndian.AppendUint16([]byte(magicLocation), uint16(l.Index))
	buf = append(buf, l.Transport.Bytes()...)
	buf = appendQP(buf, l.Secret.Value)
	return appendQP(buf, l.Threshold.Poly), nil
}

// DecodeLocation parses a location's secrets.
func (p *Params) DecodeLocation(b []byte) (*Location, error) {
	r, err := start(b, magicLocation, 2+32+2*p.qpBytes(), "location secrets")
	if err != nil {
		return nil, err
	}
	idx := int(binary.LittleEndian.Uint16(b[r.off:]))
	if idx >= p.Locations {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: location secrets name index %d, beyond the %d locations", idx, p.Locations)
	}
	tk, err := ecdh.X25519().NewPrivateKey(b[r.off+2 : r.off+34])
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: location secrets: %v", err)
	}
	r.off += 34
	l := &Location{P: p, Index: idx, Transport: tk, Secret: rlwe.NewSecretKey(p.Parameters)}
	thr := mhe.NewThresholdizer(p.Parameters).AllocateThresholdSecretShare()
	r.qp(l.Secret.Value, p)
	r.qp(thr.Poly, p)
	l.Threshold = &thr
	return l, r.done()
}
