package he

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/statefile"
)

// The processor's datasets and jobs on disk (DESIGN: store/statefile says why
// files rather than the metadata store). One directory per dataset,
// <dir>/<tenant>/<dataset>/, holding
//
//	keys          the evaluation keys as uploaded (he-keys)
//	table         the encrypted table as uploaded (he-table)
//	dataset       what DatasetInfo shows (he-dataset), written last: a
//	              directory without it is an upload that was never acknowledged
//	job-<id>      a job's spec and state (he-job), written before 202
//	result-<id>   a finished job's encrypted result (he-result), before its
//	              job file says done
//
// each written atomically, sealed under the master key with --encrypt-at-rest.
// At start every dataset is read back and checked; jobs that were queued or
// computing at shutdown run again (a job is a pure function of the table and
// keys, so a rerun gives an equally valid result). A damaged file stops the
// start with a *statefile.Damaged naming it. Datasets past Limits.Expiry are
// deleted at start and whenever the processor looks one up; memory and disk
// are both bounded by Limits.MaxHeldBytes, since an upload is refused beyond it.

// Persist says where OpenDatasets keeps datasets and jobs.
type Persist struct {
	// Dir holds the datasets (serve: <data-dir>/state/he).
	Dir string
	// Sealer encrypts the files at rest (the master key); nil writes plaintext.
	Sealer statefile.Sealer
	Logger *slog.Logger
}

const (
	kindDataset = "he-dataset"
	kindKeys    = "he-keys"
	kindTable   = "he-table"
	kindJob     = "he-job"
	kindResult  = "he-result"
)

type diskStore struct {
	dir string
	s   statefile.Sealer
	log *slog.Logger
}

// OpenDatasets returns the processor's state kept in p.Dir, after reading
// back every dataset and job there and resuming the unfinished jobs.
func OpenDatasets(l Limits, now func() time.Time, p Persist) (*Datasets, error) {
	d := NewDatasets(l, now)
	if p.Logger != nil {
		d.log = p.Logger
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("he state directory: %w", err)
	}
	d.store = &diskStore{dir: p.Dir, s: p.Sealer, log: d.log}
	if err := d.load(); err != nil {
		_ = d.Close(context.Background())
		return nil, err
	}
	return d, nil
}

// uploadFiles writes one upload's files as it streams in.
type uploadFiles struct {
	st  *diskStore
	dir string
	tw  *statefile.Writer
}

func (st *diskStore) upload(tenant, id string) *uploadFiles {
	return &uploadFiles{st: st, dir: filepath.Join(st.dir, url.PathEscape(tenant), id)}
}

func storeErr(what string, err error) error { return statefile.StoreError(what, err) }

func (u *uploadFiles) keys(raw []byte) error {
	if u == nil {
		return nil
	}
	if err := os.MkdirAll(u.dir, 0o700); err != nil {
		return storeErr("the dataset", err)
	}
	if err := statefile.WriteFile(filepath.Join(u.dir, "keys"), kindKeys, u.st.s, raw); err != nil {
		return storeErr("the evaluation keys", err)
	}
	return nil
}

func (u *uploadFiles) table() (io.Writer, error) {
	w, err := statefile.Create(filepath.Join(u.dir, "table"), kindTable, u.st.s)
	if err != nil {
		return nil, storeErr("the table", err)
	}
	u.tw = w
	return w, nil
}

func (u *uploadFiles) commit(info DatasetInfo) error {
	if u.tw == nil {
		return storeErr("the table", errors.New("no table part"))
	}
	err := u.tw.Commit()
	u.tw = nil
	if err != nil {
		return storeErr("the table", err)
	}
	b, err := json.Marshal(info)
	if err == nil {
		err = statefile.WriteFile(filepath.Join(u.dir, "dataset"), kindDataset, u.st.s, b)
	}
	if err != nil {
		return storeErr("the dataset", err)
	}
	return nil
}

func (u *uploadFiles) abort() {
	if u == nil {
		return
	}
	if u.tw != nil {
		u.tw.Abort()
	}
	_ = os.RemoveAll(u.dir)
}

// remove deletes a dataset's directory.
func (st *diskStore) remove(dir string) error {
	if st == nil || dir == "" {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return privalytics.Errorf(privalytics.EINTERNAL, "he: remove %s: %v", dir, err)
	}
	return statefile.SyncDir(filepath.Dir(dir))
}

// storedJob is a job file.
type storedJob struct {
	Info       JobInfo `json:"info"`
	ErrCode    string  `json:"err_code,omitempty"`
	ErrMessage string  `json:"err_message,omitempty"`
}

// writeJob stores a job's state, and its result first when there is one.
func (st *diskStore) writeJob(dir string, j *job, result []byte) error {
	if st == nil {
		return nil
	}
	if result != nil {
		if err := statefile.WriteFile(filepath.Join(dir, "result-"+j.info.ID), kindResult, st.s, result); err != nil {
			return storeErr("the job's result", err)
		}
	}
	sj := storedJob{Info: j.info}
	sj.Info.Err = nil
	if j.err != nil {
		sj.ErrCode, sj.ErrMessage = privalytics.ErrorCode(j.err), privalytics.ErrorMessage(j.err)
	}
	b, err := json.Marshal(sj)
	if err == nil {
		err = statefile.WriteFile(filepath.Join(dir, "job-"+j.info.ID), kindJob, st.s, b)
	}
	if err != nil {
		return storeErr("the job", err)
	}
	return nil
}

