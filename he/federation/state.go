package federation

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

// This file is the server's side: the protocol state of each federation and
// round. The server is a relay: it checks shapes, stores each share once,
// adds ciphertexts and combines public shares, and never holds a secret.

// Setup phases.
const (
	PhaseKeys   = "keys"   // collecting every location's key share
	PhaseShares = "shares" // collecting every location's sealed Shamir shares
	PhaseReady  = "ready"  // the collective key exists; rounds may run
)

// Round statuses.
const (
	RoundCollecting = "collecting" // contributions accepted until all N or the deadline
	RoundDecrypting = "decrypting" // locations join the decrypting set; t of them send shares
	RoundDone       = "done"       // the result, switched to the franchisor's key, is ready
	RoundFailed     = "failed"     // see Reason
)

// LocationTokenPrefix starts every location credential.
const LocationTokenPrefix = "pvl_"

// MaxFederationsPerTenant and KeptResults bound the server's memory: each
// federation holds its setup shares, and each finished round a 262 kB result;
// results of rounds older than the latest KeptResults are dropped.
const (
	MaxFederationsPerTenant = 32
	KeptResults             = 32
)

// Limits of a round's timing.
const (
	MinWindow     = time.Second
	MaxWindow     = 7 * 24 * time.Hour
	DefaultWindow = 10 * time.Minute
)

// Federation is one franchise network's protocol state.
type Federation struct {
	ID        string
	Tenant    string
	Name      string
	Locations []string
	Threshold int
	Seed      []byte
	Created   time.Time

	params     *Params
	franchisor []byte   // encoded public key
	tokens     [][]byte // SHA-256 of each location's credential
	keyShares  [][]byte // encoded key shares by location; nil until posted
	sealed     [][]SealedShare
	sealedSum  [][32]byte
	cpk        []byte
	rounds     []*Round
}

// Round is one federated query's protocol state.
type Round struct {
	Number          int
	Query           Query
	Status          string
	Reason          string
	Opened          time.Time
	ContributeUntil time.Time
	DecryptUntil    time.Time

	contributed map[int][32]byte
	sum         *rlwe.Ciphertext
	aggregate   []byte
	ready       []int
	active      []int
	decShares   map[int]*mhe.PublicKeySwitchShare
	decSum      map[int][32]byte
	result      []byte
}

// Registry holds every federation of a server. Safe for concurrent use.
type Registry struct {
	mu   sync.Mutex
	feds map[string]*Federation
	now  func() time.Time
	log  *slog.Logger

	persist *Persist // nil: memory only (persist.go)
}

// NewRegistry returns an empty registry kept in memory only; now is the clock
// (time.Now in the server). OpenRegistry keeps it on disk.
func NewRegistry(now func() time.Time, log *slog.Logger) *Registry {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Registry{feds: map[string]*Federation{}, now: now, log: log}
}

// The bodies the registry takes and returns are the wire structs (api/wire),
// so that the Go SDK relays them without this package or its cryptography.
type (
	// CreateRequest is what a tenant admin sends to create a federation.
	CreateRequest = wire.CreateFederationRequest
	// Created is the answer to a creation: the federation and each
	// location's credential, shown once.
	Created = wire.FederationCreated
	// View is the public state of a federation.
	View = wire.Federation
)

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// Create makes a federation for a tenant.
func (r *Registry) Create(tenant string, req CreateRequest) (*Created, error) {
	var problems []string
	if !validName(req.Name) {
		problems = append(problems, "name must be 1..64 letters, digits, '-', '_' or '.'")
	}
	seen := map[string]bool{}
	for _, l := range req.Locations {
		if !validName(l) || seen[l] {
			problems = append(problems, "location "+strconv.Quote(l)+" must be a unique name of 1..64 letters, digits, '-', '_' or '.'")
		}
		seen[l] = true
	}
	if len(problems) > 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: %s", joinProblems(problems))
	}
	p, err := NewParams(len(req.Locations), req.Threshold)
	if err != nil {
		return nil, err
	}
	if _, err := p.DecodePublicKey(req.FranchisorKey); err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: franchisor_key: %s", privalytics.ErrorMessage(err))
	}
	var id [8]byte
	seed := make([]byte, SeedSize)
	if _, err := rand.Read(id[:]); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: id: %v", err)
	}
	if _, err := rand.Read(seed); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: seed: %v", err)
	}
	f := &Federation{
		ID: "fed_" + hex.EncodeToString(id[:]), Tenant: tenant, Name: req.Name,
		Locations: slices.Clone(req.Locations), Threshold: req.Threshold, Seed: seed, Created: r.now().UTC(),
		params: p, franchisor: slices.Clone(req.FranchisorKey),
		keyShares: make([][]byte, p.Locations), sealed: make([][]SealedShare, p.Locations), sealedSum: make([][32]byte, p.Locations),
	}
	tokens := make([]string, p.Locations)
	for i := range tokens {
		var secret [24]byte
		if _, err := rand.Read(secret[:]); err != nil {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: token: %v", err)
		}
		tokens[i] = LocationTokenPrefix + f.ID + "." + strconv.Itoa(i) + "." + hex.EncodeToString(secret[:])
		h := sha256.Sum256([]byte(tokens[i]))
		f.tokens = append(f.tokens, h[:])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expire()
	owned := 0
	for _, g := range r.feds {
		if g.Tenant == tenant {
			owned++
		}
	}
	if owned >= MaxFederationsPerTenant {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "federation: tenant %s already has %d federations, the most a server keeps per tenant", tenant, MaxFederationsPerTenant)
	}
	if err := r.saveMeta(f); err != nil {
		return nil, err
	}
	r.feds[f.ID] = f
	return &Created{Federation: f.view(), Tokens: tokens}, nil
}

