package federation

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/tuneinsight/lattigo/v5/mhe"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/statefile"
)

// Federations on disk (DESIGN: store/statefile says why files rather than the
// metadata store). One directory per federation, <dir>/<federation>/, holding
//
//	federation     who, where and how: name, tenant, locations, threshold,
//	               seed, the franchisor's public key and the SHA-256 of each
//	               location credential (fed-meta), written before the
//	               creation is answered
//	key-share-<i>  location i's key share as posted (fed-key-share)
//	sealed-<i>     location i's sealed Shamir shares as posted (fed-sealed)
//	round-<n>      round n: query, deadlines, the hashes of what each
//	               location sent, the running sum or aggregate, the decrypting
//	               set, the decryption shares and the result (fed-round)
//
// Every accepted share, contribution or readiness is on disk before it is
// acknowledged (a failed write refuses it and leaves the state as it was), so
// after a restart a location's retry is a duplicate or a first acceptance,
// never a "send a valid location credential". The collective public key is
// recomputed at load from the key shares. Deadlines are wall-clock times: a
// round whose deadline passed while the server was down fails as it would
// have. Files are sealed under the master key with --encrypt-at-rest. A
// federation with no round opened for Persist.Expiry (default 180 days) since
// its creation or its latest round is deleted at start and when a tenant
// creates a federation; MaxFederationsPerTenant and KeptResults bound the rest.

// Persist says where OpenRegistry keeps the federations.
type Persist struct {
	// Dir holds the federations (serve: <data-dir>/state/federations).
	Dir string
	// Sealer encrypts the files at rest (the master key); nil writes plaintext.
	Sealer statefile.Sealer
	// Expiry is how long a federation is kept after its creation or its
	// latest round; zero means DefaultExpiry.
	Expiry time.Duration
}

// DefaultExpiry is how long an idle federation is kept.
const DefaultExpiry = 180 * 24 * time.Hour

const (
	kindMeta     = "fed-meta"
	kindKeyShare = "fed-key-share"
	kindSealed   = "fed-sealed"
	kindRound    = "fed-round"
)

// OpenRegistry returns the registry kept in p.Dir, after reading back every
// federation there. A damaged file is a *statefile.Damaged naming it.
func OpenRegistry(now func() time.Time, log *slog.Logger, p Persist) (*Registry, error) {
	r := NewRegistry(now, log)
	if p.Expiry == 0 {
		p.Expiry = DefaultExpiry
	}
	r.persist = &p
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("federation state directory: %w", err)
	}
	ents, err := os.ReadDir(p.Dir)
	if err != nil {
		return nil, fmt.Errorf("federation state directory: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		f, err := r.load(filepath.Join(p.Dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if f != nil {
			r.feds[f.ID] = f
		}
	}
	if len(r.feds) > 0 {
		r.log.Info("federation: federations restored", "federations", len(r.feds), "dir", p.Dir)
	}
	return r, nil
}

type storedMeta struct {
	ID         string    `json:"id"`
	Tenant     string    `json:"tenant"`
	Name       string    `json:"name"`
	Locations  []string  `json:"locations"`
	Threshold  int       `json:"threshold"`
	Seed       []byte    `json:"seed"`
	Created    time.Time `json:"created"`
	Franchisor []byte    `json:"franchisor"`
	Tokens     [][]byte  `json:"tokens"`
}

type storedRound struct {
	Number          int              `json:"number"`
	Query           Query            `json:"query"`
	Status          string           `json:"status"`
	Reason          string           `json:"reason,omitempty"`
	Opened          time.Time        `json:"opened"`
	ContributeUntil time.Time        `json:"contribute_until"`
	DecryptUntil    time.Time        `json:"decrypt_until"`
	Contributed     map[int][32]byte `json:"contributed"`
	Sum             []byte           `json:"sum,omitempty"`
	Aggregate       []byte           `json:"aggregate,omitempty"`
	Ready           []int            `json:"ready,omitempty"`
	Active          []int            `json:"active,omitempty"`
	DecShares       map[int][]byte   `json:"decryption_shares,omitempty"`
	DecSum          map[int][32]byte `json:"decryption_sums,omitempty"`
	Result          []byte           `json:"result,omitempty"`
}

func (r *Registry) fedDir(f *Federation) string { return filepath.Join(r.persist.Dir, f.ID) }

func storeErr(what string, err error) error { return statefile.StoreError(what, err) }

