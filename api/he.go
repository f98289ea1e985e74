package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/he"
)

// The processor role (serve --role processor): a data owner uploads an
// encrypted table with its evaluation keys, runs jobs on it and downloads the
// encrypted results. The server never holds a secret key and cannot decrypt;
// what it sees is the table header (preset, column names and bounds, declared
// categories, row count), sizes and job types (README, "Encrypted analytics").

// HELimits bound the processor's memory and CPU.
type HELimits struct {
	// Enabled turns the processor routes on; otherwise they answer 404.
	Enabled bool
	// MaxUploadBytes is the largest POST /v1/he/datasets body (keys and
	// table); 413 above.
	MaxUploadBytes int64
	// MaxHeldBytes is the most bytes of datasets (keys, tables, results) held
	// in memory at once; an upload that could exceed it gets 503 until a
	// dataset is deleted.
	MaxHeldBytes int64
	// ConcurrentJobs is how many jobs compute at once; more wait in line.
	ConcurrentJobs int
	// MaxJobsPerDataset bounds the results kept per dataset.
	MaxJobsPerDataset int
}

// DefaultHELimits are the documented defaults (processor off).
func DefaultHELimits() HELimits {
	return HELimits{MaxUploadBytes: 1 << 30, MaxHeldBytes: 4 << 30, ConcurrentJobs: max(1, runtime.GOMAXPROCS(0)), MaxJobsPerDataset: 256}
}

// heState is the processor's in-memory state. Datasets do not survive a
// restart: the owner uploads again (the table file is the durable copy).
type heState struct {
	mu       sync.Mutex
	datasets map[string]*heDataset // tenant + "/" + dataset ID
	held     int64                 // bytes reserved by datasets and uploads in flight
	slots    chan struct{}         // one token per concurrently computing job
}

// heDataset is one uploaded table with its processor, built once from the
// evaluation keys (keys are large; jobs share them read-only, and each job
// runs on its own shallow copy of the Lattigo evaluator).
type heDataset struct {
	ID      string
	Tenant  string
	Table   *he.Table
	Proc    *he.Processor
	Ops     []he.Op
	Bytes   int64
	Created time.Time

	mu   sync.Mutex
	jobs map[string]*heJob
	ids  []string // job IDs in submission order
}

type heJob struct {
	ID       string
	Job      he.Job
	Status   string // queued, running, done, failed
	Err      error
	Result   []byte
	Created  time.Time
	Finished time.Time
}

// HEDatasetResponse describes an uploaded dataset.
type HEDatasetResponse struct {
	ID      string          `json:"id"`
	Preset  string          `json:"preset"`
	Rows    int64           `json:"rows"`
	Columns []he.ColumnSpec `json:"columns"`
	Ops     []he.Op         `json:"ops"`
	Bytes   int64           `json:"bytes"`
	Created time.Time       `json:"created"`
}

// HEJobResponse is a job's status.
type HEJobResponse struct {
	ID          string     `json:"id"`
	Dataset     string     `json:"dataset"`
	Job         he.Job     `json:"job"`
	Status      string     `json:"status"`
	Error       string     `json:"error,omitempty"`
	ResultBytes int        `json:"result_bytes,omitempty"`
	Created     time.Time  `json:"created"`
	Finished    *time.Time `json:"finished,omitempty"`
}

func newHEState(l HELimits) *heState {
	return &heState{datasets: map[string]*heDataset{}, slots: make(chan struct{}, max(1, l.ConcurrentJobs))}
}

func (s *Server) heEnabled(c *gin.Context) {
	if !s.heLimits.Enabled {
		s.writeError(c, privalytics.Errorf(privalytics.ENOTFOUND, "this server is not a processor; encrypted datasets go to a server started with --role processor"))
		return
	}
	c.Next()
}

