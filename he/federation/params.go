package federation

import (
	"math"

	"github.com/tuneinsight/lattigo/v5/he/heint"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/he"
)

// PresetName is the he preset of every federation: BGV, N = 2^13 (8192 slots),
// a 41-bit plaintext modulus, 120-bit Q and 60-bit P, inside the HE-standard
// 128-bit bound for N = 2^13.
const PresetName = he.PresetBGVAgg

// MaxLocations bounds N: setup traffic grows as N² sealed shares.
const MaxLocations = 64

// Params are a federation's public parameters.
type Params struct {
	heint.Parameters
	Preset    he.Preset
	Locations int // N
	Threshold int // t
	// FloodSigma is the standard deviation of the flooding noise each location
	// adds to its decryption share (see floodSigma).
	FloodSigma float64
}

// NewParams checks N and t and compiles the preset.
func NewParams(locations, threshold int) (*Params, error) {
	var problems []string
	if locations < 2 || locations > MaxLocations {
		problems = append(problems, "locations must be 2.."+itoa(MaxLocations)+", got "+itoa(locations))
	}
	if threshold < 2 || threshold > locations {
		problems = append(problems, "threshold must be 2..locations ("+itoa(locations)+"), got "+itoa(threshold))
	}
	if len(problems) > 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: %s", joinProblems(problems))
	}
	preset, err := he.LookupPreset(PresetName)
	if err != nil {
		return nil, err
	}
	bgv, err := preset.BGVParameters()
	if err != nil {
		return nil, err
	}
	p := &Params{Parameters: bgv, Preset: preset, Locations: locations, Threshold: threshold}
	p.FloodSigma = p.floodSigma()
	// BGV decryption multiplies the noise by the plaintext modulus T: the
	// threshold's floods (6σ tails) plus the ciphertext noise must stay below Q/2.
	worst := float64(p.PlaintextModulus()) * 6 * (math.Sqrt(float64(threshold))*p.FloodSigma + p.ciphertextStd())
	if math.Log2(worst) >= p.LogQ()-1 {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "federation: flooding for %d locations does not fit the modulus of %s", locations, PresetName)
	}
	return p, nil
}

// Slots is the number of cells one contribution carries.
func (p *Params) Slots() int { return p.MaxSlots() }

// ciphertextStd is a heuristic bound on the per-coefficient noise of the sum
// of N contributions under the collective key: each fresh encryption carries
// u·e_pk + e₀ + e₁·s with e_pk the sum of N errors and s the sum of N ternary
// secrets (variance ⅔ per coefficient), products spreading over the ring
// degree.
func (p *Params) ciphertextStd() float64 {
	n, ringN := float64(p.Locations), float64(p.N())
	sigma := p.NoiseFreshSK()
	fresh := ringN*(2.0/3)*n*sigma*sigma*2 + sigma*sigma
	return math.Sqrt(n * fresh)
}

// floodSigma hides the aggregate's noise (which depends on the locations'
// secrets) from the franchisor: σ = noise·√N_ring·2^(λ/2) with λ the preset's
// FloodBits bounds the KL divergence of one decryption against a simulation by
// 2^-λ (the same rule as he's owner decryptions, with one decryption per round
// since a decryption share is never sent twice). Each location floods with the
// full σ on its own, so the bound holds even if the franchisor colludes with
// all but one of the decrypting locations.
func (p *Params) floodSigma() float64 {
	return p.ciphertextStd() * math.Sqrt(float64(p.N())) * math.Exp2(float64(p.Preset.FloodBits)/2)
}

// maxCell is the largest magnitude one location's cell may have, so that the
// sum of N cells cannot wrap modulo the plaintext modulus T.
func (p *Params) maxCell() int64 {
	return int64((p.PlaintextModulus()/2 - 1) / uint64(p.Locations))
}
