package federation

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

// fakeCreator accepts a federation and hands out one token per location.
type fakeCreator struct{ got wire.CreateFederationRequest }

func (f *fakeCreator) CreateFederation(_ context.Context, req wire.CreateFederationRequest) (*wire.FederationCreated, error) {
	f.got = req
	out := &wire.FederationCreated{Federation: wire.Federation{ID: "fed_1"}}
	for _, l := range req.Locations {
		out.Tokens = append(out.Tokens, "tok-"+l)
	}
	return out, nil
}

// TestCreateWritesSecretFiles: the franchisor's key, its state and each
// location's credentials are written 0600 and read back as written.
func TestCreateWritesSecretFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "north")
	var fc fakeCreator
	id, err := Create(context.Background(), &fc, "http://127.0.0.1:1", dir, "north", []string{"leeds", "york", "hull"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if id != "fed_1" || fc.got.Threshold != 2 || len(fc.got.FranchisorKey) == 0 {
		t.Fatalf("created %q from request %+v", id, fc.got)
	}
	for _, f := range []string{FranchisorKeyFile, FranchisorStateFile, filepath.Join(LocationsDir, "york.json")} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
	}
	st, err := ReadFranchisorState(dir)
	if err != nil || *st != (FranchisorState{Server: "http://127.0.0.1:1", Federation: "fed_1"}) {
		t.Errorf("franchisor state %+v, %v", st, err)
	}
	cred, err := ReadCredentials(filepath.Join(dir, LocationsDir, "york.json"))
	want := Credentials{Server: "http://127.0.0.1:1", Federation: "fed_1", Location: "york", Index: 1, Token: "tok-york"}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, *cred); diff != "" {
		t.Errorf("credentials (-want +got):\n%s", diff)
	}
	if _, err := ReadCredentials(filepath.Join(dir, FranchisorStateFile)); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("the state file read as credentials: %v, want EINVALID", err)
	}
}

func TestSecretsPath(t *testing.T) {
	t.Parallel()
	if got := SecretsPath("north/locations/york.json", ""); got != "north/locations/york.secrets" {
		t.Errorf("default secrets path %q", got)
	}
	if got := SecretsPath("york.json", "/keep/york"); got != "/keep/york" {
		t.Errorf("given secrets path became %q", got)
	}
}

func TestParseQuery(t *testing.T) {
	t.Parallel()
	js := `{"subject_column":"customer","category_column":"category","categories":["bread"],"aggregates":["count"],"max_rows_per_subject":8,"epsilon":1,"delta":1e-6}`
	file := filepath.Join(t.TempDir(), "q.json")
	if err := os.WriteFile(file, []byte(js), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{js, "@" + file} {
		q, err := ParseQuery(arg)
		if err != nil || q.SubjectColumn != "customer" || q.MaxRowsPerSubject != 8 || q.Epsilon != 1 {
			t.Errorf("ParseQuery(%.20q) = %+v, %v", arg, q, err)
		}
	}
	if _, err := ParseQuery(strings.Replace(js, "epsilon", "epsilom", 1)); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "epsilom") {
		t.Errorf("a misspelt field: %v, want EINVALID naming it", err)
	}
}

func TestDecryptOutcomeDescribe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o    DecryptOutcome
		want string
	}{
		{DecryptOutcome{Sent: true, Round: &wire.Round{Status: RoundDecrypting}}, "Location york sent its decryption share for round 3."},
		{DecryptOutcome{Round: &wire.Round{Status: RoundDecrypting, Active: []int{0, 2}}}, "Round 3 is decrypted by locations [0 2]; this one is not needed."},
		{DecryptOutcome{Round: &wire.Round{Status: RoundFailed, Reason: "too few live locations"}}, "Round 3 is failed without this location's decryption share. too few live locations"},
	} {
		if got := tc.o.Describe("york", 3); got != tc.want {
			t.Errorf("Describe = %q, want %q", got, tc.want)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Fuzz(func(t *testing.T, arg string) {
		if strings.HasPrefix(arg, "@") {
			return // a file name: not the JSON this target fuzzes
		}
		q, err := ParseQuery(arg)
		if err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("ParseQuery: %v, want EINVALID", err)
			}
			return
		}
		if q == nil {
			t.Fatal("ParseQuery returned no query and no error")
		}
	})
}
