package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"time"

	"github.com/privalytics/privalytics/api/wire"
)

// The encrypted-dataset (processor) routes.

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
			return nil, &wire.Error{Code: wire.CodeInvalid, Message: fmt.Sprintf("job %s failed on the processor: %s", job, st.Error)}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}