// Authenticate resolves a location credential to its federation and index.
func (r *Registry) Authenticate(token string) (fed string, index int, err error) {
	bad := privalytics.Errorf(privalytics.EUNAUTHORIZED, "send a valid location credential as 'Authorization: Bearer pvl_…'")
	rest, ok := strings.CutPrefix(token, LocationTokenPrefix)
	if !ok {
		return "", 0, bad
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", 0, bad
	}
	index, err = strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, bad
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.feds[parts[0]]
	if !ok || index < 0 || index >= len(f.tokens) {
		return "", 0, bad
	}
	h := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(h[:], f.tokens[index]) != 1 {
		return "", 0, bad
	}
	return f.ID, index, nil
}

func (f *Federation) phase() string {
	for _, k := range f.keyShares {
		if k == nil {
			return PhaseKeys
		}
	}
	if f.cpk == nil {
		return PhaseShares
	}
	return PhaseReady
}

func (f *Federation) view() View {
	v := View{ID: f.ID, Name: f.Name, Preset: PresetName, Locations: f.Locations, Threshold: f.Threshold, Seed: f.Seed, Phase: f.phase(), Rounds: len(f.rounds), Created: f.Created,
		KeyShares: []int{}, SealedShares: []int{}}
	for i, k := range f.keyShares {
		if k != nil {
			v.KeyShares = append(v.KeyShares, i)
		}
	}
	for i, s := range f.sealed {
		if s != nil {
			v.SealedShares = append(v.SealedShares, i)
		}
	}
	if v.Phase != PhaseKeys {
		for _, k := range f.keyShares {
			v.TransportKeys = append(v.TransportKeys, k[len(magicKeyShare):len(magicKeyShare)+TransportKeySize])
		}
	}
	return v
}

// lookup returns the federation; tenant "" means a location of it (already
// authenticated to this federation), otherwise the tenant must own it.
func (r *Registry) lookup(id, tenant string) (*Federation, error) {
	f, ok := r.feds[id]
	if !ok || (tenant != "" && f.Tenant != tenant) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "federation %q not found", id)
	}
	return f, nil
}

// Get returns a federation's public state. tenant is the caller's tenant, or
// "" for a location of the federation.
func (r *Registry) Get(id, tenant string) (View, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, tenant)
	if err != nil {
		return View{}, err
	}
	return f.view(), nil
}

// Params returns a federation's parameters.
func (r *Registry) Params(id, tenant string) (*Params, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, tenant)
	if err != nil {
		return nil, err
	}
	return f.params, nil
}

// once applies the accept-once rule to one slot: an identical retry is a
// no-op (dup), different bytes are refused and logged, since a regenerated
// share can leak key material.
func (r *Registry) once(f *Federation, held [32]byte, has bool, body []byte, what string, loc int, round int) (dup bool, err error) {
	if !has {
		return false, nil
	}
	if sha256.Sum256(body) == held {
		return true, nil
	}
	r.log.Warn("federation: a different share for a filled slot was rejected",
		slog.String("federation", f.ID), slog.Int("location", loc), slog.Int("round", round), slog.String("kind", what))
	return false, privalytics.Errorf(privalytics.ECONFLICT, "federation: location %d already sent its %s and a different one is refused (a regenerated share could leak key material); resend the same bytes or skip", loc, what)
}

