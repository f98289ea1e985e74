// Package client is the Go SDK of the Privalytics HTTP API. The CLI and the
// end-to-end tests use it, so it is exercised against the real server.
//
// Bodies are the structs of api/wire, and the package imports only the
// standard library and api/wire, so an application that embeds the SDK does
// not pull in the server. Every call takes a context; answers 429 and 503 are
// retried with backoff, honouring the server's Retry-After (see WithRetry).
// A non-2xx answer is returned as a *wire.Error with the server's code,
// message and details.
package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/privalytics/privalytics/api/wire"
)

// Client talks to one Privalytics server with one API key. It is safe for
// concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
	retry Retry
}

// Option changes a new Client.
type Option func(*Client)

// WithHTTPClient sends requests through hc instead of the default client
// (5-minute timeout, 64 idle connections per host).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithRetry replaces the retry policy; WithRetry(Retry{}) turns retries off.
func WithRetry(r Retry) Option { return func(c *Client) { c.retry = r } }

// New returns a client for the server at baseURL (e.g. "http://127.0.0.1:8080").
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		base:  strings.TrimRight(baseURL, "/"),
		token: token,
		http:  &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		retry: DefaultRetry(),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// WithToken returns a copy of c that uses another API key.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.token = token
	return &cc
}

// Token returns the API key the client sends.
func (c *Client) Token() string { return c.token }

// BaseURL returns the server's base URL.
func (c *Client) BaseURL() string { return c.base }

// CreateTenant creates a tenant (operator key) and returns its first admin key.
func (c *Client) CreateTenant(ctx context.Context, req wire.CreateTenantRequest) (*wire.CreateTenantResponse, error) {
	var out wire.CreateTenantResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/tenants", req, &out)
}

// Tenant returns the caller's own tenant.
func (c *Client) Tenant(ctx context.Context) (*wire.Tenant, error) {
	var out wire.Tenant
	return &out, c.do(ctx, http.MethodGet, "/v1/tenant", nil, &out)
}

// TenantByID returns a tenant by ID (operator, or that tenant's admin).
func (c *Client) TenantByID(ctx context.Context, id string) (*wire.Tenant, error) {
	var out wire.Tenant
	return &out, c.do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(id), nil, &out)
}

// CreateKey issues a key of the caller's tenant (admin key).
func (c *Client) CreateKey(ctx context.Context, name string, role wire.Role) (*wire.IssuedKey, error) {
	var out wire.IssuedKey
	return &out, c.do(ctx, http.MethodPost, "/v1/keys", wire.CreateKeyRequest{Name: name, Role: role}, &out)
}

// Keys lists the caller's tenant's keys (admin key).
func (c *Client) Keys(ctx context.Context) ([]wire.APIKey, error) {
	var out wire.KeyList
	return out.Keys, c.do(ctx, http.MethodGet, "/v1/keys", nil, &out)
}

// Tenants lists every tenant on the server (operator key).
func (c *Client) Tenants(ctx context.Context) ([]wire.Tenant, error) {
	var out wire.TenantList
	return out.Tenants, c.do(ctx, http.MethodGet, "/v1/tenants", nil, &out)
}

// RevokeKey revokes a key of the caller's tenant (admin key).
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/keys/"+url.PathEscape(id), nil, nil)
}

// IngestOptions tune one ingest call.
type IngestOptions struct {
	IdempotencyKey string // makes a retry of the same batch a no-op
	Gzip           bool   // compress the body
}

// Ingest sends a batch of NDJSON (or a JSON array) events. It returns once the
// server has stored them durably.
func (c *Client) Ingest(ctx context.Context, body []byte, opt IngestOptions) (*wire.AppendResult, error) {
	hdr := http.Header{"Content-Type": {"application/x-ndjson"}}
	if opt.IdempotencyKey != "" {
		hdr.Set("Idempotency-Key", opt.IdempotencyKey)
	}
	if opt.Gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(body); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		body = buf.Bytes()
		hdr.Set("Content-Encoding", "gzip")
	}
	var out wire.AppendResult
	return &out, c.send(ctx, http.MethodPost, "/v1/events", hdr, body, &out)
}

// Query runs a DP query; it spends budget unless the answer is cached.
func (c *Client) Query(ctx context.Context, q *wire.Query) (*wire.Result, error) {
	var out wire.Result
	return &out, c.do(ctx, http.MethodPost, "/v1/queries", q, &out)
}

