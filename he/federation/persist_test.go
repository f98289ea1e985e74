package federation

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/keyring"
	"github.com/privalytics/privalytics/store/statefile"
)

func testSealer(t *testing.T) statefile.Sealer {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	mk, err := keyring.MasterKeyFromEnv(base64.StdEncoding.EncodeToString(k))
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

// A registry kept on disk survives restarts at every stage: after setup (the
// credentials still authenticate and the collective key is the same), while
// a round collects (a location's retry is a duplicate, the others'
// contributions are added to the stored sum) and while it decrypts (the
// shares sent before the restart count); the result decrypts to the sum of
// the contributions. Encryption at rest on and off.
func TestRegistrySurvivesRestart(t *testing.T) {
	t.Parallel()
	for _, sealer := range []statefile.Sealer{nil, testSealer(t)} {
		per := Persist{Dir: t.TempDir(), Sealer: sealer}
		reg, clk, _, id, nw := relaySetupIn(t, 4, 3, &per)
		p := nw.p
		restart := func() {
			t.Helper()
			var err error
			if reg, err = OpenRegistry(clk.now, slog.New(slog.DiscardHandler), per); err != nil {
				t.Fatal(err)
			}
		}
		cpkBefore, _ := reg.PublicKey(id, "acme")
		restart()
		for i, tok := range nw.tokens {
			if f, idx, err := reg.Authenticate(tok); err != nil || f != id || idx != i {
				t.Fatalf("credential %d after a restart: %s/%d, %v", i, f, idx, err)
			}
		}
		if cpk, err := reg.PublicKey(id, "acme"); err != nil || !slices.Equal(cpk, cpkBefore) {
			t.Fatalf("collective key after a restart differs (%v)", err)
		}
		q := Query{SubjectColumn: "c", CategoryColumn: "k", Categories: []string{"a", "b"}, Aggregates: []string{AggCount}, MaxRowsPerSubject: 1, Epsilon: 1, Delta: 1e-6}
		if _, err := reg.CreateRound(id, "acme", RoundRequest{Query: q.Wire(), ContributeSeconds: 60, DecryptSeconds: 60}); err != nil {
			t.Fatal(err)
		}
		bodies := map[int][]byte{}
		for i := range 4 {
			ct, err := Encrypt(p, nw.cpk, []int64{int64(i + 1), 10 * int64(i)})
			if err != nil {
				t.Fatal(err)
			}
			bodies[i] = p.EncodeCiphertext(ct)
		}
		for _, i := range []int{0, 1} {
			if _, err := reg.Contribute(id, i, 1, bodies[i]); err != nil {
				t.Fatal(err)
			}
		}
		restart()
		if dup, err := reg.Contribute(id, 1, 1, bodies[1]); !dup || err != nil {
			t.Fatalf("a location's retry after a restart: dup=%v err=%v, want a duplicate", dup, err)
		}
		_, err := reg.Contribute(id, 0, 1, bodies[2])
		wantCode(t, err, privalytics.ECONFLICT, "a different contribution after a restart")
		for _, i := range []int{2, 3} {
			if _, err := reg.Contribute(id, i, 1, bodies[i]); err != nil {
				t.Fatal(err)
			}
		}
		for _, i := range []int{3, 0, 2} {
			if _, err := reg.Ready(id, i, 1); err != nil {
				t.Fatal(err)
			}
		}
		restart()
		rv, err := reg.Round(id, "acme", 1)
		if err != nil || rv.Status != RoundDecrypting || !slices.Equal(rv.Active, []int{0, 2, 3}) || len(rv.Contributors) != 4 {
			t.Fatalf("round after a restart: %+v, %v", rv, err)
		}
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
			if _, err := reg.PostDecryptionShare(id, i, 1, p.EncodeDecryptionShare(s)); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				restart()
				if dup, err := reg.PostDecryptionShare(id, i, 1, p.EncodeDecryptionShare(s)); !dup || err != nil {
					t.Fatalf("a decryption share's retry after a restart: dup=%v err=%v", dup, err)
				}
			}
		}
		restart()
		res, rv, err := reg.Result(id, "acme", 1)
		if err != nil {
			t.Fatal(err)
		}
		ct, _ := p.DecodeCiphertext(res)
		got, _ := nw.franchisor.Decrypt(ct, 2)
		if want := []int64{1 + 2 + 3 + 4, 0 + 10 + 20 + 30}; !slices.Equal(got, want) || rv.Status != RoundDone {
			t.Fatalf("result after restarts %v (want %v), round %s", got, want, rv.Status)
		}
		if sealer != nil {
			raw, _ := os.ReadFile(filepath.Join(per.Dir, id, "federation"))
			if strings.Contains(string(raw), "loc-0") {
				t.Error("a sealed federation file shows a location name in plaintext")
			}
		}
	}
}

