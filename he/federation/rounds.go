package federation

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

type (
	// RoundRequest publishes a federated query.
	RoundRequest = wire.RoundRequest
	// RoundView is the public state of a round.
	RoundView = wire.Round
)

func window(s float64, what string) (time.Duration, error) {
	if s == 0 {
		return DefaultWindow, nil
	}
	d := time.Duration(s * float64(time.Second))
	if d < MinWindow || d > MaxWindow {
		return 0, privalytics.Errorf(privalytics.EINVALID, "federation: %s must be %v..%v in seconds, got %g", what, MinWindow.Seconds(), MaxWindow.Seconds(), s)
	}
	return d, nil
}

// CheckRound reports what CreateRound would refuse about the request alone
// (the query, the windows) and the federation's setup — nothing that
// depends on a location's data — so that the caller can charge only a round
// that will be created, unless another round is still running.
func (r *Registry) CheckRound(id, tenant string, req RoundRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, tenant)
	if err != nil {
		return err
	}
	_, _, _, err = checkRound(f, req)
	return err
}

func checkRound(f *Federation, req RoundRequest) (Query, time.Duration, time.Duration, error) {
	if f.cpk == nil {
		return Query{}, 0, 0, privalytics.Errorf(privalytics.ECONFLICT, "federation: setup is in phase %q; rounds start once every location has finished setup", f.phase())
	}
	q := Query(req.Query)
	if err := q.Validate(f.params); err != nil {
		return Query{}, 0, 0, err
	}
	cw, err := window(req.ContributeSeconds, "contribute_seconds")
	if err != nil {
		return Query{}, 0, 0, err
	}
	dw, err := window(req.DecryptSeconds, "decrypt_seconds")
	return q, cw, dw, err
}

// CreateRound opens the next round. Rounds run one at a time, in order.
func (r *Registry) CreateRound(id, tenant string, req RoundRequest) (RoundView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, tenant)
	if err != nil {
		return RoundView{}, err
	}
	q, cw, dw, err := checkRound(f, req)
	if err != nil {
		return RoundView{}, err
	}
	now := r.now()
	if n := len(f.rounds); n > 0 {
		last := f.rounds[n-1]
		r.advance(f, last, now)
		if last.Status == RoundCollecting || last.Status == RoundDecrypting {
			return RoundView{}, privalytics.Errorf(privalytics.ECONFLICT, "federation: round %d is still %s; rounds run one at a time, wait for it to finish or time out", last.Number, last.Status)
		}
	}
	rd := &Round{Number: len(f.rounds) + 1, Query: q, Status: RoundCollecting, Opened: now.UTC(),
		ContributeUntil: now.Add(cw).UTC(), DecryptUntil: now.Add(cw + dw).UTC(),
		contributed: map[int][32]byte{}, decShares: map[int]*mhe.PublicKeySwitchShare{}, decSum: map[int][32]byte{}}
	if rd.Query.MaxLocationsPerSubject == 0 {
		rd.Query.MaxLocationsPerSubject = 1
	}
	if err := r.saveRound(f, rd); err != nil {
		return RoundView{}, err
	}
	f.rounds = append(f.rounds, rd)
	if old := len(f.rounds) - 1 - KeptResults; old >= 0 && f.rounds[old].result != nil {
		f.rounds[old].result = nil
		f.rounds[old].Reason = "result dropped: the server keeps the latest " + itoa(KeptResults) + " results"
		if err := r.saveRound(f, f.rounds[old]); err != nil {
			// Only space is lost: the old result stays on disk until the next try.
			r.log.Error("federation: drop an old round's result on disk", "federation", f.ID, "round", old+1, "err", err)
		}
	}
	return r.roundView(f, rd), nil
}

// round finds round n, advancing its state to now.
func (r *Registry) round(f *Federation, n int) (*Round, error) {
	if n < 1 || n > len(f.rounds) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "federation: round %d does not exist; the latest is %d", n, len(f.rounds))
	}
	rd := f.rounds[n-1]
	r.advance(f, rd, r.now())
	return rd, nil
}

