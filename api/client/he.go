package client

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"time"

	"github.com/privalytics/privalytics"
)

// The encrypted-dataset (processor) routes, moved here unchanged from
// client.go; the HE and federation bodies move to api/wire with the HE work.

// HEDataset mirrors api.HEDatasetResponse: an encrypted dataset on a processor.
type HEDataset struct {
	ID      string `json:"id"`
	Preset  string `json:"preset"`
	Rows    int64  `json:"rows"`
	Columns []struct {
		Name     string  `json:"name"`
		Kind     string  `json:"kind"`
		Min      float64 `json:"min"`
		Max      float64 `json:"max"`
		Group    string  `json:"group,omitempty"`
		Category string  `json:"category,omitempty"`
	} `json:"columns"`
	Ops     []string  `json:"ops"`
	Bytes   int64     `json:"bytes"`
	Created time.Time `json:"created"`
}

// HEJobSpec mirrors he.Job: one statistic over an encrypted dataset.
type HEJobSpec struct {
	Op      string   `json:"op"`
	Column  string   `json:"column,omitempty"`
	Group   string   `json:"group,omitempty"`
	Columns []string `json:"columns,omitempty"`
	Target  string   `json:"target,omitempty"`
}

// HEJob mirrors api.HEJobResponse.
type HEJob struct {
	ID          string     `json:"id"`
	Dataset     string     `json:"dataset"`
	Job         HEJobSpec  `json:"job"`
	Status      string     `json:"status"` // queued, running, done, failed
	Error       string     `json:"error,omitempty"`
	ResultBytes int        `json:"result_bytes,omitempty"`
	Created     time.Time  `json:"created"`
	Finished    *time.Time `json:"finished,omitempty"`
}

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