// A damaged or missing file stops the open naming it; an idle federation
// past its expiry is deleted.
func TestRegistryDamageAndExpiry(t *testing.T) {
	t.Parallel()
	per := Persist{Dir: t.TempDir()}
	_, clk, _, id, nw := relaySetupIn(t, 3, 2, &per)
	reg, err := OpenRegistry(clk.now, slog.New(slog.DiscardHandler), per)
	if err != nil {
		t.Fatal(err)
	}
	q := Query{SubjectColumn: "c", CategoryColumn: "k", Categories: []string{"a"}, Aggregates: []string{AggCount}, MaxRowsPerSubject: 1, Epsilon: 1, Delta: 1e-6}
	for n := 1; n <= 2; n++ {
		if _, err := reg.CreateRound(id, "acme", RoundRequest{Query: q.Wire(), ContributeSeconds: 1, DecryptSeconds: 1}); err != nil {
			t.Fatal(err)
		}
		ct, _ := Encrypt(nw.p, nw.cpk, []int64{1})
		if _, err := reg.Contribute(id, 0, n, nw.p.EncodeCiphertext(ct)); err != nil {
			t.Fatal(err)
		}
		clk.advance(3 * time.Second)
	}
	dir := filepath.Join(per.Dir, id)
	for _, name := range []string{"federation", "key-share-1", "sealed-2", "round-2"} {
		t.Run("flip "+name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			bad := slices.Clone(raw)
			bad[len(bad)-9] ^= 0x10
			_ = os.WriteFile(path, bad, 0o600)
			defer os.WriteFile(path, raw, 0o600)
			_, err = OpenRegistry(clk.now, slog.New(slog.DiscardHandler), per)
			var dm *statefile.Damaged
			if !errors.As(err, &dm) || dm.File != path || !strings.Contains(err.Error(), path) {
				t.Fatalf("open over a damaged %s: %v, want a refusal naming %s", name, err, path)
			}
		})
	}
	t.Run("missing round", func(t *testing.T) {
		path := filepath.Join(dir, "round-1")
		raw, _ := os.ReadFile(path)
		_ = os.Remove(path)
		defer os.WriteFile(path, raw, 0o600)
		if _, err := OpenRegistry(clk.now, slog.New(slog.DiscardHandler), per); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("open without round 1: %v, want a refusal naming %s", err, path)
		}
	})
	reg, err = OpenRegistry(clk.now, slog.New(slog.DiscardHandler), per)
	if err != nil {
		t.Fatalf("the restored files: %v", err)
	}
	if rv, err := reg.Round(id, "acme", 2); err != nil || rv.Status != RoundFailed {
		t.Fatalf("round 2 after a restart: %+v, %v", rv, err)
	}
	clk.advance(DefaultExpiry)
	reg, err = OpenRegistry(clk.now, slog.New(slog.DiscardHandler), per)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(id, "acme"); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Fatalf("an idle federation past its expiry: %v, want %s", err, privalytics.ENOTFOUND)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the expired federation's directory remains: %v", err)
	}
}
