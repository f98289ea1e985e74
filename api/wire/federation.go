package wire

import "time"

// Request and response bodies of the federation routes (/v1/federations/…,
// docs/franchise.md). Keys, shares and ciphertexts travel as opaque bytes
// (application/octet-stream) in he/federation's encodings; only these JSON
// bodies describe them, so a client needs no cryptography library to relay.

// Federation setup phases.
const (
	PhaseKeys   = "keys"   // collecting every location's key share
	PhaseShares = "shares" // collecting every location's sealed Shamir shares
	PhaseReady  = "ready"  // the collective key exists; rounds may run
)

// Round states.
const (
	RoundCollecting = "collecting" // contributions accepted until all N or the deadline
	RoundDecrypting = "decrypting" // locations join the decrypting set; t of them send shares
	RoundDone       = "done"       // the result, switched to the franchisor's key, is ready
	RoundFailed     = "failed"     // see Reason
)

// CreateFederationRequest is what a tenant admin sends to create a federation.
type CreateFederationRequest struct {
	Name      string   `json:"name"`
	Locations []string `json:"locations"`
	Threshold int      `json:"threshold"`
	// FranchisorKey is the franchisor's public key (he/federation
	// EncodePublicKey); results are re-encrypted to it.
	FranchisorKey []byte `json:"franchisor_key"`
}

// FederationCreated is the answer to a creation: the federation and each
// location's credential, shown once.
type FederationCreated struct {
	Federation Federation `json:"federation"`
	Tokens     []string   `json:"tokens"`
}

// Federation is the public state of a federation.
type Federation struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Preset    string   `json:"preset"`
	Locations []string `json:"locations"`
	Threshold int      `json:"threshold"`
	Seed      []byte   `json:"seed"`
	Phase     string   `json:"phase"`
	// KeyShares and SealedShares list which locations have posted each step.
	KeyShares    []int `json:"key_shares"`
	SealedShares []int `json:"sealed_shares"`
	// TransportKeys are the locations' X25519 keys, once all are posted.
	TransportKeys [][]byte  `json:"transport_keys,omitempty"`
	Rounds        int       `json:"rounds"`
	Created       time.Time `json:"created"`
}

// FederationQuery is a round's federated query, published by the franchisor
// and public to every location and the server (he/federation.Query holds its
// rules).
type FederationQuery struct {
	SubjectColumn          string   `json:"subject_column"`
	CategoryColumn         string   `json:"category_column"`
	ValueColumn            string   `json:"value_column,omitempty"`
	Categories             []string `json:"categories"`
	Aggregates             []string `json:"aggregates"`
	Lower                  int64    `json:"lower,omitempty"`
	Upper                  int64    `json:"upper,omitempty"`
	MaxRowsPerSubject      int      `json:"max_rows_per_subject"`
	MaxLocationsPerSubject int      `json:"max_locations_per_subject,omitempty"`
	Epsilon                float64  `json:"epsilon"`
	Delta                  float64  `json:"delta"`
}

// RoundRequest publishes a federated query.
type RoundRequest struct {
	Query FederationQuery `json:"query"`
	// ContributeSeconds is how long contributions are accepted (unless all N
	// arrive earlier); DecryptSeconds how long the decrypting set has after
	// that. Defaults: 600 each.
	ContributeSeconds float64 `json:"contribute_seconds,omitempty"`
	DecryptSeconds    float64 `json:"decrypt_seconds,omitempty"`
}

// Round is the public state of a round.
type Round struct {
	Federation      string          `json:"federation"`
	Number          int             `json:"number"`
	Status          string          `json:"status"`
	Reason          string          `json:"reason,omitempty"`
	Query           FederationQuery `json:"query"`
	Threshold       int             `json:"threshold"`
	Opened          time.Time       `json:"opened"`
	ContributeUntil time.Time       `json:"contribute_until"`
	DecryptUntil    time.Time       `json:"decrypt_until"`
	Contributors    []int           `json:"contributors"`
	Ready           []int           `json:"ready"`
	// Active is the decrypting set: the first t locations that declared
	// themselves ready; each sends one decryption share.
	Active          []int `json:"active"`
	DecryptionFrom  []int `json:"decryption_shares"`
	ResultAvailable bool  `json:"result_available"`
	// NoiseStd is the standard deviation of the DP noise on each released cell
	// of each aggregate, given the contributors (by aggregate name).
	NoiseStd map[string]float64 `json:"noise_std,omitempty"`
}

// ShareAccepted answers every binary upload (key share, Shamir shares,
// contribution, decryption share).
type ShareAccepted struct {
	Accepted bool `json:"accepted"`
	// Duplicate is true when the same bytes had been accepted before.
	Duplicate bool `json:"duplicate"`
}
