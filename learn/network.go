package learn

import (
	"crypto/rand"
	"math"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/he/federation"
)

// FixedPoint is the scale of the integers locations encrypt: 2^16 keeps the
// rounding (±2^-17 per cell) far below the DP noise (σ ≥ 1 for any ε ≤ 10 at
// these sensitivities) while n·2^16 stays far inside the plaintext modulus.
const FixedPoint = 1 << 16

// Network runs the parties of a federation in one process over the real
// federation protocol (collective key, t-of-N threshold decryption): the
// in-process stand-in for separate location processes that training and tests
// use. Only sums ever leave the "server" towards the franchisor.
type Network struct {
	P          *federation.Params
	Locations  []*federation.Location
	CPK        *rlwe.PublicKey
	Franchisor *federation.Franchisor
	// Offline marks locations that dropped out after setup: they still
	// encrypt their contributions when asked but never send decryption shares,
	// so every round decrypts with t of the others.
	Offline map[int]bool
	// Stats of the last and all rounds.
	Rounds       int
	BytesUp      int64 // ciphertexts + decryption shares sent by locations, all rounds
	BytesPerLoc  int64 // largest upload of one location in one round
	CryptoTime   time.Duration
	contributors int
}

// NewNetwork sets up a federation of n locations with threshold t: key
// shares, collective key, sealed Shamir shares, franchisor key.
func NewNetwork(n, t int) (*Network, error) {
	p, err := federation.NewParams(n, t)
	if err != nil {
		return nil, err
	}
	seed := make([]byte, federation.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "learn: seed: %v", err)
	}
	nw := &Network{P: p, Franchisor: federation.NewFranchisor(p), Offline: map[int]bool{}}
	var shares []*federation.KeyShare
	var transport [][]byte
	for i := range n {
		l, err := federation.NewLocation(p, i)
		if err != nil {
			return nil, err
		}
		ks, err := l.KeyShare(seed)
		if err != nil {
			return nil, err
		}
		shares = append(shares, ks)
		transport = append(transport, ks.Transport)
		nw.Locations = append(nw.Locations, l)
	}
	if nw.CPK, err = federation.CollectivePublicKey(p, seed, shares); err != nil {
		return nil, err
	}
	const name = "learn"
	inbox := make([][]federation.SealedShare, n)
	for i, l := range nw.Locations {
		sealed, err := l.ShamirShares(name, seed, transport)
		if err != nil {
			return nil, err
		}
		for _, s := range sealed {
			inbox[s.Peer] = append(inbox[s.Peer], federation.SealedShare{Peer: i, Box: s.Box})
		}
	}
	for i, l := range nw.Locations {
		if err := l.CombineShares(name, seed, transport, inbox[i]); err != nil {
			return nil, err
		}
	}
	return nw, nil
}

// Round asks every location for its (already noised) cells, encrypts them in
// fixed point under the collective key, sums them as the server does, has t
// online locations switch the sum to the franchisor's key, and returns what
// the franchisor decrypts.
func (nw *Network) Round(cells func(loc int) ([]float64, error), n int) ([]float64, error) {
	start := time.Now()
	var cts []*rlwe.Ciphertext
	var perLoc int64
	for i := range nw.Locations {
		v, err := cells(i)
		if err != nil {
			return nil, err
		}
		if len(v) != n {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "learn: location %d sent %d cells, want %d", i, len(v), n)
		}
		ints := make([]int64, n)
		for j, x := range v {
			ints[j] = int64(math.Round(x * FixedPoint))
		}
		ct, err := federation.Encrypt(nw.P, nw.CPK, ints)
		if err != nil {
			return nil, err
		}
		b, err := ct.MarshalBinary()
		if err != nil {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "learn: marshal: %v", err)
		}
		perLoc = int64(len(b))
		nw.BytesUp += perLoc
		cts = append(cts, ct)
	}
	sum, err := federation.Sum(nw.P, cts)
	if err != nil {
		return nil, err
	}
	var active []int
	for i := range nw.Locations {
		if !nw.Offline[i] && len(active) < nw.P.Threshold {
			active = append(active, i)
		}
	}
	if len(active) < nw.P.Threshold {
		return nil, privalytics.Errorf(privalytics.EUNAVAILABLE, "learn: only %d locations are online, decryption needs t=%d", len(active), nw.P.Threshold)
	}
	var ds []*mhe.PublicKeySwitchShare
	var shareBytes int64
	for _, a := range active {
		s, err := nw.Locations[a].DecryptionShare(active, sum, nw.Franchisor.Public)
		if err != nil {
			return nil, err
		}
		b, err := s.MarshalBinary()
		if err != nil {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "learn: marshal: %v", err)
		}
		shareBytes = int64(len(b))
		nw.BytesUp += shareBytes
		ds = append(ds, s)
	}
	switched, err := federation.KeySwitch(nw.P, sum, ds)
	if err != nil {
		return nil, err
	}
	ints, err := nw.Franchisor.Decrypt(switched, n)
	if err != nil {
		return nil, err
	}
	out := make([]float64, n)
	for i, v := range ints {
		out[i] = float64(v) / FixedPoint
	}
	nw.Rounds++
	nw.contributors = len(cts)
	nw.BytesPerLoc = max(nw.BytesPerLoc, perLoc+shareBytes)
	nw.CryptoTime += time.Since(start)
	return out, nil
}
