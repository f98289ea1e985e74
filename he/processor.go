package he

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
// count), sizes and job types. Opened with OpenDatasets on a directory
// (serve: <data-dir>/state/he), datasets and jobs are files there and survive
// a restart (he/persist.go); NewDatasets keeps them in memory only.

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
	// Expiry is how long a dataset and its results are kept after upload;
	// then they are deleted (from memory and disk) as if the owner had.
	Expiry time.Duration
}

// DefaultLimits are the documented defaults (processor off).
func DefaultLimits() Limits {
	return Limits{MaxUploadBytes: 1 << 30, MaxHeldBytes: 4 << 30, ConcurrentJobs: max(1, runtime.GOMAXPROCS(0)), MaxJobsPerDataset: 256, JobTimeout: 30 * time.Minute, Expiry: 7 * 24 * time.Hour}
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
	if l.Expiry == 0 {
		l.Expiry = d.Expiry
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
	log    *slog.Logger

	mu       sync.Mutex
	datasets map[string]*heldDataset // tenant + "/" + dataset ID
	held     int64                   // bytes reserved by datasets and uploads in flight
	closed   bool

	store *diskStore // nil: memory only

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
	dir   string // its directory under the store, "" in memory

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
	return &Datasets{limits: l, now: now, log: slog.Default(), datasets: map[string]*heldDataset{}, slots: make(chan struct{}, l.ConcurrentJobs), ctx: ctx, cancel: cancel}
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
	id := "hds_" + randomHex(12)
	var files *uploadFiles
	if d.store != nil {
		files = d.store.upload(tenant, id)
	}
	ds, err := readUpload(ctx, contentType, lb, files)
	if lb.over {
		err = d.tooLarge()
	}
	if err == nil {
		h := ds.table.Header
		ds.info = DatasetInfo{ID: id, Tenant: tenant, Preset: h.Preset.Name, Rows: h.Rows, Columns: h.Columns, Ops: ds.info.Ops, Bytes: lb.n, Created: d.now().UTC()}
		if files != nil {
			// The dataset file goes last: its presence marks a whole upload.
			ds.dir = files.dir
			err = files.commit(ds.info)
		}
	}
	if err != nil {
		files.abort()
		d.release(reserve)
		return DatasetInfo{}, err
	}
	d.mu.Lock()
	d.datasets[tenant+"/"+ds.info.ID] = ds
	d.held += lb.n - reserve
	d.mu.Unlock()
	return ds.info, nil
}

func readUpload(ctx context.Context, contentType string, body io.Reader, files *uploadFiles) (*heldDataset, error) {
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
			if err := files.keys(raw); err != nil {
				return nil, err
			}
		case "table":
			if evk == nil {
				return nil, privalytics.Errorf(privalytics.EINVALID, "part \"keys\" must come before part \"table\" so the table can be checked against them while it streams")
			}
			if files == nil {
				return readTablePart(ctx, br, evk)
			}
			w, err := files.table()
			if err != nil {
				return nil, err
			}
			// Everything the decoder reads of the part lands in the table file.
			return readTablePart(ctx, bufio.NewReaderSize(io.TeeReader(br, w), 1<<20), evk)
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
	d.expire()
	ds, ok := d.datasets[tenant+"/"+id]
	d.mu.Unlock()
	if !ok {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no encrypted dataset %q; it was deleted, expired (datasets are kept %v after upload), or never uploaded here — upload it again", id, d.limits.Expiry)
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
	d.drop(tenant+"/"+id, ds)
	d.mu.Unlock()
	return d.store.remove(ds.dir)
}

// drop forgets a dataset and its results (under d.mu); the caller removes
// its directory.
func (d *Datasets) drop(key string, ds *heldDataset) {
	if _, ok := d.datasets[key]; !ok {
		return
	}
	delete(d.datasets, key)
	d.held -= ds.info.Bytes
	ds.mu.Lock()
	for _, j := range ds.jobs {
		d.held -= int64(len(j.result))
	}
	ds.jobs = map[string]*job{}
	ds.mu.Unlock()
}

// expire drops (under d.mu) the datasets older than the expiry.
func (d *Datasets) expire() {
	cut := d.now().Add(-d.limits.Expiry)
	for key, ds := range d.datasets {
		if ds.info.Created.Before(cut) {
			d.drop(key, ds)
			if err := d.store.remove(ds.dir); err != nil {
				d.log.Error("he: remove an expired dataset", "dir", ds.dir, "err", err)
			}
		}
	}
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
	// Stored as queued before it is acknowledged: a restart resumes it.
	if err := d.store.writeJob(ds.dir, j, nil); err != nil {
		d.jobs.Done()
		return JobInfo{}, err
	}
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
		if _, live := ds.jobs[j.info.ID]; live && err != errClosed { // a job cut by shutdown stays queued on disk and resumes
			d.persistJob(ds, j, nil)
		}
		return
	}
	if _, live := ds.jobs[j.info.ID]; !live { // the dataset was deleted meanwhile
		d.release(int64(len(b)))
		return
	}
	j.info.Status, j.result = JobDone, b
	d.persistJob(ds, j, b)
}

// persistJob records a finished job; when the disk refuses, the job reports
// the failure rather than a result that would vanish at the next restart.
func (d *Datasets) persistJob(ds *heldDataset, j *job, result []byte) {
	if err := d.store.writeJob(ds.dir, j, result); err != nil {
		if result != nil {
			d.release(int64(len(result)))
		}
		j.info.Status, j.err, j.result = JobFailed, err, nil
		d.log.Error("he: store a job's state", "dataset", ds.info.ID, "job", j.info.ID, "err", err)
	}
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
