package client

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/privalytics/privalytics/api/wire"
)

// Federation routes (docs/franchise.md). Tenant-admin calls use the admin
// key; location calls use the location's pvl_… credential as the token. The
// location calls are he/federation.Transport: a *Client drives a location
// (federation.Driver) while this package stays free of cryptography.

// CreateFederation creates a federation (tenant admin); the tokens are shown once.
func (c *Client) CreateFederation(ctx context.Context, req wire.CreateFederationRequest) (*wire.FederationCreated, error) {
	var out wire.FederationCreated
	return &out, c.do(ctx, http.MethodPost, "/v1/federations", req, &out)
}

// Federation returns a federation's setup state.
func (c *Client) Federation(ctx context.Context, id string) (*wire.Federation, error) {
	var out wire.Federation
	return &out, c.do(ctx, http.MethodGet, "/v1/federations/"+id, nil, &out)
}

// ShareAccepted answers every binary upload.
type ShareAccepted = wire.ShareAccepted

func (c *Client) postBinary(ctx context.Context, path string, body []byte) (*ShareAccepted, error) {
	var out ShareAccepted
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	return &out, c.send(ctx, http.MethodPost, path, hdr, body, &out)
}

func (c *Client) getBinary(ctx context.Context, path string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return nil, decodeError(resp.StatusCode, raw)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &wire.Error{Code: wire.CodeTooLarge, Message: fmt.Sprintf("%s: the answer is over %d bytes", path, limit)}
	}
	return b, nil
}

const maxBinary = 16 << 20

// PostKeyShare uploads a location's key share (PVFK).
func (c *Client) PostKeyShare(ctx context.Context, fed string, body []byte) (*ShareAccepted, error) {
	return c.postBinary(ctx, "/v1/federations/"+fed+"/key-shares", body)
}

// PostShamirShares uploads a location's sealed Shamir shares (PVFS).
func (c *Client) PostShamirShares(ctx context.Context, fed string, body []byte) (*ShareAccepted, error) {
	return c.postBinary(ctx, "/v1/federations/"+fed+"/shamir-shares", body)
}

// ShamirInbox downloads the sealed shares addressed to the calling location.
func (c *Client) ShamirInbox(ctx context.Context, fed string) ([]byte, error) {
	return c.getBinary(ctx, "/v1/federations/"+fed+"/shamir-shares", maxBinary)
}

// CollectiveKey downloads the collective public key (PVFP).
func (c *Client) CollectiveKey(ctx context.Context, fed string) ([]byte, error) {
	return c.getBinary(ctx, "/v1/federations/"+fed+"/public-key", maxBinary)
}

// FranchisorKey downloads the franchisor's public key (PVFP).
func (c *Client) FranchisorKey(ctx context.Context, fed string) ([]byte, error) {
	return c.getBinary(ctx, "/v1/federations/"+fed+"/franchisor-key", maxBinary)
}

// CreateRound publishes a federated query (tenant admin).
func (c *Client) CreateRound(ctx context.Context, fed string, req wire.RoundRequest) (*wire.Round, error) {
	var out wire.Round
	return &out, c.do(ctx, http.MethodPost, "/v1/federations/"+fed+"/rounds", req, &out)
}

// Round returns a round's state.
func (c *Client) Round(ctx context.Context, fed string, n int) (*wire.Round, error) {
	var out wire.Round
	return &out, c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/federations/%s/rounds/%d", fed, n), nil, &out)
}

// Contribute uploads a location's encrypted contribution (PVFC).
func (c *Client) Contribute(ctx context.Context, fed string, n int, body []byte) (*ShareAccepted, error) {
	return c.postBinary(ctx, fmt.Sprintf("/v1/federations/%s/rounds/%d/contributions", fed, n), body)
}

// ReadyToDecrypt declares the calling location live for decrypting round n.
func (c *Client) ReadyToDecrypt(ctx context.Context, fed string, n int) (*wire.Round, error) {
	var out wire.Round
	return &out, c.send(ctx, http.MethodPost, fmt.Sprintf("/v1/federations/%s/rounds/%d/ready", fed, n), nil, nil, &out)
}

// RoundAggregate downloads the sum of round n's contributions (decrypting set only).
func (c *Client) RoundAggregate(ctx context.Context, fed string, n int) ([]byte, error) {
	return c.getBinary(ctx, fmt.Sprintf("/v1/federations/%s/rounds/%d/aggregate", fed, n), maxBinary)
}

// PostDecryptionShare uploads a key-switching share (PVFD).
func (c *Client) PostDecryptionShare(ctx context.Context, fed string, n int, body []byte) (*ShareAccepted, error) {
	return c.postBinary(ctx, fmt.Sprintf("/v1/federations/%s/rounds/%d/decryption-shares", fed, n), body)
}

// RoundResult downloads round n's result, encrypted to the franchisor (tenant admin).
func (c *Client) RoundResult(ctx context.Context, fed string, n int) ([]byte, error) {
	return c.getBinary(ctx, fmt.Sprintf("/v1/federations/%s/rounds/%d/result", fed, n), maxBinary)
}
