package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

// The files the franchise commands keep (docs/franchise.md). Everything here
// is a secret or names one, so every file is written 0600 in a 0700 directory.
const (
	// FranchisorKeyFile holds the franchisor's key pair (EncodeFranchisor).
	FranchisorKeyFile = "franchisor.key"
	// FranchisorStateFile names the server and the federation (FranchisorState).
	FranchisorStateFile = "federation.json"
	// LocationsDir holds one Credentials file per location, NAME.json.
	LocationsDir = "locations"
)

// Credentials is what the franchisor hands each location: where the server
// is, which federation, which location, and its credential. Keep it 0600.
type Credentials struct {
	Server     string `json:"server"`
	Federation string `json:"federation"`
	Location   string `json:"location"`
	Index      int    `json:"index"`
	Token      string `json:"token"`
}

// FranchisorState is the franchisor's file next to its key.
type FranchisorState struct {
	Server     string `json:"server"`
	Federation string `json:"federation"`
}

// Creator is what creating a federation asks of the server;
// api/client.Client satisfies it.
type Creator interface {
	CreateFederation(ctx context.Context, req wire.CreateFederationRequest) (*wire.FederationCreated, error)
}

// Create draws the franchisor's key pair, creates the federation on the
// server at serverURL and writes, under dir, the franchisor's key, its state
// file and one credentials file per location. It returns the federation's ID.
// The key is written only after the server accepted its public half, so a
// refused federation leaves no key behind.
func Create(ctx context.Context, t Creator, serverURL, dir, name string, locations []string, threshold int) (string, error) {
	p, err := NewParams(len(locations), threshold)
	if err != nil {
		return "", err
	}
	fr := NewFranchisor(p)
	created, err := t.CreateFederation(ctx, CreateRequest{Name: name, Locations: locations, Threshold: threshold, FranchisorKey: p.EncodePublicKey(fr.Public)})
	if err != nil {
		return "", err
	}
	id := created.Federation.ID
	if err := WriteSecret(filepath.Join(dir, FranchisorKeyFile), p.EncodeFranchisor(fr)); err != nil {
		return "", err
	}
	if err := writeJSONSecret(filepath.Join(dir, FranchisorStateFile), FranchisorState{Server: serverURL, Federation: id}); err != nil {
		return "", err
	}
	for i, tok := range created.Tokens {
		cred := Credentials{Server: serverURL, Federation: id, Location: locations[i], Index: i, Token: tok}
		if err := writeJSONSecret(filepath.Join(dir, LocationsDir, locations[i]+".json"), cred); err != nil {
			return "", err
		}
	}
	return id, nil
}

// WriteSecret writes b to path 0600, creating its directory 0700.
func WriteSecret(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func writeJSONSecret(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteSecret(path, append(b, '\n'))
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return privalytics.Errorf(privalytics.EINVALID, "%s: %v", path, err)
	}
	return nil
}

// ReadCredentials reads a location's credentials file (from Create).
func ReadCredentials(path string) (*Credentials, error) {
	var cred Credentials
	if err := readJSONFile(path, &cred); err != nil {
		return nil, err
	}
	if cred.Federation == "" || cred.Token == "" {
		return nil, privalytics.Errorf(privalytics.EINVALID, "%s is not a location credentials file", path)
	}
	return &cred, nil
}

// ReadFranchisorState reads the franchisor's state file in dir (from Create).
func ReadFranchisorState(dir string) (*FranchisorState, error) {
	var st FranchisorState
	if err := readJSONFile(filepath.Join(dir, FranchisorStateFile), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// SecretsPath is where a location's secrets are kept: the given path, or by
// default next to its credentials file with the extension .secrets.
func SecretsPath(credPath, given string) string {
	if given != "" {
		return given
	}
	return strings.TrimSuffix(credPath, filepath.Ext(credPath)) + ".secrets"
}

// ParseQuery reads a federated query given as JSON, or as @FILE naming a file
// of JSON; unknown fields are refused, so a misspelt bound is not ignored.
func ParseQuery(arg string) (*Query, error) {
	raw := []byte(arg)
	if name, ok := strings.CutPrefix(arg, "@"); ok {
		var err error
		if raw, err = os.ReadFile(name); err != nil {
			return nil, err
		}
	}
	var q Query
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "query: %v", err)
	}
	return &q, nil
}

// SetupFile runs Setup and writes the location's secrets to out (0600). It
// refuses when out exists: shares are accepted once, so a second setup could
// only overwrite the secrets the federation already relies on.
func (d *Driver) SetupFile(ctx context.Context, out string) error {
	if _, err := os.Stat(out); err == nil {
		return privalytics.Errorf(privalytics.ECONFLICT, "%s exists: this location has already finished setup", out)
	}
	b, err := d.Setup(ctx)
	if err != nil {
		return err
	}
	return WriteSecret(out, b)
}

// ContributeFile runs a location's part in a round from its files: it opens
// the secrets (from SetupFile) and contributes the CSV file data. The returned
// function then takes part in decryption (Decrypt); the caller decides whether
// to call it, after reporting the contribution.
func (d *Driver) ContributeFile(ctx context.Context, round int, secrets, data string) (decrypt func() (DecryptOutcome, error), err error) {
	p, _, err := d.Params(ctx)
	if err != nil {
		return nil, err
	}
	sb, err := os.ReadFile(secrets)
	if err != nil {
		return nil, fmt.Errorf("this location's secrets: %w (run franchise setup first)", err)
	}
	loc, err := d.Open(p, sb)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(data)
	if err != nil {
		return nil, err
	}
	err = d.Contribute(ctx, p, round, f)
	f.Close()
	if err != nil {
		return nil, err
	}
	return func() (DecryptOutcome, error) { return d.Decrypt(ctx, p, loc, round) }, nil
}

// WriteTable prints the result as an aligned table of its cells.
func (r *RoundResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "Round %d: %d locations contributed; ε=%g δ=%g; %.0f%% intervals.\n", r.Round, r.Contributors, r.Query.Epsilon, r.Query.Delta, r.Confidence*100)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "aggregate\tcategory\tvalue\t±\t")
	for _, cell := range r.Cells {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t\n", cell.Aggregate, cell.Category, cell.Value, cell.PlusMinus)
	}
	return tw.Flush()
}

// Describe says, for the location's operator, how its part in decrypting
// round ended.
func (o DecryptOutcome) Describe(location string, round int) string {
	switch rv := o.Round; {
	case o.Sent:
		return fmt.Sprintf("Location %s sent its decryption share for round %d.", location, round)
	case rv.Status == RoundDecrypting:
		return fmt.Sprintf("Round %d is decrypted by locations %v; this one is not needed.", round, rv.Active)
	default:
		return fmt.Sprintf("Round %d is %s without this location's decryption share. %s", round, rv.Status, rv.Reason)
	}
}

// Driver is the protocol driver of the credentials' location over t (the Go
// SDK with the credentials' server and token).
func (c *Credentials) Driver(t Transport) *Driver {
	return &Driver{T: t, Federation: c.Federation, Index: c.Index}
}

// Collect is CollectResult for the franchisor whose files (Create) are in
// dir: it decrypts round with the key there, with 95% intervals.
func (st *FranchisorState) Collect(ctx context.Context, t FranchisorTransport, dir string, round int) (*RoundResult, error) {
	kb, err := os.ReadFile(filepath.Join(dir, FranchisorKeyFile))
	if err != nil {
		return nil, err
	}
	return CollectResult(ctx, t, st.Federation, round, kb, 0.95, DefaultPollInterval)
}
