package federation

import (
	"encoding/binary"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"

	"github.com/privalytics/privalytics"
)

// Wire formats (docs/franchise.md, "Formats"). Every object is a 5-byte magic
// with a version, then raw polynomial coefficients as uint64 little-endian, row
// by row (each prime of Q, then each of P). Shapes follow from the federation's
// parameters, so a decoder knows the exact size before reading, allocates only
// what the parameters imply, and rejects any coefficient not below its modulus.
// Lattigo's own encodings carry their lengths inside; ours never trust them.
const (
	magicKeyShare   = "PVFK\x01" // CKG share and transport key of one location
	magicCiphertext = "PVFC\x01" // a contribution, the server's sum, or the switched result
	magicDecShare   = "PVFD\x01" // a public-key-switching (decryption) share
	magicPublicKey  = "PVFP\x01" // a public key (collective or franchisor)
	magicSealed     = "PVFS\x01" // sealed Shamir shares
	magicFranchisor = "PVFF\x01" // the franchisor's key pair (secret)
	magicLocation   = "PVFL\x01" // a location's secrets (secret)
)

// TransportKeySize is the size of an X25519 public key.
const TransportKeySize = 32

func appendRows(buf []byte, p ring.Poly, rows int) []byte {
	for _, row := range p.Coeffs[:rows] {
		for _, x := range row {
			buf = binary.LittleEndian.AppendUint64(buf, x)
		}
	}
	return buf
}

func appendQP(buf []byte, p ringqp.Poly) []byte {
	buf = appendRows(buf, p.Q, len(p.Q.Coeffs))
	return appendRows(buf, p.P, len(p.P.Coeffs))
}

// reader fills allocated polynomials from raw bytes.
type reader struct {
	b    []byte
	off  int
	what string
	err  error
}

func (r *reader) rows(p ring.Poly, moduli []uint64) {
	for j, row := range p.Coeffs[:len(moduli)] {
		for k := range row {
			if r.err != nil {
				return
			}
			if r.off+8 > len(r.b) {
				r.err = privalytics.Errorf(privalytics.EINVALID, "federation: %s ends early; it is truncated or made with other parameters", r.what)
				return
			}
			x := binary.LittleEndian.Uint64(r.b[r.off:])
			if x >= moduli[j] {
				r.err = privalytics.Errorf(privalytics.EINVALID, "federation: %s: coefficient at byte %d is not below its modulus; it is corrupt or made with other parameters", r.what, r.off)
				return
			}
			row[k] = x
			r.off += 8
		}
	}
}

func (r *reader) qp(p ringqp.Poly, params *Params) {
	r.rows(p.Q, params.Q())
	r.rows(p.P, params.P())
}

// start checks the magic and the exact size of what follows.
func start(b []byte, magic string, size int, what string) (*reader, error) {
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: not a %s (bad magic or version)", what)
	}
	if len(b)-len(magic) != size {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: a %s of these parameters is %d bytes, got %d; it is truncated or made with other parameters", what, size+len(magic), len(b))
	}
	return &reader{b: b, off: len(magic), what: what}, nil
}

func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.err = privalytics.Errorf(privalytics.EINVALID, "federation: %s has %d trailing bytes", r.what, len(r.b)-r.off)
	}
	return r.err
}

func (p *Params) polyBytes(level int) int { return (level + 1) * p.N() * 8 }
func (p *Params) qpBytes() int            { return (p.QCount() + p.PCount()) * p.N() * 8 }

// KeyShare is what a location posts first: its CKG share and the X25519 key
// other locations seal its Shamir shares to.
type KeyShare struct {
	Transport []byte
	CKG       mhe.PublicKeyGenShare
}

// EncodeKeyShare serialises a key share.
func (p *Params) EncodeKeyShare(s *KeyShare) []byte {
	buf := append([]byte(magicKeyShare), s.Transport...)
	return appendQP(buf, s.CKG.Value)
}

// DecodeKeyShare parses and checks a key share.
func (p *Params) DecodeKeyShare(b []byte) (*KeyShare, error) {
	r, err := start(b, magicKeyShare, TransportKeySize+p.qpBytes(), "key share")
	if err != nil {
		return nil, err
	}
	s := &KeyShare{Transport: append([]byte(nil), b[r.off:r.off+TransportKeySize]...)}
	r.off += TransportKeySize
	s.CKG = mhe.NewPublicKeyGenProtocol(p.Parameters).AllocateShare()
	r.qp(s.CKG.Value, p)
	return s, r.done()
}

