// Package client is the Go SDK of the Privalytics HTTP API. The CLI and the
// end-to-end tests use it, so it is exercised against the real server.
package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

// Client talks to one Privalytics server with one API key.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for the server at baseURL (e.g. "http://127.0.0.1:8080").
func New(baseURL, token string) *Client {
	return &Client{
		base:  strings.TrimRight(baseURL, "/"),
		token: token,
		http:  &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
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

// CreateTenantRequest mirrors api.CreateTenantRequest.
type CreateTenantRequest struct {
	ID         string                     `json:"id"`
	Name       string                     `json:"name,omitempty"`
	Schema     *privalytics.Schema        `json:"schema,omitempty"`
	Budget     privalytics.Cost           `json:"budget"`
	Purposes   []string                   `json:"purposes,omitempty"`
	Period     string                     `json:"period,omitempty"`
	Accounting string                     `json:"accounting,omitempty"`
	Privacy    *privalytics.PrivacyPolicy `json:"privacy,omitempty"`
	// RetentionDays > 0 purges events older than that many days.
	RetentionDays int `json:"retention_days,omitempty"`
}

// IssuedKey is a new key with its token (shown once).
type IssuedKey struct {
	privalytics.APIKey
	Token string `json:"token"`
}

// CreateTenantResponse mirrors api.CreateTenantResponse.
type CreateTenantResponse struct {
	Tenant   *privalytics.Tenant `json:"tenant"`
	AdminKey *IssuedKey          `json:"admin_key"`
}

// CreateTenant creates a tenant (operator key) and returns its first admin key.
func (c *Client) CreateTenant(ctx context.Context, req CreateTenantRequest) (*CreateTenantResponse, error) {
	var out CreateTenantResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/tenants", req, &out)
}

// Tenant returns the caller's own tenant.
func (c *Client) Tenant(ctx context.Context) (*privalytics.Tenant, error) {
	var out privalytics.Tenant
	return &out, c.do(ctx, http.MethodGet, "/v1/tenant", nil, &out)
}

// TenantByID returns a tenant by ID (operator, or that tenant's admin).
func (c *Client) TenantByID(ctx context.Context, id string) (*privalytics.Tenant, error) {
	var out privalytics.Tenant
	return &out, c.do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(id), nil, &out)
}

// CreateKey issues a key of the caller's tenant (admin key).
func (c *Client) CreateKey(ctx context.Context, name string, role privalytics.Role) (*IssuedKey, error) {
	var out IssuedKey
	return &out, c.do(ctx, http.MethodPost, "/v1/keys", map[string]any{"name": name, "role": role}, &out)
}

// Keys lists the caller's tenant's keys (admin key).
func (c *Client) Keys(ctx context.Context) ([]privalytics.APIKey, error) {
	var out struct {
		Keys []privalytics.APIKey `json:"keys"`
	}
	return out.Keys, c.do(ctx, http.MethodGet, "/v1/keys", nil, &out)
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
func (c *Client) Ingest(ctx context.Context, body []byte, opt IngestOptions) (*privalytics.AppendResult, error) {
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
	var out privalytics.AppendResult
	return &out, c.send(ctx, http.MethodPost, "/v1/events", hdr, body, &out)
}

// Query runs a DP query; it spends budget unless the answer is cached.
func (c *Client) Query(ctx context.Context, q *privalytics.Query) (*privalytics.Result, error) {
	var out privalytics.Result
	return &out, c.do(ctx, http.MethodPost, "/v1/queries", q, &out)
}

// QueryJSON runs a DP query given as raw JSON.
func (c *Client) QueryJSON(ctx context.Context, q []byte) (*privalytics.Result, error) {
	var out privalytics.Result
	return &out, c.send(ctx, http.MethodPost, "/v1/queries", http.Header{"Content-Type": {"application/json"}}, q, &out)
}

// SQL runs a query written in SQL (BigQuery's differential-privacy clause)
// through POST /v1/sql; it spends budget like Query.
func (c *Client) SQL(ctx context.Context, sql string) (*privalytics.Result, error) {
	var out privalytics.Result
	return &out, c.send(ctx, http.MethodPost, "/v1/sql", http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, []byte(sql), &out)
}

// Budget returns the tenant's privacy budget.
func (c *Client) Budget(ctx context.Context) (*privalytics.BudgetStatus, error) {
	var out privalytics.BudgetStatus
	return &out, c.do(ctx, http.MethodGet, "/v1/budget", nil, &out)
}

// KeyBudget returns what the client's key may spend.
func (c *Client) KeyBudget(ctx context.Context) (*privalytics.KeyBudget, error) {
	var out struct {
		Key privalytics.KeyBudget `json:"key"`
	}
	return &out.Key, c.do(ctx, http.MethodGet, "/v1/budget", nil, &out)
}

// Allocate gives a key its own share of the tenant's budget (admin key).
func (c *Client) Allocate(ctx context.Context, keyID string, share privalytics.Cost) (*privalytics.KeyBudget, error) {
	var out privalytics.KeyBudget
	return &out, c.do(ctx, http.MethodPut, "/v1/keys/"+url.PathEscape(keyID)+"/budget", share, &out)
}

// Grant raises the tenant's total budget (admin key).
func (c *Client) Grant(ctx context.Context, add privalytics.Cost) (*privalytics.BudgetStatus, error) {
	var out privalytics.BudgetStatus
	return &out, c.do(ctx, http.MethodPost, "/v1/budget/grants", add, &out)
}

// BudgetChanges pages through the record of grants and allocations (admin key).
func (c *Client) BudgetChanges(ctx context.Context, offset, limit int) ([]privalytics.BudgetChange, error) {
	var out struct {
		Changes []privalytics.BudgetChange `json:"changes"`
	}
	path := "/v1/budget/changes?offset=" + strconv.Itoa(offset) + "&limit=" + strconv.Itoa(limit)
	return out.Changes, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Audit pages through the tenant's audit trail, newest first (admin).
func (c *Client) Audit(ctx context.Context, offset, limit int) ([]privalytics.AuditEntry, error) {
	var out struct {
		Entries []privalytics.AuditEntry `json:"entries"`
	}
	path := "/v1/audit?offset=" + strconv.Itoa(offset) + "&limit=" + strconv.Itoa(limit)
	return out.Entries, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Charges pages through the tenant's ledger, newest first.
func (c *Client) Charges(ctx context.Context, offset, limit int) ([]privalytics.Charge, error) {
	var out struct {
		Charges []privalytics.Charge `json:"charges"`
	}
	path := "/v1/budget/charges?offset=" + strconv.Itoa(offset) + "&limit=" + strconv.Itoa(limit)
	return out.Charges, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Ready reports whether the server answers /readyz with 200.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil)
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

// send performs one request.
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
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.roundTrip(req, out)
}

// roundTrip sends req; a non-2xx answer becomes a *privalytics.Error with the
// server's code, message and details.
func (c *Client) roundTrip(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return decodeError(resp.StatusCode, raw)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if raw, ok := out.(*[]byte); ok { // the body as sent (CSV exports)
		var err error
		*raw, err = io.ReadAll(resp.Body)
		return err
	}
	if w, ok := out.(io.Writer); ok {
		_, err := io.Copy(w, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// decodeError turns a non-2xx answer into a *privalytics.Error with the
// server's code, message and details.
func decodeError(status int, raw []byte) error {
	var eb struct {
		Error struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &eb) != nil || eb.Error.Code == "" {
		return &privalytics.Error{Code: privalytics.EINTERNAL, Message: fmt.Sprintf("HTTP %d: %s", status, bytes.TrimSpace(raw))}
	}
	return &privalytics.Error{Code: eb.Error.Code, Message: eb.Error.Message, Details: eb.Error.Details}
}

// ImportOptions describe an uploaded file.
type ImportOptions struct {
	Format         string // csv, ndjson or parquet
	Preset         string // a mapping preset, e.g. uci-online-retail
	MappingJSON    string // or a JSON mapping
	IdempotencyKey string
}

// ImportReport is the server's account of an import.
type ImportReport struct {
	Rows           int            `json:"rows"`
	Skipped        int            `json:"skipped"`
	SkippedReasons map[string]int `json:"skipped_reasons,omitempty"`
	Batches        int            `json:"batches"`
	Seconds        float64        `json:"seconds"`
}

// Import uploads a whole file to POST /v1/imports and waits for the server to
// store it. size may be -1 when unknown.
func (c *Client) Import(ctx context.Context, body io.Reader, size int64, opt ImportOptions) (*ImportReport, error) {
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
	req.Header.Set("Authorization", "Bearer "+c.token)
	if opt.MappingJSON != "" {
		req.Header.Set("Privalytics-Mapping", strings.Join(strings.Fields(opt.MappingJSON), " "))
	}
	if opt.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", opt.IdempotencyKey)
	}
	var out ImportReport
	return &out, c.roundTrip(req, &out)
}

// ConsentRecord mirrors api.ConsentRecord: one customer's decision for one purpose.
type ConsentRecord struct {
	CustomerID string     `json:"customer_id"`
	Purpose    string     `json:"purpose"`
	Granted    bool       `json:"granted"`
	Time       *time.Time `json:"time,omitempty"`
	Source     string     `json:"source,omitempty"`
}

// ConsentsRecorded mirrors api.ConsentsRecorded.
type ConsentsRecorded struct {
	Recorded int   `json:"recorded"`
	Version  int64 `json:"version"`
}

// RecordConsents sends consent decisions as NDJSON (ingest or admin key); all
// are recorded or none.
func (c *Client) RecordConsents(ctx context.Context, recs []ConsentRecord) (*ConsentsRecorded, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/x-ndjson")
	var out ConsentsRecorded
	return &out, c.send(ctx, http.MethodPost, "/v1/consents", hdr, buf.Bytes(), &out)
}

// PurposeConsent mirrors api.PurposeConsent.
type PurposeConsent struct {
	Policy  string `json:"policy"`
	Granted bool   `json:"granted"`
}

// ConsentStatus mirrors api.ConsentStatus.
type ConsentStatus struct {
	Purposes map[string]PurposeConsent `json:"purposes"`
	History  []privalytics.Consent     `json:"history"`
}

// ConsentStatus returns one customer's consent per purpose and its history (admin).
func (c *Client) ConsentStatus(ctx context.Context, customerID string) (*ConsentStatus, error) {
	var out ConsentStatus
	return &out, c.do(ctx, http.MethodGet, "/v1/consents/"+url.PathEscape(customerID), nil, &out)
}

// PrivacyNotice returns the tenant's privacy notice in format "json",
// "markdown" or "html" (any tenant key).
func (c *Client) PrivacyNotice(ctx context.Context, format string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/privacy-notice?format="+url.QueryEscape(format), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	var raw json.RawMessage
	if format == "json" {
		err = c.roundTrip(req, &raw)
		return string(raw), err
	}
	var buf bytes.Buffer
	err = c.roundTrip(req, &buf)
	return buf.String(), err
}

// SetPrivacy replaces the tenant's privacy policy (admin).
func (c *Client) SetPrivacy(ctx context.Context, p privalytics.PrivacyPolicy) (*privalytics.Tenant, error) {
	var out privalytics.Tenant
	return &out, c.do(ctx, http.MethodPut, "/v1/tenant/privacy", p, &out)
}

// The processor role's bodies (api/wire/he.go).
type (
	// HEDataset is an encrypted dataset on a processor.
	HEDataset = wire.HEDataset
	// HEJobSpec is one statistic over an encrypted dataset.
	HEJobSpec = wire.HEJobSpec
	// HEJob is a job's status.
	HEJob = wire.HEJob
)

// UploadHEDataset streams evaluation keys and an encrypted table of tableSize
// bytes to POST /v1/he/datasets as multipart/form-data (part "keys", then
// part "table"), with an exact Content-Length so the processor can refuse an
// oversized upload before reading it (tableSize -1: unknown, sent chunked).
func (c *Client) UploadHEDataset(ctx context.Context, keys []byte, table io.Reader, tableSize int64) (*HEDataset, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if _, err := mw.CreateFormFile("keys", "eval.keys"); err != nil {
		return nil, err
	}
	keysHead := bytes.Clone(buf.Bytes())
	buf.Reset()
	if _, err := mw.CreateFormFile("table", "table.pvht"); err != nil {
		return nil, err
	}
	tableHead := bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, err
	}
	tail := bytes.Clone(buf.Bytes())
	body := io.MultiReader(bytes.NewReader(keysHead), bytes.NewReader(keys), bytes.NewReader(tableHead), table, bytes.NewReader(tail))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/he/datasets", body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = -1
	if tableSize >= 0 {
		req.ContentLength = int64(len(keysHead)+len(keys)+len(tableHead)+len(tail)) + tableSize
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+c.token)
	var out HEDataset
	return &out, c.roundTrip(req, &out)
}

// HEDatasetInfo returns an encrypted dataset's description.
func (c *Client) HEDatasetInfo(ctx context.Context, id string) (*HEDataset, error) {
	var out HEDataset
	return &out, c.do(ctx, http.MethodGet, "/v1/he/datasets/"+url.PathEscape(id), nil, &out)
}

// DeleteHEDataset frees an encrypted dataset and its results on the processor.
func (c *Client) DeleteHEDataset(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/he/datasets/"+url.PathEscape(id), nil, nil)
}

// SubmitHEJob queues a job; the processor checks it against the keys and the
// declared bounds first (400 for a job that could wrap or overflow).
func (c *Client) SubmitHEJob(ctx context.Context, dataset string, job HEJobSpec) (*HEJob, error) {
	var out HEJob
	return &out, c.do(ctx, http.MethodPost, "/v1/he/datasets/"+url.PathEscape(dataset)+"/jobs", job, &out)
}

// HEJobStatus returns a job's status.
func (c *Client) HEJobStatus(ctx context.Context, dataset, job string) (*HEJob, error) {
	var out HEJob
	return &out, c.do(ctx, http.MethodGet, "/v1/he/datasets/"+url.PathEscape(dataset)+"/jobs/"+url.PathEscape(job), nil, &out)
}

// HEJobResult downloads a finished job's encrypted result (he/FORMAT.md).
func (c *Client) HEJobResult(ctx context.Context, dataset, job string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/he/datasets/"+url.PathEscape(dataset)+"/jobs/"+url.PathEscape(job)+"/result", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	var out bytes.Buffer
	if err := c.roundTrip(req, &out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// WaitHEJob polls a job until it is done or failed and returns its result.
func (c *Client) WaitHEJob(ctx context.Context, dataset, job string) ([]byte, error) {
	wait := 10 * time.Millisecond
	for {
		st, err := c.HEJobStatus(ctx, dataset, job)
		if err != nil {
			return nil, err
		}
		switch st.Status {
		case "done":
			return c.HEJobResult(ctx, dataset, job)
		case "failed":
			return nil, privalytics.Errorf(privalytics.EINVALID, "job %s failed on the processor: %s", job, st.Error)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// SubjectExport mirrors api.SubjectExport: one customer's events.
type SubjectExport struct {
	Tenant     string           `json:"tenant"`
	CustomerID string           `json:"customer_id"`
	ExportedAt time.Time        `json:"exported_at"`
	Rows       int              `json:"rows"`
	Columns    []string         `json:"columns"`
	Events     []map[string]any `json:"events"`
}

func subjectPath(customerID string) string { return "/v1/subjects/" + url.PathEscape(customerID) }

// ExportSubject returns everything held about one customer (admin key).
// Numbers come back as json.Number, so decimals keep every digit.
func (c *Client) ExportSubject(ctx context.Context, customerID string) (*SubjectExport, error) {
	var raw []byte
	if err := c.send(ctx, http.MethodGet, subjectPath(customerID)+"?format=json", nil, nil, &raw); err != nil {
		return nil, err
	}
	var out SubjectExport
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
func (c *Client) RectifySubject(ctx context.Context, customerID string, fields map[string]any) (*privalytics.ErasureReceipt, error) {
	var out privalytics.ErasureReceipt
	return &out, c.do(ctx, http.MethodPatch, subjectPath(customerID), map[string]any{"fields": fields}, &out)
}

// EraseSubject erases one customer (admin key); the receipt is pending until
// compaction has removed the events from disk.
func (c *Client) EraseSubject(ctx context.Context, customerID string) (*privalytics.ErasureReceipt, error) {
	var out privalytics.ErasureReceipt
	return &out, c.do(ctx, http.MethodDelete, subjectPath(customerID), nil, &out)
}

// Erasure returns an erasure receipt with its current status.
func (c *Client) Erasure(ctx context.Context, id string) (*privalytics.ErasureReceipt, error) {
	var out privalytics.ErasureReceipt
	return &out, c.do(ctx, http.MethodGet, "/v1/erasures/"+url.PathEscape(id), nil, &out)
}

// SetRetention sets the tenant's retention period in days (admin key).
func (c *Client) SetRetention(ctx context.Context, days int) (*privalytics.Tenant, error) {
	var out privalytics.Tenant
	return &out, c.do(ctx, http.MethodPut, "/v1/tenant/retention", map[string]int{"retention_days": days}, &out)
}

// RotateDataKey rotates the tenant's data key for encryption at rest (admin key).
func (c *Client) RotateDataKey(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/tenant/data-keys", nil, nil)
}

// ShredTenantEvents crypto-shreds a tenant's events (operator key).
func (c *Client) ShredTenantEvents(ctx context.Context, tenantID string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tenants/"+url.PathEscape(tenantID)+"/events", nil, nil)
}
