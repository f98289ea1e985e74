package he

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/ring"

	"github.com/privalytics/privalytics"
)

// Scheme is the homomorphic scheme of a preset.
type Scheme string

const (
	// BGV computes exactly on integers modulo a plaintext modulus t.
	BGV Scheme = "bgv"
	// CKKS computes approximately on reals.
	CKKS Scheme = "ckks"
)

// Names of the built-in presets.
const (
	PresetBGVAgg         = "bgv-agg"
	PresetBGVDepth1      = "bgv-depth1"
	PresetCKKSAgg        = "ckks-agg"
	PresetCKKSDepth2     = "ckks-depth2"
	PresetCKKSRegression = "ckks-regression"
)

// maxLogScale keeps every CKKS scale below 2^55: at and above it Lattigo encodes
// through big floats, 10–45× slower (BENCHMARKS.md).
const maxLogScale = 54

// plaintextModulus is a 41-bit prime ≡ 1 mod 2^16, so it batches for every ring
// degree up to 2^15 and leaves sums up to ±2^40 exact.
const plaintextModulus = 2199024107521

// Preset is a named, fixed parameter set. Callers pick presets, never raw
// parameters, so a processor and an owner always agree on what a name means.
// The struct is a literal and round-trips through JSON and MarshalBinary.
type Preset struct {
	Name   string `json:"name"`
	Scheme Scheme `json:"scheme"`
	// LogN is log2 of the ring degree.
	LogN int `json:"log_n"`
	// LogQ and LogP are the bit sizes of the ciphertext and key-switching primes.
	LogQ []int `json:"log_q"`
	LogP []int `json:"log_p"`
	// PlaintextModulus is t (BGV only).
	PlaintextModulus uint64 `json:"plaintext_modulus,omitempty"`
	// LogScale is log2 of the CKKS encoding scale Δ (CKKS only).
	LogScale int `json:"log_scale,omitempty"`
	// ConjugateInvariant selects the real (conjugate-invariant) CKKS ring: N real
	// slots instead of N/2 complex ones, for the same ring degree.
	ConjugateInvariant bool `json:"conjugate_invariant,omitempty"`
	// Depth is the number of ciphertext-ciphertext products the preset allows.
	Depth int `json:"depth"`
	// FloodBits is λ, the statistical security of flooding: the KL divergence
	// between what the owner's decryptions reveal and a key-independent
	// simulation is at most 2^-λ (see FORMAT.md, "Decryption").
	FloodBits int `json:"flood_bits"`
	// MaxDecryptions is k, how many times one result may be decrypted; σ_flood
	// grows with √k.
	MaxDecryptions int `json:"max_decryptions"`

	insecure bool // test-only presets skip the security check
}

var (
	presetsMu sync.RWMutex
	presets   = map[string]Preset{}
)

func init() {
	for _, p := range []Preset{
		{Name: PresetBGVAgg, Scheme: BGV, LogN: 13, LogQ: []int{60, 60}, LogP: []int{60}, PlaintextModulus: plaintextModulus, Depth: 0, FloodBits: 40, MaxDecryptions: 16},
		{Name: PresetBGVDepth1, Scheme: BGV, LogN: 14, LogQ: []int{60, 60, 60}, LogP: []int{60}, PlaintextModulus: plaintextModulus, Depth: 1, FloodBits: 40, MaxDecryptions: 16},
		{Name: PresetCKKSAgg, Scheme: CKKS, LogN: 14, LogQ: []int{60, 60}, LogP: []int{61}, LogScale: 50, ConjugateInvariant: true, Depth: 0, FloodBits: 40, MaxDecryptions: 16},
		{Name: PresetCKKSDepth2, Scheme: CKKS, LogN: 14, LogQ: []int{60, 60, 50, 50}, LogP: []int{61}, LogScale: 50, ConjugateInvariant: true, Depth: 2, FloodBits: 40, MaxDecryptions: 16},
		{Name: PresetCKKSRegression, Scheme: CKKS, LogN: 14, LogQ: []int{60, 60, 60, 50, 50, 50}, LogP: []int{61}, LogScale: 50, ConjugateInvariant: true, Depth: 3, FloodBits: 40, MaxDecryptions: 16},
	} {
		presets[p.Name] = p
	}
}