// PostKeyShare stores a location's key share.
func (r *Registry) PostKeyShare(id string, loc int, body []byte) (dup bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, "")
	if err != nil {
		return false, err
	}
	var held [32]byte
	if f.keyShares[loc] != nil {
		held = sha256.Sum256(f.keyShares[loc])
	}
	if dup, err := r.once(f, held, f.keyShares[loc] != nil, body, "key share", loc, 0); dup || err != nil {
		return dup, err
	}
	ks, err := f.params.DecodeKeyShare(body)
	if err != nil {
		return false, err
	}
	for i, k := range f.keyShares {
		if k != nil && subtle.ConstantTimeCompare(k[len(magicKeyShare):len(magicKeyShare)+TransportKeySize], ks.Transport) == 1 {
			return false, privalytics.Errorf(privalytics.EINVALID, "federation: transport key already used by location %d; generate a fresh one", i)
		}
	}
	if err := r.saveShare(f, "key-share-"+strconv.Itoa(loc), kindKeyShare, body, "the key share"); err != nil {
		return false, err
	}
	f.keyShares[loc] = slices.Clone(body)
	return false, nil
}

// PostSealed stores a location's sealed Shamir shares, one to every other
// location; accepted once all key shares (and so transport keys) are in.
func (r *Registry) PostSealed(id string, loc int, body []byte) (dup bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, "")
	if err != nil {
		return false, err
	}
	if ph := f.phase(); ph == PhaseKeys {
		return false, privalytics.Errorf(privalytics.ECONFLICT, "federation: setup is still collecting key shares; send Shamir shares once every location has posted its key share")
	}
	if dup, err := r.once(f, f.sealedSum[loc], f.sealed[loc] != nil, body, "Shamir shares", loc, 0); dup || err != nil {
		return dup, err
	}
	shares, err := f.params.DecodeSealed(body)
	if err != nil {
		return false, err
	}
	if len(shares) != f.params.Locations-1 {
		return false, privalytics.Errorf(privalytics.EINVALID, "federation: send exactly one sealed share to each of the other %d locations, got %d", f.params.Locations-1, len(shares))
	}
	for _, s := range shares {
		if s.Peer == loc {
			return false, privalytics.Errorf(privalytics.EINVALID, "federation: a location keeps its own Shamir share; do not send it")
		}
	}
	if err := r.saveShare(f, "sealed-"+strconv.Itoa(loc), kindSealed, body, "the Shamir shares"); err != nil {
		return false, err
	}
	f.sealed[loc], f.sealedSum[loc] = shares, sha256.Sum256(body)
	done := true
	for _, s := range f.sealed {
		done = done && s != nil
	}
	if done {
		shares := make([]*KeyShare, len(f.keyShares))
		for i, b := range f.keyShares {
			if shares[i], err = f.params.DecodeKeyShare(b); err != nil {
				return false, err
			}
		}
		cpk, err := CollectivePublicKey(f.params, f.Seed, shares)
		if err != nil {
			return false, err
		}
		f.cpk = f.params.EncodePublicKey(cpk)
	}
	return false, nil
}

// Inbox returns the sealed shares addressed to a location (Peer = sender),
// once every location has sent its own.
func (r *Registry) Inbox(id string, loc int) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, "")
	if err != nil {
		return nil, err
	}
	if f.phase() != PhaseReady {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "federation: setup is in phase %q; the inbox opens once every location has sent its Shamir shares", f.phase())
	}
	var in []SealedShare
	for from, bundle := range f.sealed {
		for _, s := range bundle {
			if s.Peer == loc {
				in = append(in, SealedShare{Peer: from, Box: s.Box})
			}
		}
	}
	return f.params.EncodeSealed(in), nil
}

// PublicKey returns the collective public key once setup is done.
func (r *Registry) PublicKey(id, tenant string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, tenant)
	if err != nil {
		return nil, err
	}
	if f.cpk == nil {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "federation: setup is in phase %q; the collective key exists once every location has sent its key and Shamir shares", f.phase())
	}
	return f.cpk, nil
}

// FranchisorKey returns the franchisor's public key.
func (r *Registry) FranchisorKey(id string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, "")
	if err != nil {
		return nil, err
	}
	return f.franchisor, nil
}