// QueryJSON runs a DP query given as raw JSON.
func (c *Client) QueryJSON(ctx context.Context, q []byte) (*wire.Result, error) {
	var out wire.Result
	return &out, c.send(ctx, http.MethodPost, "/v1/queries", jsonHeader(), q, &out)
}

// Explain says what a query would cost and how precise each aggregate would
// be, without reading data or spending budget.
func (c *Client) Explain(ctx context.Context, q *wire.Query) (*wire.Explanation, error) {
	var out wire.Explanation
	return &out, c.do(ctx, http.MethodPost, "/v1/queries:explain", q, &out)
}

// ExplainWorkload says what a list of queries would cost in total and how
// precise each would be, without reading data or spending budget.
func (c *Client) ExplainWorkload(ctx context.Context, w *wire.Workload) (*wire.WorkloadExplanation, error) {
	var out wire.WorkloadExplanation
	return &out, c.do(ctx, http.MethodPost, "/v1/workloads:explain", w, &out)
}

// ExplainJSON is Explain for a query given as raw JSON.
func (c *Client) ExplainJSON(ctx context.Context, q []byte) (*wire.Explanation, error) {
	var out wire.Explanation
	return &out, c.send(ctx, http.MethodPost, "/v1/queries:explain", jsonHeader(), q, &out)
}

// SQL runs a query written in SQL (BigQuery's differential-privacy clause)
// through POST /v1/sql; it spends budget like Query.
func (c *Client) SQL(ctx context.Context, sql string) (*wire.Result, error) {
	var out wire.Result
	return &out, c.send(ctx, http.MethodPost, "/v1/sql", sqlHeader(), []byte(sql), &out)
}

// ExplainSQL is Explain for a query written in SQL.
func (c *Client) ExplainSQL(ctx context.Context, sql string) (*wire.Explanation, error) {
	var out wire.Explanation
	return &out, c.send(ctx, http.MethodPost, "/v1/sql:explain", sqlHeader(), []byte(sql), &out)
}

func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }
func sqlHeader() http.Header  { return http.Header{"Content-Type": {"text/plain; charset=utf-8"}} }

// Budget returns the tenant's privacy budget.
func (c *Client) Budget(ctx context.Context) (*wire.BudgetStatus, error) {
	var out wire.BudgetResponse
	return &out.BudgetStatus, c.do(ctx, http.MethodGet, "/v1/budget", nil, &out)
}

// KeyBudget returns what the client's key may spend.
func (c *Client) KeyBudget(ctx context.Context) (*wire.KeyBudget, error) {
	var out wire.BudgetResponse
	if err := c.do(ctx, http.MethodGet, "/v1/budget", nil, &out); err != nil {
		return nil, err
	}
	if out.Key == nil {
		return nil, &wire.Error{Code: wire.CodeInternal, Message: "the server's budget answer has no key budget"}
	}
	return out.Key, nil
}

// Allocate gives a key its own share of the tenant's budget (admin key).
func (c *Client) Allocate(ctx context.Context, keyID string, share wire.Cost) (*wire.KeyBudget, error) {
	var out wire.KeyBudget
	return &out, c.do(ctx, http.MethodPut, "/v1/keys/"+url.PathEscape(keyID)+"/budget", share, &out)
}

// Grant raises the tenant's total budget (admin key).
func (c *Client) Grant(ctx context.Context, add wire.Cost) (*wire.BudgetStatus, error) {
	var out wire.BudgetStatus
	return &out, c.do(ctx, http.MethodPost, "/v1/budget/grants", add, &out)
}

func page(path string, offset, limit int) string {
	return path + "?offset=" + strconv.Itoa(offset) + "&limit=" + strconv.Itoa(limit)
}

// BudgetChanges pages through the record of grants and allocations (admin key).
func (c *Client) BudgetChanges(ctx context.Context, offset, limit int) ([]wire.BudgetChange, error) {
	var out wire.BudgetChangePage
	return out.Changes, c.do(ctx, http.MethodGet, page("/v1/budget/changes", offset, limit), nil, &out)
}

// Audit pages through the tenant's audit trail, newest first (admin).
func (c *Client) Audit(ctx context.Context, offset, limit int) ([]wire.AuditEntry, error) {
	var out wire.AuditPage
	return out.Entries, c.do(ctx, http.MethodGet, page("/v1/audit", offset, limit), nil, &out)
}

