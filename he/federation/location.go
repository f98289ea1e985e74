package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp"
)

// Transport is what a location asks of the server. It speaks bytes and wire
// structs only — keys, shares and ciphertexts in this package's encodings —
// so that the Go SDK (api/client) satisfies it without a cryptography library;
// this package does every (de)serialisation. Errors are privalytics coded
// errors: ENOTFOUND for an unknown federation or round, EFORBIDDEN for a
// location outside the decrypting set, ECONFLICT for a call out of phase.
type Transport interface {
	Federation(ctx context.Context, fed string) (*wire.Federation, error)
	PostKeyShare(ctx context.Context, fed string, body []byte) (*wire.ShareAccepted, error)
	PostShamirShares(ctx context.Context, fed string, body []byte) (*wire.ShareAccepted, error)
	ShamirInbox(ctx context.Context, fed string) ([]byte, error)
	CollectiveKey(ctx context.Context, fed string) ([]byte, error)
	FranchisorKey(ctx context.Context, fed string) ([]byte, error)
	Round(ctx context.Context, fed string, n int) (*wire.Round, error)
	Contribute(ctx context.Context, fed string, n int, body []byte) (*wire.ShareAccepted, error)
	ReadyToDecrypt(ctx context.Context, fed string, n int) (*wire.Round, error)
	RoundAggregate(ctx context.Context, fed string, n int) ([]byte, error)
	PostDecryptionShare(ctx context.Context, fed string, n int, body []byte) (*wire.ShareAccepted, error)
}

// DefaultPollInterval paces every wait for the other parties.
const DefaultPollInterval = 25 * time.Millisecond

// Driver runs one location's side of the protocol over a Transport: setup
// once, then per round a contribution and, if chosen, a decryption share. The
// CLI (franchise setup/contribute), the franchise benchmark and the
// end-to-end tests all run this one driver.
type Driver struct {
	T          Transport
	Federation string
	Index      int
	// Poll is the wait between polls (DefaultPollInterval when 0).
	Poll time.Duration
	// Noise draws the location's share of the DP noise; nil means dp.Secure().
	Noise *dp.Mechanisms
}

func (d *Driver) poll() time.Duration {
	if d.Poll > 0 {
		return d.Poll
	}
	return DefaultPollInterval
}

