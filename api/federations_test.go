package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/he/federation"
)

// The whole protocol over HTTP runs in cmd/privalytics's end-to-end test;
// here each kind of bad request gets its 4xx and leaves the state as it was.
func TestFederationRejectsBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.DefaultLimits())
	p, err := federation.NewParams(3, 2)
	if err != nil {
		t.Fatal(err)
	}
	fr := federation.NewFranchisor(p)
	req := federation.CreateRequest{Name: "north", Locations: []string{"a", "b", "c"}, Threshold: 2, FranchisorKey: p.EncodePublicKey(fr.Public)}
	body, _ := json.Marshal(req)
	var created federation.Created
	f.mustDo(t, http.MethodPost, "/v1/federations", f.admin, "application/json", nil, body, http.StatusCreated, &created)
	id := created.Federation.ID
	loc0, loc1 := created.Tokens[0], created.Tokens[1]

	bad := req
	bad.Threshold = 4
	badBody, _ := json.Marshal(bad)
	bad.Threshold, bad.FranchisorKey = 2, []byte("PVFP\x01short")
	badKey, _ := json.Marshal(bad)

	l0, _ := federation.NewLocation(p, 0)
	ks, _ := l0.KeyShare(created.Federation.Seed)
	share := p.EncodeKeyShare(ks)
	l1, _ := federation.NewLocation(p, 1)
	ks1, _ := l1.KeyShare(created.Federation.Seed)

	oct := "application/octet-stream"
	for _, tc := range []struct {
		name, method, path, token, ctype string
		body                             []byte
		status                           int
		code                             string
	}{
		{"threshold above N", "POST", "/v1/federations", f.admin, "application/json", badBody, 400, privalytics.EINVALID},
		{"franchisor key of other parameters", "POST", "/v1/federations", f.admin, "application/json", badKey, 400, privalytics.EINVALID},
		{"a location creates", "POST", "/v1/federations", loc0, "application/json", body, 403, privalytics.EFORBIDDEN},
		{"forged location token", "GET", "/v1/federations/" + id, loc0[:len(loc0)-4] + "abcd", "", nil, 401, privalytics.EUNAUTHORIZED},
		{"unknown federation", "GET", "/v1/federations/fed_0000", loc0, "", nil, 404, privalytics.ENOTFOUND},
		{"admin posts a location's share", "POST", "/v1/federations/" + id + "/key-shares", f.admin, oct, share, 403, privalytics.EFORBIDDEN},
		{"garbage key share", "POST", "/v1/federations/" + id + "/key-shares", loc0, oct, []byte("PVFK\x01garbage"), 400, privalytics.EINVALID},
		{"json key share", "POST", "/v1/federations/" + id + "/key-shares", loc0, "application/json", share, 415, privalytics.EUNSUPPORTED},
		{"first key share", "POST", "/v1/federations/" + id + "/key-shares", loc0, oct, share, 200, ""},
		{"identical retry", "POST", "/v1/federations/" + id + "/key-shares", loc0, oct, share, 200, ""},
		{"a regenerated key share", "POST", "/v1/federations/" + id + "/key-shares", loc0, oct, p.EncodeKeyShare(ks1), 409, privalytics.ECONFLICT},
		{"reused transport key", "POST", "/v1/federations/" + id + "/key-shares", loc1, oct, share, 400, privalytics.EINVALID},
		{"shamir shares before keys", "POST", "/v1/federations/" + id + "/shamir-shares", loc1, oct, p.EncodeSealed(nil), 409, privalytics.ECONFLICT},
		{"public key before setup", "GET", "/v1/federations/" + id + "/public-key", f.admin, "", nil, 409, privalytics.ECONFLICT},
		{"round before setup", "POST", "/v1/federations/" + id + "/rounds", f.admin, "application/json", []byte(`{"query":{}}`), 409, privalytics.ECONFLICT},
		{"round out of order", "POST", "/v1/federations/" + id + "/rounds/7/contributions", loc1, oct, []byte("x"), 404, privalytics.ENOTFOUND},
		{"round not a number", "GET", "/v1/federations/" + id + "/rounds/first", loc1, "", nil, 400, privalytics.EINVALID},
		{"result for a location", "GET", "/v1/federations/" + id + "/rounds/1/result", loc1, "", nil, 403, privalytics.EFORBIDDEN},
	} {
		status, eb, _ := f.do(t, tc.method, tc.path, tc.token, tc.ctype, nil, tc.body)
		if status != tc.status || eb.Error.Code != tc.code {
			t.Errorf("%s: %d %s (%s), want %d %s", tc.name, status, eb.Error.Code, eb.Error.Message, tc.status, tc.code)
		}
	}
	var v federation.View
	f.mustDo(t, http.MethodGet, "/v1/federations/"+id, loc1, "", nil, nil, http.StatusOK, &v)
	if v.Phase != federation.PhaseKeys || len(v.KeyShares) != 1 || v.KeyShares[0] != 0 {
		t.Fatalf("state after bad input: %+v", v)
	}
}