// advance applies the deadlines.
func (r *Registry) advance(f *Federation, rd *Round, now time.Time) {
	switch rd.Status {
	case RoundCollecting:
		if len(rd.contributed) == f.params.Locations {
			r.startDecrypting(f, rd)
		} else if !now.Before(rd.ContributeUntil) {
			if len(rd.contributed) >= f.params.Threshold {
				r.startDecrypting(f, rd)
			} else {
				r.fail(f, rd, fmt.Sprintf("only %d of %d locations contributed before the deadline; at least t=%d are needed (for the decryption and for the DP noise)", len(rd.contributed), f.params.Locations, f.params.Threshold))
			}
		}
		if rd.Status == RoundDecrypting && !now.Before(rd.DecryptUntil) {
			r.advance(f, rd, now)
		}
	case RoundDecrypting:
		if !now.Before(rd.DecryptUntil) {
			live := len(rd.decShares)
			r.fail(f, rd, fmt.Sprintf("only %d live locations sent decryption shares before the deadline (%d declared ready); t=%d are needed", live, len(rd.ready), f.params.Threshold))
		}
	}
}

func (r *Registry) startDecrypting(f *Federation, rd *Round) {
	rd.Status = RoundDecrypting
	rd.aggregate = f.params.EncodeCiphertext(rd.sum)
	rd.sum = nil
}

func (r *Registry) fail(f *Federation, rd *Round, reason string) {
	rd.Status, rd.Reason = RoundFailed, reason
	rd.sum, rd.aggregate, rd.decShares = nil, nil, nil
	r.log.Warn("federation: round failed", "federation", f.ID, "round", rd.Number, "reason", reason)
}

func (r *Registry) roundView(f *Federation, rd *Round) RoundView {
	v := RoundView{Federation: f.ID, Number: rd.Number, Status: rd.Status, Reason: rd.Reason, Query: wire.FederationQuery(rd.Query), Threshold: f.params.Threshold,
		Opened: rd.Opened, ContributeUntil: rd.ContributeUntil, DecryptUntil: rd.DecryptUntil,
		Contributors: []int{}, Ready: slices.Clone(rd.ready), Active: slices.Clone(rd.active), DecryptionFrom: []int{}, ResultAvailable: rd.result != nil}
	for i := range f.params.Locations {
		if _, ok := rd.contributed[i]; ok {
			v.Contributors = append(v.Contributors, i)
		}
		if _, ok := rd.decSum[i]; ok {
			v.DecryptionFrom = append(v.DecryptionFrom, i)
		}
	}
	if v.Ready == nil {
		v.Ready = []int{}
	}
	if v.Active == nil {
		v.Active = []int{}
	}
	if len(v.Contributors) > 0 {
		v.NoiseStd = map[string]float64{}
		for _, a := range rd.Query.Aggregates {
			v.NoiseStd[a] = rd.Query.NoiseStd(a, f.params.Threshold, len(v.Contributors))
		}
	}
	return v
}

// Round returns a round's public state.
func (r *Registry) Round(id, tenant string, n int) (RoundView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, tenant)
	if err != nil {
		return RoundView{}, err
	}
	rd, err := r.round(f, n)
	if err != nil {
		return RoundView{}, err
	}
	return r.roundView(f, rd), nil
}

func notNow(rd *Round, what, want string) error {
	msg := fmt.Sprintf("federation: round %d is %s; %s is accepted only while it is %s", rd.Number, rd.Status, what, want)
	if rd.Reason != "" {
		msg += " (" + rd.Reason + ")"
	}
	return privalytics.Errorf(privalytics.ECONFLICT, "%s", msg)
}

// Contribute adds a location's encrypted contribution to round n, once.
func (r *Registry) Contribute(id string, loc, n int, body []byte) (dup bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, "")
	if err != nil {
		return false, err
	}
	rd, err := r.round(f, n)
	if err != nil {
		return false, err
	}
	held, has := rd.contributed[loc]
	if dup, err := r.once(f, held, has, body, "contribution", loc, n); dup || err != nil {
		return dup, err
	}
	if rd.Status != RoundCollecting {
		return false, notNow(rd, "a contribution", RoundCollecting)
	}
	ct, err := f.params.DecodeCiphertext(body)
	if err != nil {
		return false, err
	}
	snap := rd.clone()
	if rd.sum == nil {
		rd.sum = ct
	} else if rd.sum, err = Sum(f.params, append(make([]*rlwe.Ciphertext, 0, 2), rd.sum, ct)); err != nil {
		return false, err
	}
	rd.contributed[loc] = sha256.Sum256(body)
	r.advance(f, rd, r.now())
	if err := r.saveRound(f, rd); err != nil {
		*rd = snap
		return false, err
	}
	return false, nil
}

