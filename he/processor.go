package he

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"runtime"
	"sync"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/privalytics/privalytics"
)

// The processor role (serve --role processor) holds owners' encrypted tables
// in memory and runs jobs on them. Datasets is that state: the datasets, their
// jobs, the goroutines computing them and every limit on memory and CPU, in
// one place. It never holds a secret key and cannot decrypt; what it sees is
// the table header (preset, column names and bounds, declared categories, row
// count), sizes and job types. Datasets do not survive a restart: the owner
// uploads again (the table file is the durable copy).

// Limits bound the processor's memory and CPU.
type Limits struct {
	// Enabled turns the processor on; otherwise its routes answer 404.
	Enabled bool
	// MaxUploadBytes is the largest upload (keys and table); ETOOLARGE above.
	MaxUploadBytes int64
	// MaxHeldBytes is the most bytes of datasets (keys, tables, results) held
	// in memory at once; an upload that could exceed it gets EUNAVAILABLE
	// until a dataset is deleted.
	MaxHeldBytes int64
	// ConcurrentJobs is how many jobs compute at once; more wait in line.
	ConcurrentJobs int
	// MaxJobsPerDataset bounds the results kept per dataset.
	MaxJobsPerDataset int
	// JobTimeout bounds one job's computation.
	JobTimeout time.Duration
}

// DefaultLimits are the documented defaults (processor off).
func DefaultLimits() Limits {
	return Limits{MaxUploadBytes: 1 << 30, MaxHeldBytes: 4 << 30, ConcurrentJobs: max(1, runtime.GOMAXPROCS(0)), MaxJobsPerDataset: 256, JobTimeout: 30 * time.Minute}
}

// withDefaults fills the zero fields of l from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxUploadBytes == 0 {
		l.MaxUploadBytes = d.MaxUploadBytes
	}
	if l.MaxHeldBytes == 0 {
		l.MaxHeldBytes = d.MaxHeldBytes
	}
	if l.ConcurrentJobs == 0 {
		l.ConcurrentJobs = d.ConcurrentJobs
	}
	if l.MaxJobsPerDataset == 0 {
		l.MaxJobsPerDataset = d.MaxJobsPerDataset
	}
	if l.JobTimeout == 0 {
		l.JobTimeout = d.JobTimeout
	}
	return l
}