// EncodeCiphertext serialises a degree-1 ciphertext at the top level.
func (p *Params) EncodeCiphertext(ct *rlwe.Ciphertext) []byte {
	buf := []byte(magicCiphertext)
	for _, v := range ct.Value {
		buf = appendRows(buf, v, p.MaxLevel()+1)
	}
	return buf
}

// DecodeCiphertext parses and checks a ciphertext of these parameters.
func (p *Params) DecodeCiphertext(b []byte) (*rlwe.Ciphertext, error) {
	r, err := start(b, magicCiphertext, 2*p.polyBytes(p.MaxLevel()), "ciphertext")
	if err != nil {
		return nil, err
	}
	ct := heint.NewCiphertext(p.Parameters, 1, p.MaxLevel())
	for _, v := range ct.Value {
		r.rows(v, p.Q())
	}
	return ct, r.done()
}

// EncodeDecryptionShare serialises a public-key-switching share.
func (p *Params) EncodeDecryptionShare(s *mhe.PublicKeySwitchShare) []byte {
	buf := []byte(magicDecShare)
	for _, v := range s.Value {
		buf = appendRows(buf, v, p.MaxLevel()+1)
	}
	return buf
}

// DecodeDecryptionShare parses and checks a decryption share.
func (p *Params) DecodeDecryptionShare(b []byte) (*mhe.PublicKeySwitchShare, error) {
	r, err := start(b, magicDecShare, 2*p.polyBytes(p.MaxLevel()), "decryption share")
	if err != nil {
		return nil, err
	}
	s := &mhe.PublicKeySwitchShare{Element: *rlwe.NewElement(p.Parameters, 1, p.MaxLevel())}
	for _, v := range s.Value {
		r.rows(v, p.Q())
	}
	return s, r.done()
}

// EncodePublicKey serialises a public key.
func (p *Params) EncodePublicKey(pk *rlwe.PublicKey) []byte {
	buf := []byte(magicPublicKey)
	for _, v := range pk.Value {
		buf = appendQP(buf, v)
	}
	return buf
}

// DecodePublicKey parses and checks a public key.
func (p *Params) DecodePublicKey(b []byte) (*rlwe.PublicKey, error) {
	r, err := start(b, magicPublicKey, 2*p.qpBytes(), "public key")
	if err != nil {
		return nil, err
	}
	pk := rlwe.NewPublicKey(p.Parameters)
	for _, v := range pk.Value {
		r.qp(v, p)
	}
	return pk, r.done()
}

// SealedShare is one Shamir share sealed to one location. Peer is the
// recipient when a location uploads, the sender when it downloads its inbox.
type SealedShare struct {
	Peer int
	Box  []byte
}

// sealedBytes is the size of one sealed Shamir share: nonce, the QP
// polynomial, the GCM tag.
func (p *Params) sealedBytes() int { return nonceSize + p.qpBytes() + tagSize }

// EncodeSealed serialises sealed shares: a uint16 count, then per share a
// uint16 peer index and the fixed-size box.
func (p *Params) EncodeSealed(shares []SealedShare) []byte {
	buf := []byte(magicSealed)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(shares)))
	for _, s := range shares {
		buf = binary.LittleEndian.AppendUint16(buf, uint16(s.Peer))
		buf = append(buf, s.Box...)
	}
	return buf
}

// DecodeSealed parses sealed shares: at most N−1, each peer a location index
// at most once, each box of the exact size.
func (p *Params) DecodeSealed(b []byte) ([]SealedShare, error) {
	if len(b) < len(magicSealed)+2 || string(b[:len(magicSealed)]) != magicSealed {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: not sealed shares (bad magic or version)")
	}
	n := int(binary.LittleEndian.Uint16(b[len(magicSealed):]))
	if n > p.Locations-1 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: %d sealed shares, at most %d (one per other location)", n, p.Locations-1)
	}
	each := 2 + p.sealedBytes()
	if len(b) != len(magicSealed)+2+n*each {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: %d sealed shares take %d bytes, got %d; truncated or made with other parameters", n, len(magicSealed)+2+n*each, len(b))
	}
	out := make([]SealedShare, n)
	seen := map[int]bool{}
	off := len(magicSealed) + 2
	for i := range out {
		peer := int(binary.LittleEndian.Uint16(b[off:]))
		if peer >= p.Locations || seen[peer] {
			return nil, privalytics.Errorf(privalytics.EINVALID, "federation: sealed share %d names location %d, which is out of range or repeated", i, peer)
		}
		seen[peer] = true
		out[i] = SealedShare{Peer: peer, Box: append([]byte(nil), b[off+2:off+each]...)}
		off += each
	}
	return out, nil
}
