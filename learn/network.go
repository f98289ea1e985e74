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
	Rounds      int
	BytesUp     int64 // ciphertexts + decryption shares sent by locations, all rounds
	BytesPerLoc int64 // largest upload of one location in one round
	CryptoTime  time.Duration
	// Server sums and key-switches; LocalServer unless a transport is set.
	Server Server
	// tap sees each location's plaintext cells before encryption (tests
	// use it to look for them where they must not be).
	tap func(loc int, cells []int64)
}

// Server is the federation's untrusted server as training sees it: it
// receives the locations' ciphertexts as bytes and returns their sum, then
// receives t decryption shares and returns the sum switched to the
// franchisor's key. It never holds a key.
type Server interface {
	Sum(round int, contributions [][]byte) ([]byte, error)
	KeySwitch(round int, aggregate []byte, shares [][]byte) ([]byte, error)
}

// LocalServer is the server's computation in this process.
type LocalServer struct{ P *federation.Params }

// Sum adds the contributions homomorphically.
func (s LocalServer) Sum(_ int, contributions [][]byte) ([]byte, error) {
	cts := make([]*rlwe.Ciphertext, len(contributions))
	for i, b := range contributions {
		cts[i] = new(rlwe.Ciphertext)
		if err := cts[i].UnmarshalBinary(b); err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "learn: contribution %d is not a ciphertext: %v", i, err)
		}
	}
	sum, err := federation.Sum(s.P, cts)
	if err != nil {
		return nil, err
	}
	return marshal(sum)
}

// KeySwitch combines t decryption shares.
func (s LocalServer) KeySwitch(_ int, aggregate []byte, shares [][]byte) ([]byte, error) {
	ct := new(rlwe.Ciphertext)
	if err := ct.UnmarshalBinary(aggregate); err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: the aggregate is not a ciphertext: %v", err)
	}
	ds := make([]*mhe.PublicKeySwitchShare, len(shares))
	for i, b := range shares {
		ds[i] = new(mhe.PublicKeySwitchShare)
		if err := ds[i].UnmarshalBinary(b); err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "learn: decryption share %d is malformed: %v", i, err)
		}
	}
	out, err := federation.KeySwitch(s.P, ct, ds)
	if err != nil {
		return nil, err
	}
	return marshal(out)
}

func marshal(m interface{ MarshalBinary() ([]byte, error) }) ([]byte, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "learn: marshal: %v", err)
	}
	return b, nil
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
	nw := &Network{P: p, Franchisor: federation.NewFranchisor(p), Offline: map[int]bool{}, Server: LocalServer{P: p}}
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
	var contributions [][]byte
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
		if nw.tap != nil {
			nw.tap(i, ints)
		}
		ct, err := federation.Encrypt(nw.P, nw.CPK, ints)
		if err != nil {
			return nil, err
		}
		b, err := marshal(ct)
		if err != nil {
			return nil, err
		}
		perLoc = int64(len(b))
		nw.BytesUp += perLoc
		contributions = append(contributions, b)
	}
	sumBytes, err := nw.Server.Sum(nw.Rounds, contributions)
	if err != nil {
		return nil, err
	}
	sum := new(rlwe.Ciphertext)
	if err := sum.UnmarshalBinary(sumBytes); err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: the server's sum is not a ciphertext: %v", err)
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
	var shares [][]byte
	var shareBytes int64
	for _, a := range active {
		s, err := nw.Locations[a].DecryptionShare(active, sum, nw.Franchisor.Public)
		if err != nil {
			return nil, err
		}
		b, err := marshal(s)
		if err != nil {
			return nil, err
		}
		shareBytes = int64(len(b))
		nw.BytesUp += shareBytes
		shares = append(shares, b)
	}
	swBytes, err := nw.Server.KeySwitch(nw.Rounds, sumBytes, shares)
	if err != nil {
		return nil, err
	}
	switched := new(rlwe.Ciphertext)
	if err := switched.UnmarshalBinary(swBytes); err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: the server's key-switched sum is not a ciphertext: %v", err)
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
	nw.BytesPerLoc = max(nw.BytesPerLoc, perLoc+shareBytes)
	nw.CryptoTime += time.Since(start)
	return out, nil
}
