package federation

import (
	"math"
	"slices"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"

	"github.com/privalytics/privalytics/dp/dptest"
)

// network runs setup for n locations with threshold t, in process, through
// the wire formats (every share is encoded and decoded as it would be sent).
type network struct {
	p          *Params
	seed       []byte
	locs       []*Location
	cpk        *rlwe.PublicKey
	franchisor *Franchisor
	tokens     []string // the locations' credentials, when made through a Registry
}

func newNetwork(tb testing.TB, n, t int) *network {
	tb.Helper()
	p, err := NewParams(n, t)
	if err != nil {
		tb.Fatal(err)
	}
	nw := &network{p: p, seed: make([]byte, SeedSize), franchisor: NewFranchisor(p)}
	for i := range nw.seed {
		nw.seed[i] = byte(i * 7)
	}
	var shares []*KeyShare
	var transport [][]byte
	for i := range n {
		l, err := NewLocation(p, i)
		if err != nil {
			tb.Fatal(err)
		}
		ks, err := l.KeyShare(nw.seed)
		if err != nil {
			tb.Fatal(err)
		}
		back, err := p.DecodeKeyShare(p.EncodeKeyShare(ks))
		if err != nil {
			tb.Fatal(err)
		}
		shares = append(shares, back)
		transport = append(transport, back.Transport)
		nw.locs = append(nw.locs, l)
	}
	if nw.cpk, err = CollectivePublicKey(p, nw.seed, shares); err != nil {
		tb.Fatal(err)
	}
	inbox := make([][]SealedShare, n)
	for i, l := range nw.locs {
		sealed, err := l.ShamirShares("fed_test", nw.seed, transport)
		if err != nil {
			tb.Fatal(err)
		}
		back, err := p.DecodeSealed(p.EncodeSealed(sealed))
		if err != nil {
			tb.Fatal(err)
		}
		for _, s := range back {
			inbox[s.Peer] = append(inbox[s.Peer], SealedShare{Peer: i, Box: s.Box})
		}
	}
	for i, l := range nw.locs {
		if err := l.CombineShares("fed_test", nw.seed, transport, inbox[i]); err != nil {
			tb.Fatal(err)
		}
	}
	return nw
}

// round encrypts cells[i] for each contributing location, sums, and returns
// the aggregate the server would hold.
func (nw *network) aggregate(tb testing.TB, cells map[int][]int64) *rlwe.Ciphertext {
	tb.Helper()
	var cts []*rlwe.Ciphertext
	for _, c := range cells {
		ct, err := Encrypt(nw.p, nw.cpk, c)
		if err != nil {
			tb.Fatal(err)
		}
		back, err := nw.p.DecodeCiphertext(nw.p.EncodeCiphertext(ct))
		if err != nil {
			tb.Fatal(err)
		}
		cts = append(cts, back)
	}
	sum, err := Sum(nw.p, cts)
	if err != nil {
		tb.Fatal(err)
	}
	return sum
}

func (nw *network) release(tb testing.TB, agg *rlwe.Ciphertext, active []int, n int) []int64 {
	tb.Helper()
	var shares []*mhe.PublicKeySwitchShare
	for _, a := range active {
		s, err := nw.locs[a].DecryptionShare(active, agg, nw.franchisor.Public)
		if err != nil {
			tb.Fatal(err)
		}
		back, err := nw.p.DecodeDecryptionShare(nw.p.EncodeDecryptionShare(s))
		if err != nil {
			tb.Fatal(err)
		}
		shares = append(shares, back)
	}
	out, err := KeySwitch(nw.p, agg, shares)
	if err != nil {
		tb.Fatal(err)
	}
	vals, err := nw.franchisor.Decrypt(out, n)
	if err != nil {
		tb.Fatal(err)
	}
	return vals
}