// Charges pages through the tenant's ledger, newest first.
func (c *Client) Charges(ctx context.Context, offset, limit int) ([]wire.Charge, error) {
	var out wire.ChargePage
	return out.Charges, c.do(ctx, http.MethodGet, page("/v1/budget/charges", offset, limit), nil, &out)
}

// Ready reports whether the server answers /readyz with 200. A server that is
// still starting answers 503, which is not retried here: the caller polls.
func (c *Client) Ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
	if err != nil {
		return err
	}
	return c.once(req, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	hdr := http.Header{}
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
		hdr.Set("Content-Type", "application/json")
	}
	return c.send(ctx, method, path, hdr, body, out)
}

// send performs one request with a body that can be sent again, so that 429
// and 503 answers are retried.
func (c *Client) send(ctx context.Context, method, path string, hdr http.Header, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return c.roundTrip(req, out)
}

// once sends req a single time; a non-2xx answer becomes a *wire.Error.
func (c *Client) once(req *http.Request, out any) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := decodeError(resp.StatusCode, raw)
		e.retryAfter = resp.Header.Get("Retry-After")
		return e
	}
	return decodeBody(resp.Body, out)
}

// decodeBody reads a 2xx answer into out: JSON into a struct, the bytes as
// sent into a *[]byte (CSV exports) or an io.Writer, nothing for nil.
func decodeBody(body io.Reader, out any) error {
	switch o := out.(type) {
	case nil:
		_, _ = io.Copy(io.Discard, body)
		return nil
	case *[]byte:
		var err error
		*o, err = io.ReadAll(body)
		return err
	case io.Writer:
		_, err := io.Copy(o, body)
		return err
	}
	return json.NewDecoder(body).Decode(out)
}

// apiError is a *wire.Error with the Retry-After header of its answer, which
// the retry loop reads; callers see the *wire.Error through errors.As.
type apiError struct {
	err        *wire.Error
	retryAfter string
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

// ErrorCode lets privalytics.ErrorCode read the code without unwrapping.
func (e *apiError) ErrorCode() string { return e.err.Code }

// decodeError turns a non-2xx answer into an error carrying the server's
// code, message and details.
func decodeError(status int, raw []byte) *apiError {
	var eb wire.ErrorBody
	if json.Unmarshal(raw, &eb) != nil || eb.Error.Code == "" {
		return &apiError{err: &wire.Error{Status: status, Code: wire.CodeInternal, Message: fmt.Sprintf("HTTP %d: %s", status, bytes.TrimSpace(raw))}}
	}
	return &apiError{err: &wire.Error{Status: status, Code: eb.Error.Code, Message: eb.Error.Message, Details: eb.Error.Details}}
}

// ImportOptions describe an uploaded file.
type ImportOptions struct {
	Format         string // csv, ndjson or parquet
	Preset         string // a mapping preset, e.g. uci-online-retail
	MappingJSON    string // or a JSON mapping
	IdempotencyKey string
}

// Import uploads a whole file to POST /v1/imports and waits for the server to
// store it. size may be -1 when unknown. The body is streamed, so a 429 or
// 503 answer is returned, not retried.
func (c *Client) Import(ctx context.Context, body io.Reader, size int64, opt ImportOptions) (*wire.ImportReport, error) {
	q := url.Values{"format": {opt.Format}}
	if opt.Preset != "" {
		q.Set("mapping", opt.Preset)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/imports?"+q.Encode(), body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if opt.MappingJSON != "" {
		req.Header.Set("Privalytics-Mapping", strings.Join(strings.Fields(opt.MappingJSON), " "))
	}
	if opt.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", opt.IdempotencyKey)
	}
	var out wire.ImportReport
	return &out, c.roundTrip(req, &out)
}

// RecordConsents sends consent decisions as NDJSON (ingest or admin key); all
// are recorded or none.
func (c *Client) RecordConsents(ctx context.Context, recs []wire.ConsentRecord) (*wire.ConsentsRecorded, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
	}
	hdr := http.Header{"Content-Type": {"application/x-ndjson"}}
	var out wire.ConsentsRecorded
	return &out, c.send(ctx, http.MethodPost, "/v1/consents", hdr, buf.Bytes(), &out)
}