// Job states.
const (
	JobQueued  = "queued"
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// Datasets is the processor's state. Safe for concurrent use; Close cancels
// the jobs in flight and waits for their goroutines.
type Datasets struct {
	limits Limits
	now    func() time.Time

	mu       sync.Mutex
	datasets map[string]*heldDataset // tenant + "/" + dataset ID
	held     int64                   // bytes reserved by datasets and uploads in flight
	closed   bool

	slots  chan struct{} // one token per concurrently computing job
	ctx    context.Context
	cancel context.CancelFunc
	jobs   sync.WaitGroup
}

// heldDataset is one uploaded table with its evaluator, built once from the
// evaluation keys (keys are large; jobs share them read-only, and each job
// runs on its own shallow copy of the Lattigo evaluator).
type heldDataset struct {
	info  DatasetInfo
	table *Table
	proc  *Processor

	mu   sync.Mutex
	jobs map[string]*job
}

type job struct {
	info   JobInfo
	err    error
	result []byte
}

// DatasetInfo describes an uploaded dataset: only what its header shows.
type DatasetInfo struct {
	ID      string
	Tenant  string
	Preset  string
	Rows    int64
	Columns []ColumnSpec
	Ops     []Op
	Bytes   int64
	Created time.Time
}

// JobInfo is a job's status. Err is set when it failed.
type JobInfo struct {
	ID          string
	Dataset     string
	Job         Job
	Status      string
	Err         error
	ResultBytes int
	Created     time.Time
	Finished    time.Time
}

// NewDatasets returns the processor's state; zero limits take their defaults.
func NewDatasets(l Limits, now func() time.Time) *Datasets {
	if now == nil {
		now = time.Now
	}
	l = l.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Datasets{limits: l, now: now, datasets: map[string]*heldDataset{}, slots: make(chan struct{}, l.ConcurrentJobs), ctx: ctx, cancel: cancel}
}

// Limits returns the limits in force.
func (d *Datasets) Limits() Limits { return d.limits }

// Close cancels the jobs in flight and waits for their goroutines, or for ctx.
// Uploads and submissions after Close are refused.
func (d *Datasets) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	done := make(chan struct{})
	go func() { d.jobs.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errClosed = privalytics.Errorf(privalytics.EUNAVAILABLE, "the processor is shutting down; retry on the restarted server")

// reserve claims n bytes of the held-memory budget.
func (d *Datasets) reserve(n int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	if d.held+n > d.limits.MaxHeldBytes {
		return privalytics.Errorf(privalytics.EUNAVAILABLE, "the processor holds %d of its %d bytes of datasets; delete finished datasets (DELETE /v1/he/datasets/{dataset}) or retry later", d.held, d.limits.MaxHeldBytes).
			With("held_bytes", d.held).With("max_held_bytes", d.limits.MaxHeldBytes)
	}
	d.held += n
	return nil
}

func (d *Datasets) release(n int64) {
	d.mu.Lock()
	d.held -= n
	d.mu.Unlock()
}

// limitedBody counts what is read and remembers whether the upload limit was
// hit, so that the ETOOLARGE survives decoders that wrap the error.
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

func (d *Datasets) tooLarge() error {
	return privalytics.Errorf(privalytics.ETOOLARGE, "the upload is over the processor's limit of %d bytes; split the table by rows (encrypt several files) or ask the operator to raise --he-max-upload-bytes", d.limits.MaxUploadBytes).
		With("max_upload_bytes", d.limits.MaxUploadBytes)
}

var errSecretKey = privalytics.Errorf(privalytics.EINVALID, "this is a secret key (PVHK…): a processor never takes one. Keep secret.key on the owner's machine and send eval.keys from `privalytics he keygen`")

// Upload reads a multipart body (contentType is its Content-Type; size its
// length, or ≤ 0 when unknown) — part "keys" (eval.keys) first, then part
// "table" (the encrypted table), streamed into the decoder — and keeps the
// dataset in memory with an evaluator built once from the keys.
func (d *Datasets) Upload(ctx context.Context, tenant, contentType string, body io.Reader, size int64) (DatasetInfo, error) {
	lim := d.limits.MaxUploadBytes
	if size > lim {
		return DatasetInfo{}, d.tooLarge()
	}
	reserve := lim
	if size > 0 {
		reserve = size
	}
	if err := d.reserve(reserve); err != nil {
		return DatasetInfo{}, err
	}
	lb := &limitedBody{r: body, limit: lim}
	ds, err := readUpload(ctx, contentType, lb)
	if lb.over {
		err = d.tooLarge()
	}
	if err != nil {
		d.release(reserve)
		return DatasetInfo{}, err
	}
	h := ds.table.Header
	ds.info = DatasetInfo{ID: "hds_" + randomHex(12), Tenant: tenant, Preset: h.Preset.Name, Rows: h.Rows, Columns: h.Columns, Ops: ds.info.Ops, Bytes: lb.n, Created: d.now().UTC()}
	d.mu.Lock()
	d.datasets[tenant+"/"+ds.info.ID] = ds
	d.held += lb.n - reserve
	d.mu.Unlock()
	return ds.info, nil
}

func readUpload(ctx context.Context, contentType string, body io.Reader) (*heldDataset, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		// Whatever it is, say so clearly if it is a secret key.
		br := bufio.NewReader(body)
		if head, _ := br.Peek(8); LooksLikeSecretKey(head) {
			return nil, errSecretKey
		}
		return nil, privalytics.Errorf(privalytics.EUNSUPPORTED, "send multipart/form-data with part \"keys\" (eval.keys) then part \"table\" (the encrypted table); `privalytics he upload` does this")
	}
	mr := multipart.NewReader(body, params["boundary"])
	var evk *EvaluationKeys
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "multipart body: %v", err)
		}
		br := bufio.NewReaderSize(part, 1<<20)
		if head, _ := br.Peek(8); LooksLikeSecretKey(head) {
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
			evk = new(EvaluationKeys)
			if err := evk.UnmarshalBinary(raw); err != nil {
				return nil, privalytics.Errorf(privalytics.ErrorCode(err), "part \"keys\": %s", privalytics.ErrorMessage(err))
			}
		case "table":
			if evk == nil {
				return nil, privalytics.Errorf(privalytics.EINVALID, "part \"keys\" must come before part \"table\" so the table can be checked against them while it streams")
			}
			return readTablePart(ctx, br, evk)
		default:
			return nil, privalytics.Errorf(privalytics.EINVALID, "unexpected part %q; send part \"keys\" then part \"table\"", part.FormName())
		}
	}
	return nil, privalytics.Errorf(privalytics.EINVALID, "the body has no part \"table\"; send part \"keys\" then part \"table\"")
}

