package federation

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	if privalytics.ErrorCode(err) != code {
		t.Fatalf("%s: error %v, want code %s", what, err, code)
	}
}

// relaySetup runs setup through a Registry as the CLI would.
func relaySetup(t *testing.T, n, th int) (*Registry, *clock, *bytes.Buffer, string, *network) {
	t.Helper()
	return relaySetupIn(t, n, th, nil)
}

// relaySetupIn is relaySetup on a registry kept in per (nil: in memory).
func relaySetupIn(t *testing.T, n, th int, per *Persist) (*Registry, *clock, *bytes.Buffer, string, *network) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var logs bytes.Buffer
	reg := NewRegistry(clk.now, slog.New(slog.NewTextHandler(&logs, nil)))
	if per != nil {
		var err error
		if reg, err = OpenRegistry(clk.now, slog.New(slog.NewTextHandler(&logs, nil)), *per); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := NewParams(n, th)
	fr := NewFranchisor(p)
	names := make([]string, n)
	for i := range names {
		names[i] = "loc-" + itoa(i)
	}
	created, err := reg.Create("acme", CreateRequest{Name: "north", Locations: names, Threshold: th, FranchisorKey: p.EncodePublicKey(fr.Public)})
	if err != nil {
		t.Fatal(err)
	}
	id := created.Federation.ID
	for i, tok := range created.Tokens {
		f, idx, err := reg.Authenticate(tok)
		if err != nil || f != id || idx != i {
			t.Fatalf("token %d authenticates as %s/%d, %v", i, f, idx, err)
		}
	}
	// The forgery changes the secret's last hex digit (a fixed "00" ending
	// was the real token itself once in 256 runs).
	tok := created.Tokens[0]
	last := byte('0')
	if tok[len(tok)-1] == '0' {
		last = '1'
	}
	if _, _, err := reg.Authenticate(tok[:len(tok)-1] + string(last)); err == nil {
		t.Fatal("a forged token authenticated")
	}
	nw := &network{p: p, seed: created.Federation.Seed, franchisor: fr, tokens: created.Tokens}
	for i := range n {
		l, _ := NewLocation(p, i)
		nw.locs = append(nw.locs, l)
		ks, _ := l.KeyShare(nw.seed)
		body := p.EncodeKeyShare(ks)
		if _, err := reg.PostKeyShare(id, i, body); err != nil {
			t.Fatal(err)
		}
		if dup, err := reg.PostKeyShare(id, i, body); !dup || err != nil {
			t.Fatalf("identical retry: dup=%v err=%v", dup, err)
		}
		if i == 0 {
			_, err := reg.PostSealed(id, 0, p.EncodeSealed(nil))
			wantCode(t, err, privalytics.ECONFLICT, "sealed shares before all keys")
		}
	}
	v, _ := reg.Get(id, "acme")
	for i, l := range nw.locs {
		sealed, err := l.ShamirShares(id, nw.seed, v.TransportKeys)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.PostSealed(id, i, p.EncodeSealed(sealed[1:])); err == nil {
			t.Fatal("an incomplete bundle was accepted")
		}
		if _, err := reg.PostSealed(id, i, p.EncodeSealed(sealed)); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range nw.locs {
		in, err := reg.Inbox(id, i)
		if err != nil {
			t.Fatal(err)
		}
		shares, err := p.DecodeSealed(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.CombineShares(id, nw.seed, v.TransportKeys, shares); err != nil {
			t.Fatal(err)
		}
	}
	cpk, err := reg.PublicKey(id, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if nw.cpk, err = p.DecodePublicKey(cpk); err != nil {
		t.Fatal(err)
	}
	return reg, clk, &logs, id, nw
}

func TestRegistryRoundLifecycle(t *testing.T) {
	t.Parallel()
	reg, clk, logs, id, nw := relaySetup(t, 5, 3)
	p := nw.p
	q := Query{SubjectColumn: "c", CategoryColumn: "k", Categories: []string{"a", "b"}, Aggregates: []string{AggCount}, MaxRowsPerSubject: 1, Epsilon: 1, Delta: 1e-6}
	_, err := reg.CreateRound(id, "other-tenant", RoundRequest{Query: q.Wire()})
	wantCode(t, err, privalytics.ENOTFOUND, "another tenant's federation")
	rv, err := reg.CreateRound(id, "acme", RoundRequest{Query: q.Wire(), ContributeSeconds: 60, DecryptSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.CreateRound(id, "acme", RoundRequest{Query: q.Wire()})
	wantCode(t, err, privalytics.ECONFLICT, "a second open round")
	_, err = reg.Contribute(id, 0, rv.Number+1, nil)
	wantCode(t, err, privalytics.ENOTFOUND, "a round out of order")

	contrib := func(i int, cells []int64) []byte {
		ct, err := Encrypt(p, nw.cpk, cells)
		if err != nil {
			t.Fatal(err)
		}
		return p.EncodeCiphertext(ct)
	}
	bodies := map[int][]byte{}
	for _, i := range []int{0, 1, 3, 4} { // location 2 drops out
		bodies[i] = contrib(i, []int64{int64(i + 1), 10})
		if _, err := reg.Contribute(id, i, 1, bodies[i]); err != nil {
			t.Fatal(err)
		}
	}
	if dup, err := reg.Contribute(id, 0, 1, bodies[0]); !dup || err != nil {
		t.Fatalf("identical retry: dup=%v err=%v", dup, err)
	}
	// Figures no log line holds by chance: "999" was once inside a random
	// federation id (fed_2a64737b19991b2b), and could be a timestamp's
	// milliseconds; six sevens fit neither.
	_, err = reg.Contribute(id, 0, 1, contrib(0, []int64{777777, 777777}))
	wantCode(t, err, privalytics.ECONFLICT, "a different contribution")
	if !strings.Contains(logs.String(), "a different share for a filled slot was rejected") || strings.Contains(logs.String(), "777777") {
		t.Fatalf("the rejection is not logged, or the log holds figures: %s", logs.String())
	}
	_, err = reg.Contribute(id, 2, 1, bodies[0][:100])
	wantCode(t, err, privalytics.EINVALID, "a truncated ciphertext")
	_, err = reg.Ready(id, 0, 1)
	wantCode(t, err, privalytics.ECONFLICT, "ready while collecting")

	clk.advance(61 * time.Second)
	_, err = reg.Contribute(id, 2, 1, contrib(2, []int64{1, 1}))
	wantCode(t, err, privalytics.ECONFLICT, "a late contribution")
	for _, i := range []int{4, 1, 0} {
		if _, err := reg.Ready(id, i, 1); err != nil {
			t.Fatal(err)
		}
	}
	rv, _ = reg.Ready(id, 3, 1) // too late to be in the set
	if !slices.Equal(rv.Active, []int{0, 1, 4}) || rv.Status != RoundDecrypting {
		t.Fatalf("round = %+v", rv)
	}
	_, err = reg.Aggregate(id, 3, 1)
	wantCode(t, err, privalytics.EFORBIDDEN, "aggregate for a location outside the set")
	aggBytes, err := reg.Aggregate(id, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	agg, _ := p.DecodeCiphertext(aggBytes)
	for n, i := range rv.Active {
		s, err := nw.locs[i].DecryptionShare(rv.Active, agg, nw.franchisor.Public)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			_, err := reg.PostDecryptionShare(id, 3, 1, p.EncodeDecryptionShare(s))
			wantCode(t, err, privalytics.EFORBIDDEN, "a share from outside the set")
			_, _, err = reg.Result(id, "acme", 1)
			wantCode(t, err, privalytics.ECONFLICT, "result before t shares")
		}
		if _, err := reg.PostDecryptionShare(id, i, 1, p.EncodeDecryptionShare(s)); err != nil {
			t.Fatal(err)
		}
	}
	res, rv, err := reg.Result(id, "acme", 1)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := p.DecodeCiphertext(res)
	got, _ := nw.franchisor.Decrypt(ct, 2)
	if want := []int64{1 + 2 + 4 + 5, 40}; !slices.Equal(got, want) || rv.Status != RoundDone || !slices.Equal(rv.Contributors, []int{0, 1, 3, 4}) {
		t.Fatalf("result %v (want %v), round %+v", got, want, rv)
	}
	_, err = reg.Contribute(id, 2, 1, contrib(2, []int64{1, 1}))
	wantCode(t, err, privalytics.ECONFLICT, "a contribution to a finished round")
}

func TestRegistryFailsRoundsWithoutThreshold(t *testing.T) {
	t.Parallel()
	reg, clk, _, id, nw := relaySetup(t, 4, 3)
	q := Query{SubjectColumn: "c", CategoryColumn: "k", Categories: []string{"a"}, Aggregates: []string{AggCount}, MaxRowsPerSubject: 1, Epsilon: 1, Delta: 1e-6}
	if _, err := reg.CreateRound(id, "acme", RoundRequest{Query: q.Wire(), ContributeSeconds: 10, DecryptSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1} {
		ct, _ := Encrypt(nw.p, nw.cpk, []int64{1})
		if _, err := reg.Contribute(id, i, 1, nw.p.EncodeCiphertext(ct)); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(11 * time.Second)
	rv, _ := reg.Round(id, "acme", 1)
	if rv.Status != RoundFailed || !strings.Contains(rv.Reason, "only 2 of 4 locations contributed") {
		t.Fatalf("round = %s (%s), want failed for too few contributions", rv.Status, rv.Reason)
	}
	// The next round: enough contributions, but only t−1 live decryptors.
	if _, err := reg.CreateRound(id, "acme", RoundRequest{Query: q.Wire(), ContributeSeconds: 10, DecryptSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		ct, _ := Encrypt(nw.p, nw.cpk, []int64{1})
		if _, err := reg.Contribute(id, i, 2, nw.p.EncodeCiphertext(ct)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 1} {
		if _, err := reg.Ready(id, i, 2); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(21 * time.Second)
	rv, _ = reg.Round(id, "acme", 2)
	if rv.Status != RoundFailed || !strings.Contains(rv.Reason, "live locations") {
		t.Fatalf("round = %s (%s), want failed for too few live locations", rv.Status, rv.Reason)
	}
	_, err := reg.Ready(id, 2, 2)
	wantCode(t, err, privalytics.ECONFLICT, "ready after failure")
}

func TestRegistryCapsFederationsPerTenant(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(nil, slog.New(slog.DiscardHandler))
	p, _ := NewParams(2, 2)
	req := CreateRequest{Name: "n", Locations: []string{"a", "b"}, Threshold: 2, FranchisorKey: p.EncodePublicKey(NewFranchisor(p).Public)}
	for i := range MaxFederationsPerTenant {
		if _, err := reg.Create("acme", req); err != nil {
			t.Fatalf("federation %d: %v", i, err)
		}
	}
	_, err := reg.Create("acme", req)
	wantCode(t, err, privalytics.ECONFLICT, "one federation over the cap")
	if _, err := reg.Create("other", req); err != nil {
		t.Fatalf("another tenant is not capped by acme's federations: %v", err)
	}
}
