package learn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/he/federation"
)

// Training with every location in its own process (issue 19). Three parties
// talk over HTTP:
//
//   - the Relay, the untrusted server: a write-once mailbox of opaque blobs
//     (key shares, sealed Shamir shares, ciphertexts, decryption shares,
//     public tasks) that also adds ciphertexts and combines decryption shares.
//     It holds no key and never sees a plaintext.
//   - RunLocation, one per location process: it joins the key setup, then
//     answers each published task on its own CSV, adds its noise share,
//     encrypts, and, when picked, sends a decryption share.
//   - the Coordinator, the franchisor: it publishes the job and the tasks,
//     counts a location that does not answer within Window as dropped for the
//     rest of the training, and decrypts the t-of-N key-switched sums.
//
// Blob names (the relay's files): job, keyshare-I, sealed-I-J (I to J),
// ready-I, task-R, contrib-R-I, agg-R, decrypt-R, dshare-R-I, result-R, stop.

// Job is what the coordinator publishes first: public parameters only.
type Job struct {
	Name          string `json:"name"`
	Locations     int    `json:"locations"`
	Threshold     int    `json:"threshold"`
	Seed          []byte `json:"seed"`
	FranchisorKey []byte `json:"franchisor_key"`
}

// roundTask is a published task with the schema locations read their CSV with.
type roundTask struct {
	Round  int    `json:"round"`
	Schema Schema `json:"schema"`
	Task   Task   `json:"task"`
}

type decryptOrder struct {
	Active []int `json:"active"`
}

var blobName = regexp.MustCompile(`^[a-z]+(-[0-9]{1,6}){0,2}$`)

// Relay is the untrusted server of a training with separate location
// processes. It stores every blob it receives in Dir, write-once, and logs
// every request to Log.
type Relay struct {
	Dir string
	Log *slog.Logger

	mu sync.Mutex
	p  *federation.Params
}

// Handler serves the relay's routes.
func (rl *Relay) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v/{name}", rl.put)
	mux.HandleFunc("GET /v/{name}", rl.get)
	mux.HandleFunc("POST /sum/{round}", rl.sum)
	mux.HandleFunc("POST /keyswitch/{round}", rl.keySwitch)
	return mux
}

func (rl *Relay) path(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if !blobName.MatchString(name) {
		http.Error(w, "blob names are like contrib-3-1", http.StatusBadRequest)
		return "", false
	}
	return filepath.Join(rl.Dir, name), true
}