func readTablePart(ctx context.Context, br *bufio.Reader, evk *EvaluationKeys) (*heldDataset, error) {
	tr, err := NewTableReader(br)
	if err != nil {
		return nil, err
	}
	h := tr.Header()
	if h.Preset.Name != evk.Preset.Name {
		return nil, privalytics.Errorf(privalytics.EINVALID, "the table is encrypted under preset %q but the evaluation keys are for %q; upload the eval.keys made with the table's keys", h.Preset.Name, evk.Preset.Name)
	}
	proc, err := NewProcessor(evk)
	if err != nil {
		return nil, err
	}
	tab := &Table{Header: h, Blocks: make([][]*rlwe.Ciphertext, 0, min(h.Blocks(), 1<<16))}
	for {
		if err := ctx.Err(); err != nil {
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
	return &heldDataset{info: DatasetInfo{Ops: evk.Ops}, table: tab, proc: proc, jobs: map[string]*job{}}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *Datasets) lookup(tenant, id string) (*heldDataset, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ds, ok := d.datasets[tenant+"/"+id]
	if !ok {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no encrypted dataset %q; datasets live in the processor's memory and are gone after a restart — upload it again", id)
	}
	return ds, nil
}

// Dataset describes one of the tenant's datasets.
func (d *Datasets) Dataset(tenant, id string) (DatasetInfo, error) {
	ds, err := d.lookup(tenant, id)
	if err != nil {
		return DatasetInfo{}, err
	}
	return ds.info, nil
}

// Delete frees a dataset and its results. Jobs still computing finish and
// their results are dropped.
func (d *Datasets) Delete(tenant, id string) error {
	ds, err := d.lookup(tenant, id)
	if err != nil {
		return err
	}
	d.mu.Lock()
	if _, ok := d.datasets[tenant+"/"+id]; ok {
		delete(d.datasets, tenant+"/"+id)
		d.held -= ds.info.Bytes
	}
	d.mu.Unlock()
	ds.mu.Lock()
	for _, j := range ds.jobs {
		d.release(int64(len(j.result)))
	}
	ds.jobs = map[string]*job{}
	ds.mu.Unlock()
	return nil
}

// Submit checks a job against the keys and the header (wrap-around,
// overflow, operations the keys allow) and queues it.
func (d *Datasets) Submit(tenant, id string, spec Job) (JobInfo, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return JobInfo{}, errClosed
	}
	ds, err := d.lookup(tenant, id)
	if err != nil {
		return JobInfo{}, err
	}
	if err := ds.proc.Check(ds.table.Header, spec); err != nil {
		return JobInfo{}, err
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if len(ds.jobs) >= d.limits.MaxJobsPerDataset {
		return JobInfo{}, privalytics.Errorf(privalytics.ECONFLICT, "dataset %s already has %d jobs, the most kept; download their results and upload the table again for more", id, len(ds.jobs))
	}
	// Register the goroutine under d.mu so that Close cannot miss it.
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return JobInfo{}, errClosed
	}
	d.jobs.Add(1)
	d.mu.Unlock()
	j := &job{info: JobInfo{ID: "hjb_" + randomHex(8), Dataset: id, Job: spec, Status: JobQueued, Created: d.now().UTC()}}
	ds.jobs[j.info.ID] = j
	go d.run(ds, j)
	return j.info, nil
}

// run computes one job when a slot is free, or gives up when the processor
// closes. Each job gets its own evaluator copy inside Processor.Run; the table
// and keys are only read.
func (d *Datasets) run(ds *heldDataset, j *job) {
	defer d.jobs.Done()
	var (
		b   []byte
		err error
	)
	select {
	case d.slots <- struct{}{}:
		b, err = d.compute(ds, j)
		<-d.slots
	case <-d.ctx.Done():
		err = errClosed
	}
	if err == nil {
		err = d.reserve(int64(len(b)))
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	j.info.Finished = d.now().UTC()
	if err != nil {
		j.info.Status, j.err = JobFailed, err
		return
	}
	if _, live := ds.jobs[j.info.ID]; !live { // the dataset was deleted meanwhile
		d.release(int64(len(b)))
		return
	}
	j.info.Status, j.result = JobDone, b
}

func (d *Datasets) compute(ds *heldDataset, j *job) ([]byte, error) {
	ds.mu.Lock()
	j.info.Status = JobRunning
	ds.mu.Unlock()
	ctx, cancel := context.WithTimeout(d.ctx, d.limits.JobTimeout)
	defer cancel()
	res, err := ds.proc.Run(ctx, ds.table, j.info.Job)
	switch {
	case err == nil:
		return res.MarshalBinary()
	case d.ctx.Err() != nil:
		return nil, errClosed
	case errors.Is(err, context.DeadlineExceeded):
		return nil, privalytics.Errorf(privalytics.EUNAVAILABLE, "the job ran past the processor's limit of %v; split the table by rows or ask the operator for a longer job timeout", d.limits.JobTimeout)
	}
	return nil, err
}

func (d *Datasets) job(tenant, id, jobID string) (*heldDataset, *job, error) {
	ds, err := d.lookup(tenant, id)
	if err != nil {
		return nil, nil, err
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	j, ok := ds.jobs[jobID]
	if !ok {
		return nil, nil, privalytics.Errorf(privalytics.ENOTFOUND, "dataset %s has no job %q", id, jobID)
	}
	return ds, j, nil
}

// Job returns a job's status.
func (d *Datasets) Job(tenant, id, jobID string) (JobInfo, error) {
	ds, j, err := d.job(tenant, id, jobID)
	if err != nil {
		return JobInfo{}, err
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	info := j.info
	info.Err, info.ResultBytes = j.err, len(j.result)
	return info, nil
}

// Result returns a finished job's encrypted result (FORMAT.md, "Result"). A
// job still in line or computing is ECONFLICT with its status in the error's
// "status" detail; a failed job returns its error.
func (d *Datasets) Result(tenant, id, jobID string) ([]byte, error) {
	ds, j, err := d.job(tenant, id, jobID)
	if err != nil {
		return nil, err
	}
	ds.mu.Lock()
	status, jerr, b := j.info.Status, j.err, j.result
	ds.mu.Unlock()
	switch status {
	case JobDone:
		return b, nil
	case JobFailed:
		return nil, jerr
	}
	return nil, privalytics.Errorf(privalytics.ECONFLICT, "job %s is %s; poll GET /v1/he/datasets/%s/jobs/%s and download when it is done", jobID, status, id, jobID).With("status", status)
}
