package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/privalytics/privalytics/api/wire"
)

// ListModels lists the tenant's models, the latest version of each.
func (c *Client) ListModels(ctx context.Context) (*wire.ModelList, error) {
	var out wire.ModelList
	return &out, c.do(ctx, http.MethodGet, "/v1/models", nil, &out)
}

// Model returns version v of a model (0: the latest).
func (c *Client) Model(ctx context.Context, name string, v int) (*wire.Model, error) {
	path := "/v1/models/" + url.PathEscape(name)
	if v > 0 {
		path += fmt.Sprintf("?version=%d", v)
	}
	var out wire.Model
	return &out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// UploadModel stores a model file as the next version of name (tenant admin).
func (c *Client) UploadModel(ctx context.Context, name string, m wire.Model) (*wire.Model, error) {
	var out wire.Model
	return &out, c.do(ctx, http.MethodPost, "/v1/models/"+url.PathEscape(name), m, &out)
}

// CreateFairnessAudit runs a DP bias audit of predictions; it is charged.
func (c *Client) CreateFairnessAudit(ctx context.Context, req wire.FairnessAuditRequest) (*wire.FairnessAudit, error) {
	var out wire.FairnessAudit
	return &out, c.do(ctx, http.MethodPost, "/v1/fairness-audits", req, &out)
}

// FairnessAudit returns a stored audit.
func (c *Client) FairnessAudit(ctx context.Context, id string) (*wire.FairnessAudit, error) {
	var out wire.FairnessAudit
	return &out, c.do(ctx, http.MethodGet, "/v1/fairness-audits/"+url.PathEscape(id), nil, &out)
}