// registerPreset adds a preset to the registry; tests use it for testInsecure…
// presets so that tables naming them can be read back.
func registerPreset(p Preset) {
	presetsMu.Lock()
	defer presetsMu.Unlock()
	presets[p.Name] = p
}

// LookupPreset returns the preset with the given name.
func LookupPreset(name string) (Preset, error) {
	presetsMu.RLock()
	p, ok := presets[name]
	presetsMu.RUnlock()
	if !ok {
		return Preset{}, privalytics.Errorf(privalytics.ENOTFOUND, "he: unknown preset %q; use one of %v", name, PresetNames())
	}
	return p, nil
}

// PresetNames lists the registered presets, sorted.
func PresetNames() []string {
	presetsMu.RLock()
	defer presetsMu.RUnlock()
	names := make([]string, 0, len(presets))
	for n, p := range presets {
		if !p.insecure {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// PresetFor picks the cheapest built-in preset of the scheme that can run all
// the given operations.
func PresetFor(scheme Scheme, ops ...Op) (Preset, error) {
	depth := 0
	for _, op := range ops {
		d, err := op.depth()
		if err != nil {
			return Preset{}, err
		}
		depth = max(depth, d)
	}
	var order []string
	switch scheme {
	case BGV:
		order = []string{PresetBGVAgg, PresetBGVDepth1}
	case CKKS:
		order = []string{PresetCKKSAgg, PresetCKKSDepth2, PresetCKKSRegression}
	default:
		return Preset{}, privalytics.Errorf(privalytics.EINVALID, "he: scheme %q must be %q or %q", scheme, BGV, CKKS)
	}
	regression := false
	for _, op := range ops {
		regression = regression || op == OpRegression
	}
	for _, name := range order {
		p, _ := LookupPreset(name)
		if regression && scheme == CKKS && name != PresetCKKSRegression {
			continue
		}
		if p.Depth >= depth {
			return p, nil
		}
	}
	return Preset{}, privalytics.Errorf(privalytics.EINVALID, "he: no %s preset supports depth %d; split the job or use ckks", scheme, depth)
}

// heStandardMaxLogQP is the largest log2(QP) with 128-bit classical security
// for a uniform ternary secret, by ring degree (HomomorphicEncryption.org
// standard, Table 1).
var heStandardMaxLogQP = map[int]float64{10: 27, 11: 54, 12: 109, 13: 218, 14: 438, 15: 881}

// Validate reports every problem with the preset, including a modulus too large
// for 128-bit security at its ring degree.
func (p Preset) Validate() error {
	var problems []string
	if p.Name == "" {
		problems = append(problems, "name must not be empty")
	}
	if p.LogN < 10 || p.LogN > 15 {
		problems = append(problems, fmt.Sprintf("log_n must be 10..15, got %d", p.LogN))
	}
	if len(p.LogQ) == 0 || len(p.LogP) == 0 {
		problems = append(problems, "log_q and log_p need at least one prime each")
	}
	logQP := 0
	for _, b := range append(append([]int{}, p.LogQ...), p.LogP...) {
		if b < 20 || b > 61 {
			problems = append(problems, fmt.Sprintf("prime sizes must be 20..61 bits, got %d", b))
		}
		logQP += b
	}
	if bound, ok := heStandardMaxLogQP[p.LogN]; ok && !p.insecure && float64(logQP) > bound {
		problems = append(problems, fmt.Sprintf("log2(QP)=%d exceeds %g, the 128-bit security bound for N=2^%d; use fewer or smaller primes or a larger ring", logQP, bound, p.LogN))
	}
	if p.Depth < 0 || p.Depth > len(p.LogQ)-1 {
		problems = append(problems, fmt.Sprintf("depth must be 0..%d (one level per product), got %d", len(p.LogQ)-1, p.Depth))
	}
	if p.FloodBits < 0 || p.FloodBits > 128 || p.MaxDecryptions < 1 {
		problems = append(problems, "flood_bits must be 0..128 and max_decryptions ≥ 1")
	}
	switch p.Scheme {
	case BGV:
		if p.PlaintextModulus < 2 || p.PlaintextModulus%(2<<p.LogN) != 1 {
			problems = append(problems, fmt.Sprintf("plaintext_modulus must be a prime ≡ 1 mod 2N for batching, got %d", p.PlaintextModulus))
		}
		if p.LogScale != 0 || p.ConjugateInvariant {
			problems = append(problems, "log_scale and conjugate_invariant apply to ckks only")
		}
	case CKKS:
		if p.LogScale < 20 || p.LogScale > maxLogScale {
			problems = append(problems, fmt.Sprintf("log_scale must be 20..%d (a scale ≥ 2^55 makes encoding 10–45× slower), got %d", maxLogScale, p.LogScale))
		}
		if p.PlaintextModulus != 0 {
			problems = append(problems, "plaintext_modulus applies to bgv only")
		}
	default:
		problems = append(problems, fmt.Sprintf("scheme must be %q or %q, got %q", BGV, CKKS, p.Scheme))
	}
	if len(problems) > 0 {
		return privalytics.Errorf(privalytics.EINVALID, "he: preset %q: %s", p.Name, joinProblems(problems))
	}
	return nil
}

// MarshalBinary encodes the preset literal (JSON inside, so it stays readable in
// a hex dump and tolerant of new optional fields).
func (p Preset) MarshalBinary() ([]byte, error) { return json.Marshal(p) }

// UnmarshalBinary decodes a preset literal. Test-only presets cannot be
// recreated this way; they come back as secure presets and fail Validate.
func (p *Preset) UnmarshalBinary(b []byte) error {
	var q Preset
	if err := json.Unmarshal(b, &q); err != nil {
		return privalytics.Errorf(privalytics.EINVALID, "he: preset: %v", err)
	}
	*p = q
	return nil
}

// params is the compiled form of a preset: Lattigo parameters for one scheme.
type params struct {
	Preset
	bgv  heint.Parameters
	ckks hefloat.Parameters
	rlwe rlwe.Parameters
}

var (
	compiledMu sync.Mutex
	compiled   = map[string]*params{}
)

// compile validates the preset and builds its Lattigo parameters once.
func (p Preset) compile() (*params, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	key, _ := p.MarshalBinary()
	compiledMu.Lock()
	defer compiledMu.Unlock()
	if c, ok := compiled[string(key)]; ok {
		return c, nil
	}
	c := &params{Preset: p}
	var err error
	switch p.Scheme {
	case BGV:
		c.bgv, err = heint.NewParametersFromLiteral(heint.ParametersLiteral{LogN: p.LogN, LogQ: p.LogQ, LogP: p.LogP, PlaintextModulus: p.PlaintextModulus})
		c.rlwe = *c.bgv.GetRLWEParameters()
	case CKKS:
		rt := ring.Standard
		if p.ConjugateInvariant {
			rt = ring.ConjugateInvariant
		}
		c.ckks, err = hefloat.NewParametersFromLiteral(hefloat.ParametersLiteral{LogN: p.LogN, LogQ: p.LogQ, LogP: p.LogP, LogDefaultScale: p.LogScale, RingType: rt})
		c.rlwe = *c.ckks.GetRLWEParameters()
	}
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "he: preset %q: %v", p.Name, err)
	}
	if !p.insecure {
		if bound := heStandardMaxLogQP[p.LogN]; c.rlwe.LogQP() > bound {
			return nil, privalytics.Errorf(privalytics.EINVALID, "he: preset %q: log2(QP)=%.1f exceeds the 128-bit bound %g for N=2^%d", p.Name, c.rlwe.LogQP(), bound, p.LogN)
		}
	}
	compiled[string(key)] = c
	return c, nil
}

// slots is the number of values one ciphertext carries.
func (c *params) slots() int {
	if c.Scheme == BGV {
		return c.bgv.MaxSlots()
	}
	return c.ckks.MaxSlots()
}

// logQAt is log2 of the ciphertext modulus at a level.
func (c *params) logQAt(level int) float64 {
	s := 0.0
	for _, q := range c.rlwe.Q()[:level+1] {
		s += math.Log2(float64(q))
	}
	return s
}

func joinProblems(ps []string) string { return strings.Join(ps, "; ") }