// ConsentStatus returns one customer's consent per purpose and its history (admin).
func (c *Client) ConsentStatus(ctx context.Context, customerID string) (*wire.ConsentStatus, error) {
	var out wire.ConsentStatus
	return &out, c.do(ctx, http.MethodGet, "/v1/consents/"+url.PathEscape(customerID), nil, &out)
}

// PrivacyNotice returns the tenant's privacy notice in format "json",
// "markdown" or "html" (any tenant key).
func (c *Client) PrivacyNotice(ctx context.Context, format string) (string, error) {
	var raw []byte
	err := c.send(ctx, http.MethodGet, "/v1/privacy-notice?format="+url.QueryEscape(format), nil, nil, &raw)
	return string(raw), err
}

// Notice returns the tenant's privacy notice as data (any tenant key).
func (c *Client) Notice(ctx context.Context) (*wire.Notice, error) {
	var out wire.Notice
	return &out, c.do(ctx, http.MethodGet, "/v1/privacy-notice?format=json", nil, &out)
}

// SetPrivacy replaces the tenant's privacy policy (admin).
func (c *Client) SetPrivacy(ctx context.Context, p wire.PrivacyPolicy) (*wire.Tenant, error) {
	var out wire.Tenant
	return &out, c.do(ctx, http.MethodPut, "/v1/tenant/privacy", p, &out)
}

func subjectPath(customerID string) string { return "/v1/subjects/" + url.PathEscape(customerID) }

// ExportSubject returns everything held about one customer (admin key).
// Numbers come back as json.Number, so decimals keep every digit.
func (c *Client) ExportSubject(ctx context.Context, customerID string) (*wire.SubjectExport, error) {
	var raw []byte
	if err := c.send(ctx, http.MethodGet, subjectPath(customerID)+"?format=json", nil, nil, &raw); err != nil {
		return nil, err
	}
	var out wire.SubjectExport
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return &out, dec.Decode(&out)
}

// ExportSubjectCSV returns the same export as CSV.
func (c *Client) ExportSubjectCSV(ctx context.Context, customerID string) ([]byte, error) {
	var raw []byte
	return raw, c.send(ctx, http.MethodGet, subjectPath(customerID)+"?format=csv", nil, nil, &raw)
}

// RectifySubject corrects fields on every event of one customer (admin key).
func (c *Client) RectifySubject(ctx context.Context, customerID string, fields map[string]any) (*wire.ErasureReceipt, error) {
	var out wire.ErasureReceipt
	return &out, c.do(ctx, http.MethodPatch, subjectPath(customerID), rectifyBody{Fields: fields}, &out)
}

// EraseSubject erases one customer (admin key); the receipt is pending until
// compaction has removed the events from disk.
func (c *Client) EraseSubject(ctx context.Context, customerID string) (*wire.ErasureReceipt, error) {
	var out wire.ErasureReceipt
	return &out, c.do(ctx, http.MethodDelete, subjectPath(customerID), nil, &out)
}

// Erasure returns an erasure receipt with its current status.
func (c *Client) Erasure(ctx context.Context, id string) (*wire.ErasureReceipt, error) {
	var out wire.ErasureReceipt
	return &out, c.do(ctx, http.MethodGet, "/v1/erasures/"+url.PathEscape(id), nil, &out)
}

// SetRetention sets the tenant's retention period in days (admin key).
func (c *Client) SetRetention(ctx context.Context, days int) (*wire.Tenant, error) {
	var out wire.Tenant
	return &out, c.do(ctx, http.MethodPut, "/v1/tenant/retention", wire.RetentionRequest{RetentionDays: days}, &out)
}

// RotateDataKey rotates the tenant's data key for encryption at rest (admin key).
func (c *Client) RotateDataKey(ctx context.Context) error {
	var out wire.DataKeyRotated
	if err := c.do(ctx, http.MethodPost, "/v1/tenant/data-keys", nil, &out); err != nil {
		return err
	}
	if !out.Rotated {
		return &wire.Error{Code: wire.CodeInternal, Message: "the server did not confirm the rotation"}
	}
	return nil
}

// ShredTenantEvents crypto-shreds a tenant's events (operator key).
func (c *Client) ShredTenantEvents(ctx context.Context, tenantID string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tenants/"+url.PathEscape(tenantID)+"/events", nil, nil)
}

// rectifyBody is wire.RectifyRequest with values the SDK's caller gives as Go
// values rather than raw JSON.
type rectifyBody struct {
	Fields map[string]any `json:"fields"`
}
