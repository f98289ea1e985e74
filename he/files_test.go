package he

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/privalytics/privalytics"
)

// TestPublicKeyRoundTrip: the exported public key encrypts tables the owner's
// keys decrypt, and damaged encodings are refused with a coded error.
func TestPublicKeyRoundTrip(t *testing.T) {
	t.Parallel()
	fx := keysFor(t, testInsecureTiny, OpSum)
	b, err := MarshalPublicKey(testInsecureTiny, fx.keys.Public)
	if err != nil {
		t.Fatal(err)
	}
	p, pk, err := UnmarshalPublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != testInsecureTiny.Name || !pk.Equal(fx.keys.Public) {
		t.Fatalf("round trip changed the key or preset (%s)", p.Name)
	}
	var buf bytes.Buffer
	spec := TableSpec{Preset: p, Columns: []ColumnSpec{{Name: "x", Kind: KindValue, Min: 0, Max: 10}}}
	if err := EncryptTable(context.Background(), &buf, pk, spec, [][]float64{{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{"truncated": b[:len(b)-9], "trailing": append(bytes.Clone(b), 0), "secret": mustOwner(t, fx.keys)} {
		var perr *privalytics.Error
		if _, _, err := UnmarshalPublicKey(bad); !errors.As(err, &perr) {
			t.Errorf("%s: %v, want a coded error", name, err)
		}
	}
}

func mustOwner(t testing.TB, k *OwnerKeys) []byte {
	b, err := k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLooksLikeSecretKey(t *testing.T) {
	t.Parallel()
	fx := keysFor(t, testInsecureTiny, OpSum)
	evk, _ := fx.evk.MarshalBinary()
	pub, _ := MarshalPublicKey(testInsecureTiny, fx.keys.Public)
	if !LooksLikeSecretKey(mustOwner(t, fx.keys)) {
		t.Error("owner keys not recognised")
	}
	if LooksLikeSecretKey(evk) || LooksLikeSecretKey(pub) || LooksLikeSecretKey([]byte("PVHT")) {
		t.Error("a non-secret encoding was taken for a secret key")
	}
}

// TestCountsPersist: counts saved from one decryptor and loaded into a new one
// keep the per-ciphertext limit.
func TestCountsPersist(t *testing.T) {
	t.Parallel()
	p := testInsecureCKKS
	fx := keysFor(t, p)
	tab := encrypt(t, p, fx.keys, newDataset(t, 20))
	proc, _ := NewProcessor(fx.evk)
	res, err := proc.Run(context.Background(), tab, Job{Op: OpSum, Column: "amount"})
	if err != nil {
		t.Fatal(err)
	}
	saved := map[string]int{}
	for i := range p.MaxDecryptions {
		dec, _ := NewDecryptor(fx.keys)
		if err := dec.LoadCounts(saved); err != nil {
			t.Fatal(err)
		}
		if _, err := dec.Decrypt(res); err != nil {
			t.Fatalf("decryption %d: %v", i+1, err)
		}
		saved = dec.Counts()
	}
	dec, _ := NewDecryptor(fx.keys)
	if err := dec.LoadCounts(saved); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Decrypt(res); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
		t.Fatalf("decryption after reload: %v, want %s", err, privalytics.EFORBIDDEN)
	}
	if err := dec.LoadCounts(map[string]int{"zz": 1}); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Fatalf("corrupt counts: %v", err)
	}
}

// FuzzDecodePublicKey: the owner reads public-key files from disk.
func FuzzDecodePublicKey(f *testing.F) {
	fx := keysFor(f, testInsecureTiny, OpSum)
	b, _ := MarshalPublicKey(testInsecureTiny, fx.keys.Public)
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := UnmarshalPublicKey(data); err != nil {
			var perr *privalytics.Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is not a *privalytics.Error", err)
			}
		}
	})
}
