package federation

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp/dptest"
)

// registryTransport is a location's Transport straight onto a Registry, as
// the server's handlers would call it for location loc (tenant "" = a
// location credential).
type registryTransport struct {
	r   *Registry
	loc int
}

func (t registryTransport) Federation(_ context.Context, fed string) (*wire.Federation, error) {
	v, err := t.r.Get(fed, "")
	return &v, err
}
func (t registryTransport) PostKeyShare(_ context.Context, fed string, b []byte) (*wire.ShareAccepted, error) {
	dup, err := t.r.PostKeyShare(fed, t.loc, b)
	return &wire.ShareAccepted{Accepted: err == nil, Duplicate: dup}, err
}
func (t registryTransport) PostShamirShares(_ context.Context, fed string, b []byte) (*wire.ShareAccepted, error) {
	dup, err := t.r.PostSealed(fed, t.loc, b)
	return &wire.ShareAccepted{Accepted: err == nil, Duplicate: dup}, err
}
func (t registryTransport) ShamirInbox(_ context.Context, fed string) ([]byte, error) {
	return t.r.Inbox(fed, t.loc)
}
func (t registryTransport) CollectiveKey(_ context.Context, fed string) ([]byte, error) {
	return t.r.PublicKey(fed, "")
}
func (t registryTransport) FranchisorKey(_ context.Context, fed string) ([]byte, error) {
	return t.r.FranchisorKey(fed)
}
func (t registryTransport) Round(_ context.Context, fed string, n int) (*wire.Round, error) {
	v, err := t.r.Round(fed, "", n)
	return &v, err
}
func (t registryTransport) Contribute(_ context.Context, fed string, n int, b []byte) (*wire.ShareAccepted, error) {
	dup, err := t.r.Contribute(fed, t.loc, n, b)
	return &wire.ShareAccepted{Accepted: err == nil, Duplicate: dup}, err
}
func (t registryTransport) ReadyToDecrypt(_ context.Context, fed string, n int) (*wire.Round, error) {
	v, err := t.r.Ready(fed, t.loc, n)
	return &v, err
}
func (t registryTransport) RoundAggregate(_ context.Context, fed string, n int) ([]byte, error) {
	return t.r.Aggregate(fed, t.loc, n)
}
func (t registryTransport) PostDecryptionShare(_ context.Context, fed string, n int, b []byte) (*wire.ShareAccepted, error) {
	dup, err := t.r.PostDecryptionShare(fed, t.loc, n, b)
	return &wire.ShareAccepted{Accepted: err == nil, Duplicate: dup}, err
}

// franchisorTransport is the franchisor's Transport onto a Registry (tenant
// admin of "acme").
type franchisorTransport struct{ r *Registry }

func (t franchisorTransport) Federation(_ context.Context, fed string) (*wire.Federation, error) {
	v, err := t.r.Get(fed, "acme")
	return &v, err
}
func (t franchisorTransport) Round(_ context.Context, fed string, n int) (*wire.Round, error) {
	v, err := t.r.Round(fed, "acme", n)
	return &v, err
}
func (t franchisorTransport) RoundResult(_ context.Context, fed string, n int) ([]byte, error) {
	b, _, err := t.r.Result(fed, "acme", n)
	return b, err
}