func TestThresholdRoundIsExactWithoutDPNoise(t *testing.T) {
	t.Parallel()
	nw := newNetwork(t, 5, 3)
	// Location 1 drops out before contributing, location 4 before decrypting.
	cells := map[int][]int64{0: {5, -7, 1 << 30}, 2: {11, 0, 3}, 3: {-2, 9, 1}, 4: {100, 100, 100}}
	want := make([]int64, 3)
	for _, c := range cells {
		for i, v := range c {
			want[i] += v
		}
	}
	got := nw.release(t, nw.aggregate(t, cells), []int{0, 2, 3}, 3)
	if !slices.Equal(got, want) {
		t.Fatalf("sum = %v, want %v", got, want)
	}
	// Another decrypting set of t gives the same answer.
	if got := nw.release(t, nw.aggregate(t, cells), []int{1, 3, 4}, 3); !slices.Equal(got, want) {
		t.Fatalf("sum with set {1,3,4} = %v, want %v", got, want)
	}
}

func TestSumWithDPNoiseIsWithinItsInterval(t *testing.T) {
	t.Parallel()
	const n, th = 6, 4
	nw := newNetwork(t, n, th)
	q := Query{SubjectColumn: "c", CategoryColumn: "k", Categories: []string{"a", "b", "c", "d"}, Aggregates: []string{AggCount, AggSum}, ValueColumn: "v",
		Lower: 0, Upper: 1000, MaxRowsPerSubject: 4, Epsilon: 1, Delta: 1e-6}
	if err := q.Validate(nw.p); err != nil {
		t.Fatal(err)
	}
	cells := map[int][]int64{}
	want := make([]int64, q.Cells())
	for i := range 5 { // one location drops out
		c := make([]int64, q.Cells())
		for j := range c {
			c[j] = int64(1000*i + 37*j)
			want[j] += c[j]
		}
		if err := q.AddNoiseShares(c, th); err != nil {
			t.Fatal(err)
		}
		cells[i] = c
	}
	got := nw.release(t, nw.aggregate(t, cells), []int{0, 1, 2, 4}, q.Cells())
	// Each cell's noise is Gaussian with the stated std; |z| ≤ 6 fails with
	// probability < 2e-9 per cell (8 cells here).
	differs := false
	for a, agg := range q.Aggregates {
		std := q.NoiseStd(agg, th, len(cells))
		for c := range q.Categories {
			i := q.Cell(a, c)
			if d := math.Abs(float64(got[i] - want[i])); d > 6*std {
				t.Errorf("cell %d: %d, want %d ± %.0f (6σ)", i, got[i], want[i], 6*std)
			}
			differs = differs || got[i] != want[i]
		}
	}
	if !differs {
		t.Errorf("no cell carries noise: %v", got)
	}
}

// The server holds the collective public key, every contribution, the sum,
// the decryption shares and the switched result, but no secret: decrypting
// the result with any key it could make up gives garbage.
func TestServerAloneCannotDecrypt(t *testing.T) {
	t.Parallel()
	nw := newNetwork(t, 4, 2)
	want := []int64{123456, 654321, 42}
	agg := nw.aggregate(t, map[int][]int64{0: want})
	guess := rlwe.NewKeyGenerator(nw.p.Parameters).GenSecretKeyNew()
	got, err := decrypt(nw.p, guess, agg, 3)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(got, want) {
		t.Fatal("a made-up key decrypted the aggregate")
	}
	zero := rlwe.NewSecretKey(nw.p.Parameters) // the all-zero key reads c0
	if got, _ := decrypt(nw.p, zero, agg, 3); slices.Equal(got, want) {
		t.Fatal("c0 alone revealed the aggregate")
	}
}