// reserve claims n bytes of the held-memory budget.
func (s *Server) heReserve(n int64) error {
	st := s.he
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.held+n > s.heLimits.MaxHeldBytes {
		return privalytics.Errorf(privalytics.EUNAVAILABLE, "the processor holds %d of its %d bytes of datasets; delete finished datasets (DELETE /v1/he/datasets/{dataset}) or retry later", st.held, s.heLimits.MaxHeldBytes).
			With("held_bytes", st.held).With("max_held_bytes", s.heLimits.MaxHeldBytes)
	}
	st.held += n
	return nil
}

func (s *Server) heRelease(n int64) {
	s.he.mu.Lock()
	s.he.held -= n
	s.he.mu.Unlock()
}

// limitedBody counts what is read and remembers whether the upload limit was
// hit, so that the 413 survives decoders that wrap the error.
type limitedBody struct {
	r     io.Reader
	n     int64
	limit int64
	over  bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.n >= l.limit {
		// Allow one byte past the limit to tell "exactly at" from "over".
		if len(p) > 1 {
			p = p[:1]
		}
	} else if rem := l.limit + 1 - l.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.limit {
		l.over = true
		return n, errOverLimit
	}
	return n, err
}

var errOverLimit = errors.New("upload over the limit")

func (s *Server) tooLarge() error {
	return privalytics.Errorf(privalytics.ETOOLARGE, "the upload is over the processor's limit of %d bytes; split the table by rows (encrypt several files) or ask the operator to raise --he-max-upload-bytes", s.heLimits.MaxUploadBytes).
		With("max_upload_bytes", s.heLimits.MaxUploadBytes)
}

var errSecretKey = privalytics.Errorf(privalytics.EINVALID, "this is a secret key (PVHK…): a processor never takes one. Keep secret.key on the owner's machine and send eval.keys from `privalytics he keygen`")