// TestDriverRunsSetupAndARound: N drivers, each over its own Transport,
// set up the federation and run a round end to end; with dptest.NoNoise the
// franchisor's decrypted cells are exactly the sum of the locations' bounded
// aggregates, and the t-of-N set decrypts while the others stand by.
func TestDriverRunsSetupAndARound(t *testing.T) {
	t.Parallel()
	const n, th = 4, 3
	reg := NewRegistry(time.Now, nil)
	p, _ := NewParams(n, th)
	fr := NewFranchisor(p)
	created, err := reg.Create("acme", CreateRequest{Name: "north", Locations: []string{"a", "b", "c", "d"}, Threshold: th, FranchisorKey: p.EncodePublicKey(fr.Public)})
	if err != nil {
		t.Fatal(err)
	}
	fed := created.Federation.ID
	none := dptest.NoNoise()
	drivers := make([]*Driver, n)
	for i := range drivers {
		drivers[i] = &Driver{T: registryTransport{reg, i}, Federation: fed, Index: i, Poll: time.Millisecond, Noise: &none}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	secrets := make([][]byte, n)
	each := func(f func(i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { errs[i] = f(i) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("location %d: %v", i, err)
			}
		}
	}
	each(func(i int) (err error) { secrets[i], err = drivers[i].Setup(ctx); return err })

	q := Query{SubjectColumn: "customer", CategoryColumn: "cat", ValueColumn: "cents", Categories: []string{"bread", "cake"},
		Aggregates: []string{AggCount, AggSum}, Lower: 0, Upper: 500, MaxRowsPerSubject: 2, Epsilon: 1, Delta: 1e-6}
	if _, err := reg.CreateRound(fed, "acme", RoundRequest{Query: q.Wire(), ContributeSeconds: 60, DecryptSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	// Location i: customer x buys three breads of 100·(i+1) (two kept) and a
	// cake of 900 (clamped to 500).
	want := make([]int64, q.Cells())
	sent := make([]bool, n)
	each(func(i int) error {
		d := drivers[i]
		params, _, err := d.Params(ctx)
		if err != nil {
			return err
		}
		loc, err := d.Open(params, secrets[i])
		if err != nil {
			return err
		}
		price := 100 * (i + 1)
		csv := "customer,cat,cents\nx,bread," + itoa(price) + "\nx,bread," + itoa(price) + "\nx,bread," + itoa(price) + "\ny,cake,900\n"
		if err := d.Contribute(ctx, params, 1, strings.NewReader(csv)); err != nil {
			return err
		}
		out, err := d.Decrypt(ctx, params, loc, 1)
		sent[i] = out.Sent
		return err
	})
	for i := range n {
		price := int64(100 * (i + 1))
		want[q.Cell(0, 0)] += 2
		want[q.Cell(0, 1)]++
		want[q.Cell(1, 0)] += 2 * price
		want[q.Cell(1, 1)] += 500
	}
	if k := n - len(slices.DeleteFunc(slices.Clone(sent), func(s bool) bool { return s })); k != th {
		t.Errorf("decryption shares sent %v: %d, want exactly t = %d", sent, k, th)
	}
	res, err := CollectResult(ctx, franchisorTransport{reg}, fed, 1, p.EncodeFranchisor(fr), 0.95, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int64, len(res.Cells))
	for i, c := range res.Cells {
		got[i] = c.Value
	}
	if !slices.Equal(got, want) {
		t.Fatalf("released cells %v, want %v", got, want)
	}
	if c := res.Cells[3]; res.Contributors != n || c.Aggregate != AggSum || c.Category != "cake" || c.Value != 2000 || !(c.PlusMinus > 0) {
		t.Errorf("result %+v; want %d contributors and cell 3 = sum/cake 2000 with an interval", res, n)
	}
}

// lateTransport is a location that reads the round decrypting, then finds it
// decrypted by the others before its ready is taken: the registry refuses the
// ready (a conflict) and the round reads done from then on.
type lateTransport struct {
	Transport
	reads int
}

func (t *lateTransport) Round(context.Context, string, int) (*wire.Round, error) {
	t.reads++
	if t.reads == 1 {
		return &wire.Round{Status: RoundDecrypting}, nil
	}
	return &wire.Round{Status: RoundDone}, nil
}

func (t *lateTransport) ReadyToDecrypt(context.Context, string, int) (*wire.Round, error) {
	return nil, errors.New("conflict: federation: round 1 is done; declaring ready is accepted only while it is decrypting")
}

// TestDecryptLateLocation: a location whose ready arrives after the round was
// decrypted by the others has not failed — the round is over without it, as
// when it sees the round done before declaring (seen once in 15 runs of
// TestDriverRunsSetupAndARound as "location 3: conflict").
func TestDecryptLateLocation(t *testing.T) {
	t.Parallel()
	d := &Driver{T: &lateTransport{}, Federation: "f", Index: 3, Poll: time.Millisecond}
	out, err := d.Decrypt(context.Background(), nil, nil, 1)
	if err != nil || out.Sent || out.Round == nil || out.Round.Status != RoundDone {
		t.Fatalf("outcome %+v, error %v; want not sent, the round done, no error", out, err)
	}
}