// saveMeta writes a new federation's description.
func (r *Registry) saveMeta(f *Federation) error {
	if r.persist == nil {
		return nil
	}
	b, err := json.Marshal(storedMeta{ID: f.ID, Tenant: f.Tenant, Name: f.Name, Locations: f.Locations, Threshold: f.Threshold, Seed: f.Seed,
		Created: f.Created, Franchisor: f.franchisor, Tokens: f.tokens})
	if err == nil {
		err = statefile.WriteFile(filepath.Join(r.fedDir(f), "federation"), kindMeta, r.persist.Sealer, b)
	}
	if err != nil {
		return storeErr("the federation", err)
	}
	return nil
}

// saveShare writes a setup share as posted.
func (r *Registry) saveShare(f *Federation, name, kind string, body []byte, what string) error {
	if r.persist == nil {
		return nil
	}
	if err := statefile.WriteFile(filepath.Join(r.fedDir(f), name), kind, r.persist.Sealer, body); err != nil {
		return storeErr(what, err)
	}
	return nil
}

// saveRound writes a round's state.
func (r *Registry) saveRound(f *Federation, rd *Round) error {
	if r.persist == nil {
		return nil
	}
	sr := storedRound{Number: rd.Number, Query: rd.Query, Status: rd.Status, Reason: rd.Reason, Opened: rd.Opened, ContributeUntil: rd.ContributeUntil,
		DecryptUntil: rd.DecryptUntil, Contributed: rd.contributed, Aggregate: rd.aggregate, Ready: rd.ready, Active: rd.active, DecSum: rd.decSum, Result: rd.result}
	if rd.sum != nil {
		sr.Sum = f.params.EncodeCiphertext(rd.sum)
	}
	if len(rd.decShares) > 0 {
		sr.DecShares = map[int][]byte{}
		for i, s := range rd.decShares {
			sr.DecShares[i] = f.params.EncodeDecryptionShare(s)
		}
	}
	b, err := json.Marshal(sr)
	if err == nil {
		err = statefile.WriteFile(filepath.Join(r.fedDir(f), "round-"+strconv.Itoa(rd.Number)), kindRound, r.persist.Sealer, b)
	}
	if err != nil {
		return storeErr("round "+strconv.Itoa(rd.Number), err)
	}
	return nil
}

// clone copies a round's state so that a change can be undone when it cannot
// be stored (ciphertexts are replaced, never changed in place).
func (rd *Round) clone() Round {
	c := *rd
	c.contributed = cloneMap(rd.contributed)
	c.decShares = cloneMap(rd.decShares)
	c.decSum = cloneMap(rd.decSum)
	c.ready, c.active = slices.Clone(rd.ready), slices.Clone(rd.active)
	return c
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return nil
	}
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// lastActive is the federation's creation or its latest round's opening.
func (f *Federation) lastActive() time.Time {
	if n := len(f.rounds); n > 0 {
		return f.rounds[n-1].Opened
	}
	return f.Created
}

// expire deletes (under r.mu) the federations idle past the expiry.
func (r *Registry) expire() {
	if r.persist == nil {
		return
	}
	cut := r.now().Add(-r.persist.Expiry)
	for id, f := range r.feds {
		if f.lastActive().Before(cut) {
			delete(r.feds, id)
			r.removeDir(r.fedDir(f))
		}
	}
}

func (r *Registry) removeDir(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		r.log.Error("federation: remove", "dir", dir, "err", err)
		return
	}
	r.log.Info("federation: removed an idle federation past its expiry", "dir", dir)
	_ = statefile.SyncDir(filepath.Dir(dir))
}

func damaged(path, format string, args ...any) error {
	return &statefile.Damaged{File: path, Problem: fmt.Sprintf(format, args...)}
}