// createHEDataset reads a multipart body — part "keys" (eval.keys) first, then
// part "table" (the encrypted table), streamed into the decoder — and keeps the
// dataset in memory with a processor built once from the keys.
func (s *Server) createHEDataset(c *gin.Context) {
	tenant := callerOf(c).Key.TenantID
	lim := s.heLimits.MaxUploadBytes
	if c.Request.ContentLength > lim {
		s.writeError(c, s.tooLarge())
		return
	}
	reserve := lim
	if c.Request.ContentLength > 0 {
		reserve = c.Request.ContentLength
	}
	if err := s.heReserve(reserve); err != nil {
		s.writeError(c, err)
		return
	}
	kept := false
	defer func() {
		if !kept {
			s.heRelease(reserve)
		}
	}()
	body := &limitedBody{r: c.Request.Body, limit: lim}
	ds, err := s.readHEUpload(c, body)
	if body.over {
		err = s.tooLarge()
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	ds.Tenant, ds.Created, ds.Bytes = tenant, s.now().UTC(), body.n
	ds.ID = "hds_" + randomHex(12)
	s.he.mu.Lock()
	s.he.datasets[tenant+"/"+ds.ID] = ds
	s.he.held += body.n - reserve
	s.he.mu.Unlock()
	kept = true
	s.log.Info("he dataset stored", slog.String("request_id", requestID(c)), slog.String("tenant", tenant), slog.String("dataset", ds.ID),
		slog.String("preset", ds.Table.Header.Preset.Name), slog.Int64("rows", ds.Table.Header.Rows), slog.Int64("bytes", body.n))
	c.JSON(http.StatusCreated, datasetResponse(ds))
}

func (s *Server) readHEUpload(c *gin.Context, body io.Reader) (*heDataset, error) {
	mt, params, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		// Whatever it is, say so clearly if it is a secret key.
		br := bufio.NewReader(body)
		if head, _ := br.Peek(8); he.LooksLikeSecretKey(head) {
			return nil, errSecretKey
		}
		return nil, privalytics.Errorf(privalytics.EUNSUPPORTED, "send multipart/form-data with part \"keys\" (eval.keys) then part \"table\" (the encrypted table); `privalytics he upload` does this")
	}
	mr := multipart.NewReader(body, params["boundary"])
	var evk *he.EvaluationKeys
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "multipart body: %v", err)
		}
		br := bufio.NewReaderSize(part, 1<<20)
		head, _ := br.Peek(8)
		if he.LooksLikeSecretKey(head) {
			return nil, errSecretKey
		}
		switch part.FormName() {
		case "keys":
			if evk != nil {
				return nil, privalytics.Errorf(privalytics.EINVALID, "part \"keys\" appears twice; send one set of evaluation keys per dataset")
			}
			raw, err := io.ReadAll(br)
			if err != nil {
				return nil, privalytics.Errorf(privalytics.EINVALID, "part \"keys\": %v", err)
			}
			evk = new(he.EvaluationKeys)
			if err := evk.UnmarshalBinary(raw); err != nil {
				return nil, privalytics.Errorf(privalytics.ErrorCode(err), "part \"keys\": %s", privalytics.ErrorMessage(err))
			}
		case "table":
			if evk == nil {
				return nil, privalytics.Errorf(privalytics.EINVALID, "part \"keys\" must come before part \"table\" so the table can be checked against them while it streams")
			}
			tr, err := he.NewTableReader(br)
			if err != nil {
				return nil, err
			}
			h := tr.Header()
			if h.Preset.Name != evk.Preset.Name {
				return nil, privalytics.Errorf(privalytics.EINVALID, "the table is encrypted under preset %q but the evaluation keys are for %q; upload the eval.keys made with the table's keys", h.Preset.Name, evk.Preset.Name)
			}
			proc, err := he.NewProcessor(evk)
			if err != nil {
				return nil, err
			}
			tab := &he.Table{Header: h, Blocks: make([][]*rlwe.Ciphertext, 0, min(h.Blocks(), 1<<16))}
			for {
				if err := c.Request.Context().Err(); err != nil {
					return nil, err
				}
				blk, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					return nil, err
				}
				tab.Blocks = append(tab.Blocks, blk)
			}
			if n, _ := io.ReadFull(br, make([]byte, 1)); n > 0 {
				return nil, privalytics.Errorf(privalytics.EINVALID, "bytes follow the last of the table's %d blocks; the file is corrupt or two tables were joined", h.Blocks())
			}
			return &heDataset{Table: tab, Proc: proc, Ops: evk.Ops, jobs: map[string]*heJob{}}, nil
		default:
			return nil, privalytics.Errorf(privalytics.EINVALID, "unexpected part %q; send part \"keys\" then part \"table\"", part.FormName())
		}
	}
	return nil, privalytics.Errorf(privalytics.EINVALID, "the body has no part \"table\"; send part \"keys\" then part \"table\"")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func datasetResponse(ds *heDataset) HEDatasetResponse {
	h := ds.Table.Header
	return HEDatasetResponse{ID: ds.ID, Preset: h.Preset.Name, Rows: h.Rows, Columns: h.Columns, Ops: ds.Ops, Bytes: ds.Bytes, Created: ds.Created}
}

func (s *Server) heDataset(c *gin.Context) (*heDataset, error) {
	s.he.mu.Lock()
	defer s.he.mu.Unlock()
	ds, ok := s.he.datasets[callerOf(c).Key.TenantID+"/"+c.Param("dataset")]
	if !ok {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no encrypted dataset %q; datasets live in the processor's memory and are gone after a restart — upload it again", c.Param("dataset"))
	}
	return ds, nil
}

func (s *Server) getHEDataset(c *gin.Context) {
	ds, err := s.heDataset(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, datasetResponse(ds))
}