// t−1 locations pooling their threshold shares (Lagrange interpolation over
// their own points) do not get the collective secret; t do (the control).
func TestFewerThanThresholdCannotDecrypt(t *testing.T) {
	t.Parallel()
	const n, th = 6, 4
	nw := newNetwork(t, n, th)
	want := []int64{31337, 271828, 1, 2, 3}
	agg := nw.aggregate(t, map[int][]int64{0: want, 1: {0, 0, 0, 0, 0}})
	pool := func(set []int) []int64 {
		points := make([]mhe.ShamirPublicPoint, len(set))
		all := make([]mhe.ShamirPublicPoint, n)
		for i := range all {
			all[i] = point(i)
		}
		for i, s := range set {
			points[i] = point(s)
		}
		sk := rlwe.NewSecretKey(nw.p.Parameters)
		ringQP := nw.p.RingQP()
		for _, s := range set {
			cmb := mhe.NewCombiner(*nw.p.GetRLWEParameters(), point(s), all, len(set))
			add := rlwe.NewSecretKey(nw.p.Parameters)
			if err := cmb.GenAdditiveShare(points, point(s), *nw.locs[s].Threshold, add); err != nil {
				t.Fatal(err)
			}
			ringQP.Add(sk.Value, add.Value, sk.Value)
		}
		got, err := decrypt(nw.p, sk, agg, len(want))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := pool([]int{0, 2, 3, 5}); !slices.Equal(got, want) {
		t.Fatalf("control: t locations decrypt %v, want %v", got, want)
	}
	if got := pool([]int{0, 2, 5}); slices.Equal(got, want) {
		t.Fatal("t−1 locations decrypted the aggregate")
	}
	// The key switch with t−1 shares (one missing) does not decrypt either.
	active := []int{0, 1, 2, 3}
	var shares []*mhe.PublicKeySwitchShare
	for _, a := range active[:3] {
		s, err := nw.locs[a].DecryptionShare(active, agg, nw.franchisor.Public)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, s)
	}
	p2 := *nw.p
	p2.Threshold = 3
	out, err := KeySwitch(&p2, agg, shares)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := nw.franchisor.Decrypt(out, len(want)); slices.Equal(got, want) {
		t.Fatal("t−1 decryption shares released the aggregate")
	}
}

func TestSecretsRoundTrip(t *testing.T) {
	t.Parallel()
	nw := newNetwork(t, 3, 2)
	b, err := nw.p.EncodeLocation(nw.locs[1])
	if err != nil {
		t.Fatal(err)
	}
	l, err := nw.p.DecodeLocation(b)
	if err != nil {
		t.Fatal(err)
	}
	if l.Index != 1 || !l.Secret.Equal(nw.locs[1].Secret) || !l.Threshold.Equal(&nw.locs[1].Threshold.Poly) || !l.Transport.Equal(nw.locs[1].Transport) {
		t.Fatal("location secrets do not round-trip")
	}
	f, err := nw.p.DecodeFranchisor(nw.p.EncodeFranchisor(nw.franchisor))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Secret.Equal(nw.franchisor.Secret) || !f.Public.Equal(nw.franchisor.Public) {
		t.Fatal("franchisor key does not round-trip")
	}
	pk, err := nw.p.DecodePublicKey(nw.p.EncodePublicKey(nw.cpk))
	if err != nil || !pk.Equal(nw.cpk) {
		t.Fatalf("public key does not round-trip: %v", err)
	}
	// A ciphertext of other parameters (one prime fewer) is refused by size.
	ct, _ := Encrypt(nw.p, nw.cpk, []int64{1})
	enc := nw.p.EncodeCiphertext(ct)
	if _, err := nw.p.DecodeCiphertext(enc[:len(enc)-nw.p.polyBytes(0)]); err == nil {
		t.Fatal("a short ciphertext was accepted")
	}
}

// TestNoiseSharesGoThroughDP: the locations' noise is drawn by the dp
// mechanisms passed in, so dptest.NoNoise leaves the bounded aggregates exact.
func TestNoiseSharesGoThroughDP(t *testing.T) {
	t.Parallel()
	q := Query{SubjectColumn: "c", CategoryColumn: "k", Categories: []string{"a", "b"}, Aggregates: []string{AggCount, AggSum}, ValueColumn: "v",
		Lower: 0, Upper: 100, MaxRowsPerSubject: 2, Epsilon: 1, Delta: 1e-6}
	cells := []int64{3, 4, 300, 400}
	if err := q.AddNoiseSharesWith(dptest.NoNoise(), cells, 3); err != nil {
		t.Fatal(err)
	}
	if want := []int64{3, 4, 300, 400}; !slices.Equal(cells, want) {
		t.Errorf("cells = %v, want %v", cells, want)
	}
	if err := q.AddNoiseSharesWith(dptest.NoNoise(), cells[:3], 3); err == nil {
		t.Error("3 cells for a 4-cell query: no error")
	}
}