// load reads back every dataset and job and resumes the unfinished jobs.
func (d *Datasets) load() error {
	st := d.store
	tenants, err := os.ReadDir(st.dir)
	if err != nil {
		return fmt.Errorf("he state directory: %w", err)
	}
	var resume []func()
	for _, te := range tenants {
		if !te.IsDir() {
			continue
		}
		tenant, err := url.PathUnescape(te.Name())
		if err != nil {
			return fmt.Errorf("he state: %s is not a tenant directory; move it out of %s", te.Name(), st.dir)
		}
		dss, err := os.ReadDir(filepath.Join(st.dir, te.Name()))
		if err != nil {
			return fmt.Errorf("he state: %w", err)
		}
		for _, de := range dss {
			if !de.IsDir() {
				continue
			}
			dir := filepath.Join(st.dir, te.Name(), de.Name())
			ds, jobs, err := d.loadDataset(tenant, dir)
			if err != nil {
				return err
			}
			if ds == nil {
				continue
			}
			d.datasets[tenant+"/"+ds.info.ID] = ds
			d.held += ds.info.Bytes
			for _, j := range jobs {
				d.held += int64(len(j.result))
				if j.info.Status == JobQueued || j.info.Status == JobRunning {
					j.info.Status = JobQueued
					d.jobs.Add(1)
					resume = append(resume, func() { go d.run(ds, j) })
				}
			}
		}
	}
	if d.held > d.limits.MaxHeldBytes {
		d.log.Warn("he: the stored datasets hold more than --he-max-held-bytes; uploads are refused until some are deleted",
			"held_bytes", d.held, "max_held_bytes", d.limits.MaxHeldBytes)
	}
	for _, r := range resume {
		r()
	}
	if len(d.datasets) > 0 || len(resume) > 0 {
		d.log.Info("he: datasets restored", "datasets", len(d.datasets), "jobs_resumed", len(resume), "dir", st.dir)
	}
	return nil
}

// loadDataset reads one dataset directory; nil when it was an unacknowledged
// upload or has expired (both removed).
func (d *Datasets) loadDataset(tenant, dir string) (*heldDataset, []*job, error) {
	st := d.store
	raw, err := statefile.ReadFile(filepath.Join(dir, "dataset"), kindDataset, st.s)
	if statefile.IsNotExist(err) {
		st.log.Warn("he: removing an upload that was cut before it was acknowledged", "dir", dir)
		return nil, nil, st.remove(dir)
	}
	if err != nil {
		return nil, nil, err
	}
	var info DatasetInfo
	if err := json.Unmarshal(raw, &info); err != nil || info.ID != filepath.Base(dir) || info.Tenant != tenant {
		return nil, nil, &statefile.Damaged{File: filepath.Join(dir, "dataset"), Problem: "does not describe the dataset of its directory"}
	}
	if info.Created.Before(d.now().Add(-d.limits.Expiry)) {
		st.log.Info("he: removing an expired dataset", "dataset", info.ID, "created", info.Created)
		return nil, nil, st.remove(dir)
	}
	keys, err := statefile.ReadFile(filepath.Join(dir, "keys"), kindKeys, st.s)
	if err != nil {
		return nil, nil, missingIsDamaged(err, filepath.Join(dir, "keys"))
	}
	evk := new(EvaluationKeys)
	if err := evk.UnmarshalBinary(keys); err != nil {
		return nil, nil, &statefile.Damaged{File: filepath.Join(dir, "keys"), Problem: "does not hold evaluation keys: " + privalytics.ErrorMessage(err)}
	}
	tpath := filepath.Join(dir, "table")
	tr, err := statefile.Open(tpath, kindTable, st.s)
	if err != nil {
		return nil, nil, missingIsDamaged(err, tpath)
	}
	ds, err := readTablePart(context.Background(), bufio.NewReaderSize(tr, 1<<20), evk)
	tr.Close()
	if err != nil {
		var dm *statefile.Damaged
		if errors.As(err, &dm) {
			return nil, nil, err
		}
		return nil, nil, &statefile.Damaged{File: tpath, Problem: "does not hold the uploaded table: " + privalytics.ErrorMessage(err)}
	}
	ds.info, ds.dir = info, dir
	if err := statefile.RemoveTemps(dir); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var jobs []*job
	for _, e := range ents {
		id, ok := strings.CutPrefix(e.Name(), "job-")
		if !ok {
			continue
		}
		p := filepath.Join(dir, e.Name())
		raw, err := statefile.ReadFile(p, kindJob, st.s)
		if err != nil {
			return nil, nil, err
		}
		var sj storedJob
		if err := json.Unmarshal(raw, &sj); err != nil || sj.Info.ID != id {
			return nil, nil, &statefile.Damaged{File: p, Problem: "does not describe the job of its name"}
		}
		j := &job{info: sj.Info}
		switch j.info.Status {
		case JobDone:
			rp := filepath.Join(dir, "result-"+id)
			if j.result, err = statefile.ReadFile(rp, kindResult, st.s); err != nil {
				return nil, nil, missingIsDamaged(err, rp)
			}
		case JobFailed:
			j.err = privalytics.Errorf(sj.ErrCode, "%s", sj.ErrMessage)
		case JobQueued, JobRunning:
		default:
			return nil, nil, &statefile.Damaged{File: p, Problem: fmt.Sprintf("has unknown status %q", j.info.Status)}
		}
		ds.jobs[id] = j
		jobs = append(jobs, j)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].info.Created.Before(jobs[b].info.Created) })
	return ds, jobs, nil
}

func missingIsDamaged(err error, path string) error {
	if statefile.IsNotExist(err) {
		return &statefile.Damaged{File: path, Problem: "is missing, yet the dataset's description exists"}
	}
	return err
}