// Poll calls done every interval until it returns true or an error, or ctx
// ends; what names the wait in the error.
func Poll(ctx context.Context, what string, interval time.Duration, done func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// ParamsOf returns the parameters of a federation's public state, refusing a
// preset this binary does not know.
func ParamsOf(v *View) (*Params, error) {
	if v.Preset != PresetName {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation %s uses preset %q; this binary knows %q", v.ID, v.Preset, PresetName)
	}
	return NewParams(len(v.Locations), v.Threshold)
}

// Params fetches the federation's state and parameters.
func (d *Driver) Params(ctx context.Context) (*Params, *View, error) {
	v, err := d.T.Federation(ctx, d.Federation)
	if err != nil {
		return nil, nil, err
	}
	p, err := ParamsOf(v)
	return p, v, err
}

// Setup draws this location's secret key share, sends its share of the
// collective public key, seals its t-of-N Shamir shares to the other
// locations, waits for theirs and returns the location's secrets, encoded for
// the caller to keep (0600): EncodeLocation's bytes. Shares are accepted
// once: a setup interrupted after sending cannot be resumed.
func (d *Driver) Setup(ctx context.Context) ([]byte, error) {
	p, v, err := d.Params(ctx)
	if err != nil {
		return nil, err
	}
	loc, err := NewLocation(p, d.Index)
	if err != nil {
		return nil, err
	}
	ks, err := loc.KeyShare(v.Seed)
	if err != nil {
		return nil, err
	}
	if _, err := d.T.PostKeyShare(ctx, d.Federation, p.EncodeKeyShare(ks)); err != nil {
		return nil, err
	}
	if v, err = d.waitPhase(ctx, "every location's key share", func(v *View) bool { return v.Phase != PhaseKeys }); err != nil {
		return nil, err
	}
	sealed, err := loc.ShamirShares(d.Federation, v.Seed, v.TransportKeys)
	if err != nil {
		return nil, err
	}
	if _, err := d.T.PostShamirShares(ctx, d.Federation, p.EncodeSealed(sealed)); err != nil {
		return nil, err
	}
	if v, err = d.waitPhase(ctx, "every location's Shamir shares", func(v *View) bool { return v.Phase == PhaseReady }); err != nil {
		return nil, err
	}
	raw, err := d.T.ShamirInbox(ctx, d.Federation)
	if err != nil {
		return nil, err
	}
	inbox, err := p.DecodeSealed(raw)
	if err != nil {
		return nil, err
	}
	if err := loc.CombineShares(d.Federation, v.Seed, v.TransportKeys, inbox); err != nil {
		return nil, err
	}
	return p.EncodeLocation(loc)
}

func (d *Driver) waitPhase(ctx context.Context, what string, ok func(*View) bool) (*View, error) {
	var v *View
	err := Poll(ctx, what, d.poll(), func() (bool, error) {
		var err error
		v, err = d.T.Federation(ctx, d.Federation)
		return err == nil && ok(v), err
	})
	return v, err
}

// Open decodes the location's secrets (from Setup) for this driver's location.
func (d *Driver) Open(p *Params, secrets []byte) (*Location, error) {
	loc, err := p.DecodeLocation(secrets)
	if err != nil {
		return nil, err
	}
	if loc.Index != d.Index {
		return nil, privalytics.Errorf(privalytics.EINVALID, "the secrets are location %d's, the credentials location %d's", loc.Index, d.Index)
	}
	return loc, nil
}

// Contribute reads the round's published query, computes this location's
// bounded aggregates over data (CSV with a header row), adds its share of the
// distributed DP noise, encrypts under the collective key and uploads once.
func (d *Driver) Contribute(ctx context.Context, p *Params, round int, data io.Reader) error {
	rv, err := d.T.Round(ctx, d.Federation, round)
	if err != nil {
		return err
	}
	q := Query(rv.Query)
	cells, err := q.LocalAggregates(data)
	if err != nil {
		return err
	}
	return d.ContributeCells(ctx, p, round, &q, cells)
}

// ContributeCells is Contribute for aggregates already computed with
// q.LocalAggregates: noise, encrypt, upload. cells are cleared afterwards.
func (d *Driver) ContributeCells(ctx context.Context, p *Params, round int, q *Query, cells []int64) error {
	m := dp.Secure()
	if d.Noise != nil {
		m = *d.Noise
	}
	if err := q.AddNoiseSharesWith(m, cells, p.Threshold); err != nil {
		return err
	}
	cpkRaw, err := d.T.CollectiveKey(ctx, d.Federation)
	if err != nil {
		return err
	}
	cpk, err := p.DecodePublicKey(cpkRaw)
	if err != nil {
		return err
	}
	ct, err := Encrypt(p, cpk, cells)
	clear(cells)
	if err != nil {
		return err
	}
	_, err = d.T.Contribute(ctx, d.Federation, round, p.EncodeCiphertext(ct))
	return err
}

// DecryptOutcome says how a location's part in decrypting a round ended.
type DecryptOutcome struct {
	// Sent is true when this location sent its decryption share.
	Sent bool
	// Round is the round's last state seen; when Sent is false its Status,
	// Reason and Active say why (over without this location, or decrypted by
	// others).
	Round *wire.Round
}

var errRoundOver = errors.New("round over")

// Decrypt waits for the round to start decrypting, declares this location
// live, and sends its flooded key-switching share if it is in the decrypting
// set. A round that ends first, or a set without this location, is not an
// error: the outcome says so.
func (d *Driver) Decrypt(ctx context.Context, p *Params, loc *Location, round int) (DecryptOutcome, error) {
	var rv *wire.Round
	err := Poll(ctx, "the round to start decrypting", d.poll(), func() (bool, error) {
		var err error
		if rv, err = d.T.Round(ctx, d.Federation, round); err != nil {
			return false, err
		}
		switch rv.Status {
		case RoundDecrypting:
			return true, nil
		case RoundCollecting:
			return false, nil
		}
		return false, errRoundOver
	})
	if errors.Is(err, errRoundOver) {
		return DecryptOutcome{Round: rv}, nil
	} else if err != nil {
		return DecryptOutcome{}, err
	}
	if rv, err = d.T.ReadyToDecrypt(ctx, d.Federation, round); err != nil {
		// The others may have decrypted the round between the poll and this
		// call (a conflict: ready is accepted only while decrypting); a round
		// over is an outcome, as above, not an error.
		if now, rerr := d.T.Round(ctx, d.Federation, round); rerr == nil && now.Status != RoundDecrypting {
			return DecryptOutcome{Round: now}, nil
		}
		return DecryptOutcome{}, err
	}
	err = Poll(ctx, "the decrypting set", d.poll(), func() (bool, error) {
		if len(rv.Active) > 0 {
			return true, nil
		}
		var err error
		rv, err = d.T.Round(ctx, d.Federation, round)
		if err == nil && rv.Status != RoundDecrypting {
			return false, errRoundOver
		}
		return false, err
	})
	if errors.Is(err, errRoundOver) || err == nil && !slices.Contains(rv.Active, loc.Index) {
		return DecryptOutcome{Round: rv}, nil
	} else if err != nil {
		return DecryptOutcome{}, err
	}
	if err := d.sendDecryptionShare(ctx, p, loc, round, rv.Active); err != nil {
		return DecryptOutcome{}, err
	}
	return DecryptOutcome{Sent: true, Round: rv}, nil
}

func (d *Driver) sendDecryptionShare(ctx context.Context, p *Params, loc *Location, round int, active []int) error {
	aggRaw, err := d.T.RoundAggregate(ctx, d.Federation, round)
	if err != nil {
		return err
	}
	agg, err := p.DecodeCiphertext(aggRaw)
	if err != nil {
		return err
	}
	frRaw, err := d.T.FranchisorKey(ctx, d.Federation)
	if err != nil {
		return err
	}
	frk, err := p.DecodePublicKey(frRaw)
	if err != nil {
		return err
	}
	share, err := loc.DecryptionShare(active, agg, frk)
	if err != nil {
		return err
	}
	_, err = d.T.PostDecryptionShare(ctx, d.Federation, round, p.EncodeDecryptionShare(share))
	return err
}

// ResultCell is one released value of a round with its interval half-width.
type ResultCell struct {
	Aggregate string  `json:"aggregate"`
	Category  string  `json:"category"`
	Value     int64   `json:"value"`
	PlusMinus float64 `json:"plus_minus"`
}

// ResultCells labels a round's decrypted values (the franchisor's
// Franchisor.Decrypt of the result) with their aggregate, category and the
// half-width of the interval holding their DP noise at confidence.
func (q *Query) ResultCells(values []int64, threshold, contributors int, confidence float64) ([]ResultCell, error) {
	if len(values) != q.Cells() {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: %d values, the query has %d cells", len(values), q.Cells())
	}
	var out []ResultCell
	for a, agg := range q.Aggregates {
		pm := q.Interval(agg, threshold, contributors, confidence)
		for k, cat := range q.Categories {
			out = append(out, ResultCell{Aggregate: agg, Category: cat, Value: values[q.Cell(a, k)], PlusMinus: pm})
		}
	}
	return out, nil
}

// FranchisorTransport is what the franchisor asks of the server to collect a
// round's result; api/client.Client satisfies it.
type FranchisorTransport interface {
	Federation(ctx context.Context, fed string) (*wire.Federation, error)
	Round(ctx context.Context, fed string, n int) (*wire.Round, error)
	RoundResult(ctx context.Context, fed string, n int) ([]byte, error)
}

// RoundResult is a round's released figures, as the franchisor decrypts them.
type RoundResult struct {
	Round        int                `json:"round"`
	Contributors int                `json:"contributors"`
	Confidence   float64            `json:"confidence"`
	Cells        []ResultCell       `json:"cells"`
	NoiseStd     map[string]float64 `json:"noise_std"`
	// Query is the round's published query (not printed: it is public).
	Query Query `json:"-"`
}

// CollectResult waits for round n of fed to finish, downloads its result
// (encrypted to the franchisor) and decrypts it with franchisorKey (the
// EncodeFranchisor bytes). The values carry the round's distributed DP
// noise; Cells give each its interval at confidence. A failed round is
// ECONFLICT with its reason.
func CollectResult(ctx context.Context, t FranchisorTransport, fed string, n int, franchisorKey []byte, confidence float64, poll time.Duration) (*RoundResult, error) {
	v, err := t.Federation(ctx, fed)
	if err != nil {
		return nil, err
	}
	p, err := ParamsOf(v)
	if err != nil {
		return nil, err
	}
	fr, err := p.DecodeFranchisor(franchisorKey)
	if err != nil {
		return nil, err
	}
	var rv *wire.Round
	err = Poll(ctx, "the round's result", poll, func() (bool, error) {
		var err error
		rv, err = t.Round(ctx, fed, n)
		if err == nil && rv.Status == RoundFailed {
			return false, privalytics.Errorf(privalytics.ECONFLICT, "round %d failed: %s", n, rv.Reason)
		}
		return err == nil && rv.Status == RoundDone, err
	})
	if err != nil {
		return nil, err
	}
	raw, err := t.RoundResult(ctx, fed, n)
	if err != nil {
		return nil, err
	}
	ct, err := p.DecodeCiphertext(raw)
	if err != nil {
		return nil, err
	}
	q := Query(rv.Query)
	vals, err := fr.Decrypt(ct, q.Cells())
	if err != nil {
		return nil, err
	}
	res := &RoundResult{Round: n, Contributors: len(rv.Contributors), Confidence: confidence, NoiseStd: rv.NoiseStd, Query: q}
	if res.Cells, err = q.ResultCells(vals, p.Threshold, len(rv.Contributors), confidence); err != nil {
		return nil, err
	}
	return res, nil
}