func (s *Server) deleteHEDataset(c *gin.Context) {
	ds, err := s.heDataset(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.he.mu.Lock()
	if _, ok := s.he.datasets[ds.Tenant+"/"+ds.ID]; ok {
		delete(s.he.datasets, ds.Tenant+"/"+ds.ID)
		s.he.held -= ds.Bytes
	}
	s.he.mu.Unlock()
	ds.mu.Lock()
	for _, j := range ds.jobs {
		s.heRelease(int64(len(j.Result)))
	}
	ds.jobs = map[string]*heJob{}
	ds.mu.Unlock()
	c.Status(http.StatusNoContent)
}

// createHEJob checks the job against the keys and the header (wrap-around,
// overflow, operations the keys allow) and queues it; 202 with its ID.
func (s *Server) createHEJob(c *gin.Context) {
	ds, err := s.heDataset(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	var job he.Job
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &job); err != nil {
		s.writeError(c, err)
		return
	}
	if err := ds.Proc.Check(ds.Table.Header, job); err != nil {
		s.writeError(c, err)
		return
	}
	ds.mu.Lock()
	if len(ds.jobs) >= s.heLimits.MaxJobsPerDataset {
		ds.mu.Unlock()
		s.writeError(c, privalytics.Errorf(privalytics.ECONFLICT, "dataset %s already has %d jobs, the most kept; download their results and upload the table again for more", ds.ID, len(ds.jobs)))
		return
	}
	j := &heJob{ID: "hjb_" + randomHex(8), Job: job, Status: "queued", Created: s.now().UTC()}
	ds.jobs[j.ID] = j
	ds.ids = append(ds.ids, j.ID)
	resp := jobResponse(ds, j)
	ds.mu.Unlock()
	go s.runHEJob(ds, j)
	c.JSON(http.StatusAccepted, resp)
}

// runHEJob computes one job when a slot is free. Each job gets its own
// evaluator copy inside Processor.Run; the table and keys are only read.
func (s *Server) runHEJob(ds *heDataset, j *heJob) {
	s.he.slots <- struct{}{}
	defer func() { <-s.he.slots }()
	ds.mu.Lock()
	j.Status = "running"
	ds.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	res, err := ds.Proc.Run(ctx, ds.Table, j.Job)
	var b []byte
	if err == nil {
		b, err = res.MarshalBinary()
	}
	if err == nil {
		err = s.heReserve(int64(len(b)))
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	j.Finished = s.now().UTC()
	if err != nil {
		j.Status, j.Err = "failed", err
		return
	}
	if _, live := ds.jobs[j.ID]; !live { // the dataset was deleted meanwhile
		s.heRelease(int64(len(b)))
		return
	}
	j.Status, j.Result = "done", b
}

func jobResponse(ds *heDataset, j *heJob) HEJobResponse {
	r := HEJobResponse{ID: j.ID, Dataset: ds.ID, Job: j.Job, Status: j.Status, ResultBytes: len(j.Result), Created: j.Created}
	if j.Err != nil {
		r.Error = privalytics.ErrorMessage(j.Err)
	}
	if !j.Finished.IsZero() {
		f := j.Finished
		r.Finished = &f
	}
	return r
}

func (s *Server) heJob(c *gin.Context) (*heDataset, *heJob, error) {
	ds, err := s.heDataset(c)
	if err != nil {
		return nil, nil, err
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	j, ok := ds.jobs[c.Param("job")]
	if !ok {
		return nil, nil, privalytics.Errorf(privalytics.ENOTFOUND, "dataset %s has no job %q", ds.ID, c.Param("job"))
	}
	return ds, j, nil
}

func (s *Server) getHEJob(c *gin.Context) {
	ds, j, err := s.heJob(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ds.mu.Lock()
	resp := jobResponse(ds, j)
	ds.mu.Unlock()
	c.JSON(http.StatusOK, resp)
}

// getHEJobResult sends the encrypted result (he/FORMAT.md, "Result"). A job
// still running gets 409 with Retry-After; a failed job gets its error.
func (s *Server) getHEJobResult(c *gin.Context) {
	ds, j, err := s.heJob(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ds.mu.Lock()
	status, jerr, b := j.Status, j.Err, j.Result
	ds.mu.Unlock()
	switch status {
	case "done":
		c.Header("Cache-Control", "no-store")
		c.Data(http.StatusOK, "application/octet-stream", b)
	case "failed":
		s.writeError(c, jerr)
	default:
		c.Header("Retry-After", "1")
		s.writeError(c, privalytics.Errorf(privalytics.ECONFLICT, "job %s is %s; poll GET /v1/he/datasets/%s/jobs/%s and download when it is done", j.ID, status, ds.ID, j.ID).With("status", status))
	}
}
