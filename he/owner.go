package he

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/privalytics/privalytics"
)

// The owner's key directory, as `he keygen` writes it: the secret key (0600,
// never leaves the machine), the public key for encrypting, the evaluation
// keys for the processor, and the release ledger with its budget. The
// decryption counter and the lock appear beside the secret key on first use.
const (
	SecretKeyFile = "secret.key"
	PublicKeyFile = "public.key"
	EvalKeysFile  = "eval.keys"
)

// KeyFiles describes what WriteKeys wrote.
type KeyFiles struct {
	Preset                   Preset
	Ops                      []Op
	SecretBytes, PublicBytes int
	EvalBytes, RotationKeys  int
	Relinearisation          bool
	Budget                   float64
	Took                     time.Duration
}

// WriteKeys makes the owner's keys for ops under preset and writes them into
// dir (created 0700), with a release ledger allowing budget ε in total. It
// never overwrites a secret key: results encrypted under it would become
// unreadable.
func WriteKeys(dir string, p Preset, ops []Op, budget float64) (*KeyFiles, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := validBudget(budget); err != nil {
		return nil, err
	}
	secret := filepath.Join(dir, SecretKeyFile)
	if _, err := os.Stat(secret); err == nil {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "%s already exists; keygen never overwrites a secret key (results encrypted under it would become unreadable). Choose another --out", secret)
	}
	if _, err := os.Stat(LedgerPath(secret)); err == nil {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "%s already exists (the release ledger of an earlier key); keygen never overwrites a ledger. Choose another --out", LedgerPath(secret))
	}
	start := time.Now()
	keys, evk, err := KeyGen(p, ops...)
	if err != nil {
		return nil, err
	}
	sk, err := keys.MarshalBinary()
	if err != nil {
		return nil, err
	}
	pk, err := MarshalPublicKey(p, keys.Public)
	if err != nil {
		return nil, err
	}
	ek, err := evk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{{SecretKeyFile, sk, 0o600}, {PublicKeyFile, pk, 0o644}, {EvalKeysFile, ek, 0o644}} {
		if err := writeNewFile(filepath.Join(dir, f.name), f.b, f.mode); err != nil {
			return nil, err
		}
	}
	if err := CreateLedger(secret, budget, time.Now()); err != nil {
		return nil, err
	}
	return &KeyFiles{Preset: p, Ops: ops, SecretBytes: len(sk), PublicBytes: len(pk), EvalBytes: len(ek), RotationKeys: len(evk.Galois),
		Relinearisation: evk.Relin != nil, Budget: budget, Took: time.Since(start)}, nil
}

// writeNewFile creates path with mode, refusing to replace an existing file,
// and syncs it.
func writeNewFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadPublicKeyFile reads a public key file, refusing a secret key with a
// message that says which file to pass.
func ReadPublicKeyFile(path string) (Preset, *rlwe.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Preset{}, nil, fmt.Errorf("--public: %w", err)
	}
	if LooksLikeSecretKey(raw) {
		return Preset{}, nil, privalytics.Errorf(privalytics.EINVALID, "--public %s is a secret key; pass public.key (encrypting needs only the public key)", path)
	}
	return UnmarshalPublicKey(raw)
}

// WriteTableFile encrypts the values under pk into a new table file at path,
// synced, and returns its size.
func WriteTableFile(ctx context.Context, path string, pk *rlwe.PublicKey, spec TableSpec, values [][]float64) (int64, error) {
	if len(values) == 0 {
		return 0, privalytics.Errorf(privalytics.EINVALID, "he: no columns to encrypt")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 4<<20) // the writer makes many small writes
	if err := EncryptTable(ctx, bw, pk, spec, values); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), f.Close()
}
