package he

import (
	"bytes"
	"encoding/hex"
	"encoding/json"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/privalytics/privalytics"
)

// The public key travels on its own so that encrypting never needs the file
// that holds the secret key (FORMAT.md, "Keys").
const publicKeyMagic = "PVHP\x01"

// MarshalPublicKey encodes the owner's public key with its preset:
// "PVHP\x01", frame(JSON {preset}), frame(public key).
func MarshalPublicKey(p Preset, pk *rlwe.PublicKey) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(publicKeyMagic)
	meta, _ := json.Marshal(keyMeta{Preset: p})
	if err := writeFrame(&buf, meta); err != nil {
		return nil, err
	}
	if err := writeFrame(&buf, appendVectorQP(nil, pk.Value)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UnmarshalPublicKey decodes a public key written by MarshalPublicKey.
func UnmarshalPublicKey(b []byte) (Preset, *rlwe.PublicKey, error) {
	r := bytes.NewReader(b)
	meta, c, err := readKeyHeader(r, publicKeyMagic, "a public key")
	if err != nil {
		return Preset{}, nil, err
	}
	pk := rlwe.NewPublicKey(c.rlwe)
	if err := readKeyFrame(r, c, "public key", func(d *coeffReader) { d.vectorQP(pk.Value) }); err != nil {
		return Preset{}, nil, err
	}
	if r.Len() != 0 {
		return Preset{}, nil, privalytics.Errorf(privalytics.EINVALID, "he: %d bytes follow the public key; the file is corrupt", r.Len())
	}
	return meta.Preset, pk, nil
}

// LooksLikeSecretKey reports whether b starts like an encoding of OwnerKeys
// (any version). A processor calls it on everything it is sent and refuses a
// match: it must never hold, store or log a secret key.
func LooksLikeSecretKey(b []byte) bool {
	return bytes.HasPrefix(b, []byte(ownerKeysMagic[:4]))
}

// Counts returns how often each result ciphertext was decrypted, keyed by the
// hex SHA-256 of its encoding, so that the owner can persist the limit across
// runs (the CLI keeps it next to the secret key).
func (d *Decryptor) Counts() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int, len(d.counts))
	for k, v := range d.counts {
		out[hex.EncodeToString(k[:])] = v
	}
	return out
}

// LoadCounts adds persisted counts (from Counts) to the decryptor's own.
func (d *Decryptor) LoadCounts(m map[string]int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range m {
		var sum [32]byte
		if b, err := hex.DecodeString(k); err != nil || len(b) != len(sum) || v < 0 {
			return privalytics.Errorf(privalytics.EINVALID, "he: decryption count %q=%d is not a SHA-256 hex digest with a count ≥ 0; the counter file is corrupt", k, v)
		} else {
			copy(sum[:], b)
		}
		d.counts[sum] += v
	}
	return nil
}

// MaxDecryptions is how often one result ciphertext may be decrypted under
// these keys' preset.
func (d *Decryptor) MaxDecryptions() int { return d.c.MaxDecryptions }