func (rl *Relay) put(w http.ResponseWriter, r *http.Request) {
	p, ok := rl.path(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	rl.Log.Info("put", "blob", r.PathValue("name"), "bytes", len(body), "remote", r.RemoteAddr)
	var fp *federation.Params
	if r.PathValue("name") == "job" {
		var j Job
		if err := json.Unmarshal(body, &j); err != nil {
			http.Error(w, "job: "+err.Error(), http.StatusBadRequest)
			return
		}
		if fp, err = federation.NewParams(j.Locations, j.Threshold); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	if err := writeOnce(p, body); err != nil {
		rl.Log.Warn("put refused", "blob", r.PathValue("name"), "err", err)
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	if fp != nil { // the job was written once; its parameters hold from now on
		rl.mu.Lock()
		rl.p = fp
		rl.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeOnce(path string, b []byte) error {
	f, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("blob is being written or was written: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		os.Remove(path + ".tmp")
		return errors.New("blob was already written; blobs are write-once")
	}
	return os.Rename(path+".tmp", path)
}

func (rl *Relay) get(w http.ResponseWriter, r *http.Request) {
	p, ok := rl.path(w, r)
	if !ok {
		return
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(b)
}

func (rl *Relay) params(w http.ResponseWriter) *federation.Params {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.p == nil {
		http.Error(w, "no job yet", http.StatusConflict)
	}
	return rl.p
}

// blobs reads prefix-R-I for every I of the request's {"from": [...]}.
func (rl *Relay) blobs(w http.ResponseWriter, r *http.Request, prefix string) (int, []int, [][]byte, bool) {
	round, err := strconv.Atoi(r.PathValue("round"))
	var from struct {
		From []int `json:"from"`
	}
	if err == nil {
		err = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&from)
	}
	if err != nil || len(from.From) == 0 {
		http.Error(w, `body must be {"from": [location, ...]}`, http.StatusBadRequest)
		return 0, nil, nil, false
	}
	var out [][]byte
	for _, i := range from.From {
		b, err := os.ReadFile(filepath.Join(rl.Dir, fmt.Sprintf("%s-%d-%d", prefix, round, i)))
		if err != nil {
			http.Error(w, fmt.Sprintf("%s of location %d for round %d: %v", prefix, i, round, err), http.StatusConflict)
			return 0, nil, nil, false
		}
		out = append(out, b)
	}
	return round, from.From, out, true
}

func (rl *Relay) sum(w http.ResponseWriter, r *http.Request) {
	p := rl.params(w)
	if p == nil {
		return
	}
	round, from, cts, ok := rl.blobs(w, r, "contrib")
	if !ok {
		return
	}
	rl.Log.Info("sum", "round", round, "from", from)
	out, err := LocalServer{P: p}.Sum(round, cts)
	rl.finish(w, fmt.Sprintf("agg-%d", round), out, err)
}

func (rl *Relay) keySwitch(w http.ResponseWriter, r *http.Request) {
	p := rl.params(w)
	if p == nil {
		return
	}
	round, from, shares, ok := rl.blobs(w, r, "dshare")
	if !ok {
		return
	}
	agg, err := os.ReadFile(filepath.Join(rl.Dir, fmt.Sprintf("agg-%d", round)))
	if err != nil {
		http.Error(w, fmt.Sprintf("round %d has no sum yet", round), http.StatusConflict)
		return
	}
	rl.Log.Info("keyswitch", "round", round, "from", from)
	out, err := LocalServer{P: p}.KeySwitch(round, agg, shares)
	rl.finish(w, fmt.Sprintf("result-%d", round), out, err)
}

func (rl *Relay) finish(w http.ResponseWriter, name string, out []byte, err error) {
	if err == nil {
		err = writeOnce(filepath.Join(rl.Dir, name), out)
	}
	if err != nil {
		rl.Log.Error("round failed", "blob", name, "err", err)
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.Write(out)
}

// relayClient is the HTTP side every party shares.
type relayClient struct {
	url  string
	poll time.Duration
}

func (c relayClient) do(ctx context.Context, method, path string, body []byte) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, privalytics.Errorf(privalytics.EUNAVAILABLE, "learn: relay %s: %v", c.url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return b, resp.StatusCode, err
}

func (c relayClient) put(ctx context.Context, name string, body []byte) error {
	b, code, err := c.do(ctx, http.MethodPut, "/v/"+name, body)
	if err == nil && code != http.StatusNoContent {
		err = privalytics.Errorf(privalytics.ECONFLICT, "learn: relay refused %s: %d %s", name, code, bytes.TrimSpace(b))
	}
	return err
}

func (c relayClient) putJSON(ctx context.Context, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.put(ctx, name, b)
}

// get returns a blob, or nil if it is not there yet.
func (c relayClient) get(ctx context.Context, name string) ([]byte, error) {
	b, code, err := c.do(ctx, http.MethodGet, "/v/"+name, nil)
	switch {
	case err != nil:
		return nil, err
	case code == http.StatusNotFound:
		return nil, nil
	case code != http.StatusOK:
		return nil, privalytics.Errorf(privalytics.EUNAVAILABLE, "learn: relay: %s: %d %s", name, code, bytes.TrimSpace(b))
	}
	return b, nil
}

// wait polls for the first of names to appear and returns its index and body.
func (c relayClient) wait(ctx context.Context, names ...string) (int, []byte, error) {
	for {
		for i, n := range names {
			b, err := c.get(ctx, n)
			if err != nil || b != nil {
				return i, b, err
			}
		}
		select {
		case <-ctx.Done():
			return 0, nil, privalytics.Errorf(privalytics.EUNAVAILABLE, "learn: gave up waiting for %v: %v", names, ctx.Err())
		case <-time.After(c.poll):
		}
	}
}

// LocationConfig is one location process's configuration.
type LocationConfig struct {
	Relay string // http://host:port of the relay
	Index int    // this location's index, 0..N−1
	// CSV is the location's own customers (one row per customer), read
	// with each task's public schema. It never leaves the process.
	CSV        []byte
	Mechanisms dp.Mechanisms
	Poll       time.Duration
	// MaxEpsilon (with Delta) caps what this location's customers may lose
	// over all the tasks it answers: the relay is untrusted and tasks are not
	// signed, so the location adds up each task's zCDP cost from its noise
	// scale (ρ = 1/2σ² per block of sensitivity 1) and refuses the task that
	// would take it over. 0 means no cap.
	MaxEpsilon, Delta float64
	// Tap, if set, sees every plaintext cell vector before encryption (the
	// tests write them where the relay cannot see, to search its files).
	Tap func(round int, cells []int64)
}

// RunLocation runs one location until the coordinator publishes stop: key
// setup (its share of the collective key, its Shamir shares sealed to each
// peer), then every task. Its secret key share stays in memory.
func RunLocation(ctx context.Context, cfg LocationConfig) error {
	c := relayClient{url: cfg.Relay, poll: cmp(cfg.Poll, 10*time.Millisecond)}
	_, jb, err := c.wait(ctx, "job")
	if err != nil {
		return err
	}
	var job Job
	if err := json.Unmarshal(jb, &job); err != nil {
		return privalytics.Errorf(privalytics.EINVALID, "learn: job: %v", err)
	}
	p, err := federation.NewParams(job.Locations, job.Threshold)
	if err != nil {
		return err
	}
	if cfg.Index < 0 || cfg.Index >= job.Locations {
		return privalytics.Errorf(privalytics.EINVALID, "learn: location index %d is outside 0..%d", cfg.Index, job.Locations-1)
	}
	franchisor, err := p.DecodePublicKey(job.FranchisorKey)
	if err != nil {
		return err
	}
	l, err := federation.NewLocation(p, cfg.Index)
	if err != nil {
		return err
	}
	ks, err := l.KeyShare(job.Seed)
	if err != nil {
		return err
	}
	if err := c.put(ctx, fmt.Sprintf("keyshare-%d", cfg.Index), p.EncodeKeyShare(ks)); err != nil {
		return err
	}
	shares := make([]*federation.KeyShare, job.Locations)
	transport := make([][]byte, job.Locations)
	for i := range shares {
		_, b, err := c.wait(ctx, fmt.Sprintf("keyshare-%d", i))
		if err != nil {
			return err
		}
		if shares[i], err = p.DecodeKeyShare(b); err != nil {
			return err
		}
		transport[i] = shares[i].Transport
	}
	cpk, err := federation.CollectivePublicKey(p, job.Seed, shares)
	if err != nil {
		return err
	}
	sealed, err := l.ShamirShares(job.Name, job.Seed, transport)
	if err != nil {
		return err
	}
	for _, s := range sealed {
		if err := c.put(ctx, fmt.Sprintf("sealed-%d-%d", cfg.Index, s.Peer), s.Box); err != nil {
			return err
		}
	}
	var inbox []federation.SealedShare
	for j := range job.Locations {
		if j == cfg.Index {
			continue
		}
		_, b, err := c.wait(ctx, fmt.Sprintf("sealed-%d-%d", j, cfg.Index))
		if err != nil {
			return err
		}
		inbox = append(inbox, federation.SealedShare{Peer: j, Box: b})
	}
	if err := l.CombineShares(job.Name, job.Seed, transport, inbox); err != nil {
		return err
	}
	if err := c.put(ctx, fmt.Sprintf("ready-%d", cfg.Index), nil); err != nil {
		return err
	}
	rows := map[string]*Rows{} // the CSV read with each schema seen
	spent := 0.0               // ρ of the tasks answered
	for r := 0; ; r++ {
		which, b, err := c.wait(ctx, fmt.Sprintf("task-%d", r), "stop")
		if err != nil || which == 1 {
			return err
		}
		rt, err := decodeTask(b, p)
		if err != nil {
			return privalytics.Errorf(privalytics.EINVALID, "learn: task %d: %v", r, err)
		}
		rho := dp.RhoOfSigma(1, rt.Task.Sigma)
		if rt.Task.Kind == TaskRidge {
			rho += dp.RhoOfSigma(1, rt.Task.SigmaXy)
		}
		if cfg.MaxEpsilon > 0 {
			if e := dp.EpsilonOfRho(spent+rho, cfg.Delta); e > cfg.MaxEpsilon*(1+1e-9) {
				return privalytics.Errorf(privalytics.EBUDGET, "learn: task %d would bring this location's customers to ε=%.3g (δ=%g), over its cap of %g; nothing was computed. Raise --max-epsilon only if the franchisor's stated budget allows it", r, e, cfg.Delta, cfg.MaxEpsilon)
			}
		}
		spent += rho
		key := string(must(json.Marshal(rt.Schema)))
		if rows[key] == nil {
			if rows[key], err = rt.Schema.ReadCSV(bytes.NewReader(cfg.CSV)); err != nil {
				return err
			}
		}
		d := rt.Schema.Dim()
		cells, err := rt.Task.Cells(rows[key], d, cfg.Mechanisms)
		if err != nil {
			return err
		}
		ints := fixedPoint(cells)
		if cfg.Tap != nil {
			cfg.Tap(r, ints)
		}
		ct, err := federation.Encrypt(p, cpk, ints)
		if err != nil {
			return err
		}
		cb, err := marshal(ct)
		if err != nil {
			return err
		}
		if err := c.put(ctx, fmt.Sprintf("contrib-%d-%d", r, cfg.Index), cb); err != nil {
			return err
		}
		which, b, err = c.wait(ctx, fmt.Sprintf("decrypt-%d", r), "stop")
		if err != nil || which == 1 {
			return err
		}
		var order decryptOrder
		if err := json.Unmarshal(b, &order); err != nil {
			return privalytics.Errorf(privalytics.EINVALID, "learn: decrypt order %d: %v", r, err)
		}
		if !slices.Contains(order.Active, cfg.Index) {
			continue
		}
		_, ab, err := c.wait(ctx, fmt.Sprintf("agg-%d", r))
		if err != nil {
			return err
		}
		agg := new(rlwe.Ciphertext)
		if err := agg.UnmarshalBinary(ab); err != nil {
			return privalytics.Errorf(privalytics.EINVALID, "learn: the relay's sum for round %d is not a ciphertext: %v", r, err)
		}
		share, err := l.DecryptionShare(order.Active, agg, franchisor)
		if err != nil {
			return err
		}
		sb, err := marshal(share)
		if err != nil {
			return err
		}
		if err := c.put(ctx, fmt.Sprintf("dshare-%d-%d", r, cfg.Index), sb); err != nil {
			return err
		}
	}
}

// decodeTask parses a task from the relay, which is untrusted: strictly, and
// refusing anything a location should not compute (an invalid schema, more
// cells than a ciphertext holds, a noise scale that is not a positive finite
// number, a threshold outside 1..N, coefficients that do not fit the schema).
func decodeTask(b []byte, p *federation.Params) (*roundTask, error) {
	var rt roundTask
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rt); err != nil {
		return nil, err
	}
	if err := rt.Schema.Validate(); err != nil {
		return nil, err
	}
	d, t := rt.Schema.Dim(), rt.Task
	if t.Kind != TaskGram && t.Kind != TaskRidge && t.Kind != TaskGradient {
		return nil, fmt.Errorf("kind %q is not a task", t.Kind)
	}
	if n := t.Len(d); n > p.Slots() {
		return nil, fmt.Errorf("%d cells, one ciphertext holds %d", n, p.Slots())
	}
	finite := func(v float64) bool { return v > 0 && !math.IsInf(v, 0) }
	if !finite(t.Sigma) || (t.Kind == TaskRidge && !finite(t.SigmaXy)) {
		return nil, fmt.Errorf("noise scales must be positive and finite")
	}
	if t.Threshold < 1 || t.Threshold > p.Locations {
		return nil, fmt.Errorf("threshold %d is outside 1..%d", t.Threshold, p.Locations)
	}
	if t.Kind == TaskGradient && len(t.Beta) != d {
		return nil, fmt.Errorf("%d coefficients for %d features", len(t.Beta), d)
	}
	for _, v := range t.Beta {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("coefficients must be finite")
		}
	}
	return &rt, nil
}

func fixedPoint(cells []float64) []int64 {
	ints := make([]int64, len(cells))
	for j, x := range cells {
		ints[j] = int64(math.Round(x * FixedPoint))
	}
	return ints
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func cmp(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Coordinator is the franchisor of a training whose locations run in their
// own processes (RunLocation); it implements Federation.
type Coordinator struct {
	P          *federation.Params
	Franchisor *federation.Franchisor
	// Window is how long a round waits for a location's answer; one that
	// misses it is dropped for the rest of the training (its data is then
	// missing, and the others' noise shares still carry the full σ as long
	// as t remain).
	Window  time.Duration
	Dropped map[int]bool
	// Rounds run so far; BytesPerLoc is the largest upload of one location
	// in one round (ciphertext plus decryption share).
	Rounds      int
	BytesPerLoc int64

	ctx context.Context
	c   relayClient
}

// NewCoordinator draws the franchisor's key and publishes the job; the
// locations then run their setup (WaitReady).
func NewCoordinator(ctx context.Context, relay, name string, locations, threshold int) (*Coordinator, error) {
	p, err := federation.NewParams(locations, threshold)
	if err != nil {
		return nil, err
	}
	seed := make([]byte, federation.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "learn: seed: %v", err)
	}
	co := &Coordinator{P: p, Franchisor: federation.NewFranchisor(p), Window: 5 * time.Second, Dropped: map[int]bool{}, ctx: ctx, c: relayClient{url: relay, poll: 10 * time.Millisecond}}
	job := Job{Name: name, Locations: locations, Threshold: threshold, Seed: seed, FranchisorKey: p.EncodePublicKey(co.Franchisor.Public)}
	return co, co.c.putJSON(ctx, "job", job)
}

// WaitReady waits until every location has finished key setup.
func (co *Coordinator) WaitReady() error {
	for i := range co.P.Locations {
		if _, _, err := co.c.wait(co.ctx, fmt.Sprintf("ready-%d", i)); err != nil {
			return err
		}
	}
	return nil
}

// Size implements Federation.
func (co *Coordinator) Size() (int, int, int) { return co.P.Locations, co.P.Threshold, co.P.Slots() }

// Stop tells every location the training is over.
func (co *Coordinator) Stop() error { return co.c.put(co.ctx, "stop", nil) }

// Round implements Federation.
func (co *Coordinator) Round(s *Schema, t Task) ([]float64, error) {
	r := co.Rounds
	if err := co.c.putJSON(co.ctx, fmt.Sprintf("task-%d", r), roundTask{Round: r, Schema: *s, Task: t}); err != nil {
		return nil, err
	}
	var from []int
	var ctBytes int64
	wctx, cancel := context.WithTimeout(co.ctx, co.Window)
	for i := range co.P.Locations {
		if co.Dropped[i] {
			continue
		}
		_, b, err := co.c.wait(wctx, fmt.Sprintf("contrib-%d-%d", r, i))
		if err != nil {
			if co.ctx.Err() != nil {
				cancel()
				return nil, err
			}
			co.Dropped[i] = true
			continue
		}
		ctBytes = max(ctBytes, int64(len(b)))
		from = append(from, i)
	}
	cancel()
	if len(from) < co.P.Threshold {
		co.Stop()
		return nil, privalytics.Errorf(privalytics.EUNAVAILABLE, "learn: round %d: only %d locations answered within %v, decryption needs t=%d", r, len(from), co.Window, co.P.Threshold)
	}
	body := must(json.Marshal(map[string][]int{"from": from}))
	if b, code, err := co.c.do(co.ctx, http.MethodPost, fmt.Sprintf("/sum/%d", r), body); err != nil || code != http.StatusOK {
		return nil, relayError("sum", r, b, code, err)
	}
	active := from[:co.P.Threshold]
	if err := co.c.putJSON(co.ctx, fmt.Sprintf("decrypt-%d", r), decryptOrder{Active: active}); err != nil {
		return nil, err
	}
	var shareBytes int64
	wctx, cancel = context.WithTimeout(co.ctx, co.Window)
	defer cancel()
	for _, a := range active {
		_, b, err := co.c.wait(wctx, fmt.Sprintf("dshare-%d-%d", r, a))
		if err != nil {
			return nil, privalytics.Errorf(privalytics.EUNAVAILABLE, "learn: round %d: location %d did not send its decryption share within %v: %v", r, a, co.Window, err)
		}
		shareBytes = max(shareBytes, int64(len(b)))
	}
	body = must(json.Marshal(map[string][]int{"from": active}))
	sw, code, err := co.c.do(co.ctx, http.MethodPost, fmt.Sprintf("/keyswitch/%d", r), body)
	if err != nil || code != http.StatusOK {
		return nil, relayError("keyswitch", r, sw, code, err)
	}
	ct := new(rlwe.Ciphertext)
	if err := ct.UnmarshalBinary(sw); err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: the relay's key-switched sum is not a ciphertext: %v", err)
	}
	ints, err := co.Franchisor.Decrypt(ct, t.Len(s.Dim()))
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(ints))
	for i, v := range ints {
		out[i] = float64(v) / FixedPoint
	}
	co.Rounds++
	co.BytesPerLoc = max(co.BytesPerLoc, ctBytes+shareBytes)
	return out, nil
}

func relayError(what string, r int, b []byte, code int, err error) error {
	if err != nil {
		return err
	}
	return privalytics.Errorf(privalytics.EUNAVAILABLE, "learn: round %d: relay %s: %d %s", r, what, code, bytes.TrimSpace(b))
}