// load reads one federation's directory; nil when it is a creation that was
// never answered (no federation file) or has expired (both removed).
func (r *Registry) load(dir string) (*Federation, error) {
	s := r.persist.Sealer
	mpath := filepath.Join(dir, "federation")
	raw, err := statefile.ReadFile(mpath, kindMeta, s)
	if statefile.IsNotExist(err) {
		r.log.Warn("federation: removing a directory without its federation file (a creation cut before it was answered)", "dir", dir)
		return nil, os.RemoveAll(dir)
	}
	if err != nil {
		return nil, err
	}
	if err := statefile.RemoveTemps(dir); err != nil {
		return nil, err
	}
	var m storedMeta
	if err := json.Unmarshal(raw, &m); err != nil || m.ID != filepath.Base(dir) {
		return nil, damaged(mpath, "does not describe the federation of its directory")
	}
	p, err := NewParams(len(m.Locations), m.Threshold)
	if err != nil || len(m.Tokens) != len(m.Locations) {
		return nil, damaged(mpath, "has impossible parameters (%d locations, threshold %d, %d credentials)", len(m.Locations), m.Threshold, len(m.Tokens))
	}
	f := &Federation{ID: m.ID, Tenant: m.Tenant, Name: m.Name, Locations: m.Locations, Threshold: m.Threshold, Seed: m.Seed, Created: m.Created,
		params: p, franchisor: m.Franchisor, tokens: m.Tokens,
		keyShares: make([][]byte, p.Locations), sealed: make([][]SealedShare, p.Locations), sealedSum: make([][32]byte, p.Locations)}
	read := func(name, kind string) ([]byte, string, error) {
		path := filepath.Join(dir, name)
		b, err := statefile.ReadFile(path, kind, s)
		if statefile.IsNotExist(err) {
			return nil, path, nil
		}
		return b, path, err
	}
	allSealed := true
	for i := range p.Locations {
		b, path, err := read("key-share-"+strconv.Itoa(i), kindKeyShare)
		if err != nil {
			return nil, err
		}
		if b != nil {
			if _, err := p.DecodeKeyShare(b); err != nil {
				return nil, damaged(path, "is not a key share: %s", privalytics.ErrorMessage(err))
			}
			f.keyShares[i] = b
		}
		b, path, err = read("sealed-"+strconv.Itoa(i), kindSealed)
		if err != nil {
			return nil, err
		}
		if b == nil {
			allSealed = false
			continue
		}
		if f.sealed[i], err = p.DecodeSealed(b); err != nil {
			return nil, damaged(path, "is not a bundle of sealed shares: %s", privalytics.ErrorMessage(err))
		}
		f.sealedSum[i] = sha256.Sum256(b)
	}
	if allSealed {
		shares := make([]*KeyShare, p.Locations)
		for i, b := range f.keyShares {
			if b == nil {
				return nil, damaged(filepath.Join(dir, "key-share-"+strconv.Itoa(i)), "is missing, yet every location's sealed shares are stored")
			}
			shares[i], _ = p.DecodeKeyShare(b)
		}
		cpk, err := CollectivePublicKey(p, f.Seed, shares)
		if err != nil {
			return nil, damaged(dir, "key shares do not combine into a collective key: %s", privalytics.ErrorMessage(err))
		}
		f.cpk = p.EncodePublicKey(cpk)
	}
	for n := 1; ; n++ {
		b, path, err := read("round-"+strconv.Itoa(n), kindRound)
		if err != nil {
			return nil, err
		}
		if b == nil {
			if more, _ := filepath.Glob(filepath.Join(dir, "round-*")); len(more) > n-1 {
				return nil, damaged(path, "is missing while later rounds are stored")
			}
			break
		}
		rd, err := decodeRound(p, b, n)
		if err != nil {
			return nil, damaged(path, "%s", err)
		}
		f.rounds = append(f.rounds, rd)
	}
	if f.lastActive().Before(r.now().Add(-r.persist.Expiry)) {
		r.removeDir(dir)
		return nil, nil
	}
	return f, nil
}

func decodeRound(p *Params, b []byte, n int) (*Round, error) {
	var sr storedRound
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("is not a round: %v", err)
	}
	if sr.Number != n {
		return nil, fmt.Errorf("holds round %d, not %d", sr.Number, n)
	}
	rd := &Round{Number: sr.Number, Query: sr.Query, Status: sr.Status, Reason: sr.Reason, Opened: sr.Opened, ContributeUntil: sr.ContributeUntil,
		DecryptUntil: sr.DecryptUntil, contributed: sr.Contributed, aggregate: sr.Aggregate, ready: sr.Ready, active: sr.Active,
		decShares: map[int]*mhe.PublicKeySwitchShare{}, decSum: sr.DecSum, result: sr.Result}
	if rd.contributed == nil {
		rd.contributed = map[int][32]byte{}
	}
	if rd.decSum == nil {
		rd.decSum = map[int][32]byte{}
	}
	switch rd.Status {
	case RoundCollecting, RoundDecrypting, RoundDone, RoundFailed:
	default:
		return nil, fmt.Errorf("has unknown status %q", rd.Status)
	}
	var err error
	if sr.Sum != nil {
		if rd.sum, err = p.DecodeCiphertext(sr.Sum); err != nil {
			return nil, fmt.Errorf("holds a damaged sum: %s", privalytics.ErrorMessage(err))
		}
	}
	for i, sb := range sr.DecShares {
		if rd.decShares[i], err = p.DecodeDecryptionShare(sb); err != nil {
			return nil, fmt.Errorf("holds a damaged decryption share of location %d: %s", i, privalytics.ErrorMessage(err))
		}
	}
	if rd.Status == RoundDone || rd.Status == RoundFailed {
		rd.decShares = nil
	}
	return rd, nil
}