// Ready declares a location live for decrypting round n. The first t ready
// locations form the decrypting set.
func (r *Registry) Ready(id string, loc, n int) (RoundView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, "")
	if err != nil {
		return RoundView{}, err
	}
	rd, err := r.round(f, n)
	if err != nil {
		return RoundView{}, err
	}
	if rd.Status != RoundDecrypting {
		return RoundView{}, notNow(rd, "declaring ready", RoundDecrypting)
	}
	if !slices.Contains(rd.ready, loc) {
		snap := rd.clone()
		rd.ready = append(rd.ready, loc)
		if len(rd.active) == 0 && len(rd.ready) == f.params.Threshold {
			rd.active = slices.Clone(rd.ready)
			slices.Sort(rd.active)
		}
		if err := r.saveRound(f, rd); err != nil {
			*rd = snap
			return RoundView{}, err
		}
	}
	return r.roundView(f, rd), nil
}

// Aggregate returns the sum of round n's contributions to a member of the
// decrypting set.
func (r *Registry) Aggregate(id string, loc, n int) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, "")
	if err != nil {
		return nil, err
	}
	rd, err := r.round(f, n)
	if err != nil {
		return nil, err
	}
	if rd.Status != RoundDecrypting {
		return nil, notNow(rd, "the aggregate", RoundDecrypting)
	}
	if !slices.Contains(rd.active, loc) {
		return nil, privalytics.Errorf(privalytics.EFORBIDDEN, "federation: location %d is not in round %d's decrypting set %v", loc, n, rd.active)
	}
	return rd.aggregate, nil
}

// PostDecryptionShare stores a decrypting location's share, once; with t
// shares the server switches the aggregate to the franchisor's key.
func (r *Registry) PostDecryptionShare(id string, loc, n int, body []byte) (dup bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, "")
	if err != nil {
		return false, err
	}
	rd, err := r.round(f, n)
	if err != nil {
		return false, err
	}
	held, has := rd.decSum[loc]
	if dup, err := r.once(f, held, has, body, "decryption share", loc, n); dup || err != nil {
		return dup, err
	}
	if rd.Status != RoundDecrypting {
		return false, notNow(rd, "a decryption share", RoundDecrypting)
	}
	if !slices.Contains(rd.active, loc) {
		return false, privalytics.Errorf(privalytics.EFORBIDDEN, "federation: location %d is not in round %d's decrypting set %v; only its members send decryption shares", loc, n, rd.active)
	}
	share, err := f.params.DecodeDecryptionShare(body)
	if err != nil {
		return false, err
	}
	snap := rd.clone()
	rd.decShares[loc], rd.decSum[loc] = share, sha256.Sum256(body)
	if len(rd.decShares) == f.params.Threshold {
		agg, err := f.params.DecodeCiphertext(rd.aggregate)
		if err != nil {
			*rd = snap
			return false, err
		}
		shares := make([]*mhe.PublicKeySwitchShare, 0, len(rd.active))
		for _, a := range rd.active {
			shares = append(shares, rd.decShares[a])
		}
		out, err := KeySwitch(f.params, agg, shares)
		if err != nil {
			*rd = snap
			return false, err
		}
		rd.result = f.params.EncodeCiphertext(out)
		rd.Status = RoundDone
		rd.aggregate, rd.decShares = nil, nil
	}
	if err := r.saveRound(f, rd); err != nil {
		*rd = snap
		return false, err
	}
	return false, nil
}

// Result returns round n's result, encrypted to the franchisor's key.
func (r *Registry) Result(id, tenant string, n int) ([]byte, RoundView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.lookup(id, tenant)
	if err != nil {
		return nil, RoundView{}, err
	}
	rd, err := r.round(f, n)
	if err != nil {
		return nil, RoundView{}, err
	}
	if rd.Status != RoundDone || rd.result == nil {
		return nil, RoundView{}, notNow(rd, "the result", RoundDone+" and among the latest "+itoa(KeptResults))
	}
	return rd.result, r.roundView(f, rd), nil
}
