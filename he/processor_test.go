package he

import (
	"bytes"
	"context"
	"mime/multipart"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
)

// upload builds the multipart body `he upload` sends: part "keys", then part
// "table".
func uploadBody(t *testing.T, fx fixture, p Preset, d dataset) (string, *bytes.Buffer) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ek, err := fx.evk.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	w, _ := mw.CreateFormFile("keys", "eval.keys")
	w.Write(ek)
	w, _ = mw.CreateFormFile("table", "t.pvht")
	if err := EncryptTable(context.Background(), w, fx.keys.Public, TableSpec{Preset: p, Columns: d.spec}, d.columns); err != nil {
		t.Fatal(err)
	}
	mw.Close()
	return mw.FormDataContentType(), &body
}

// TestDatasetsJobsAndClose: a job runs to a result that decrypts to the
// plaintext; datasets are per tenant; the held-bytes and jobs-per-dataset
// limits refuse; Close waits for the job goroutines and refuses new work.
func TestDatasetsJobsAndClose(t *testing.T) {
	t.Parallel()
	p := testInsecureBGV
	fx := keysFor(t, p)
	d := newDataset(t, 100)
	ctype, body := uploadBody(t, fx, p, d)
	size := int64(body.Len())

	small := NewDatasets(Limits{Enabled: true, MaxHeldBytes: size - 1}, nil)
	if _, err := small.Upload(context.Background(), "shop", ctype, bytes.NewReader(body.Bytes()), size); privalytics.ErrorCode(err) != privalytics.EUNAVAILABLE {
		t.Fatalf("upload over the held-bytes limit: %v, want %s", err, privalytics.EUNAVAILABLE)
	}
	tiny := NewDatasets(Limits{Enabled: true, MaxUploadBytes: size - 1}, nil)
	if _, err := tiny.Upload(context.Background(), "shop", ctype, bytes.NewReader(body.Bytes()), -1); privalytics.ErrorCode(err) != privalytics.ETOOLARGE {
		t.Fatalf("upload over the size limit, length unknown: %v, want %s", err, privalytics.ETOOLARGE)
	}

	ds := NewDatasets(Limits{Enabled: true, MaxJobsPerDataset: 1}, nil)
	info, err := ds.Upload(context.Background(), "shop", ctype, bytes.NewReader(body.Bytes()), size)
	if err != nil {
		t.Fatal(err)
	}
	if info.Rows != 100 || info.Bytes != size {
		t.Fatalf("dataset %+v; want 100 rows, %d bytes", info, size)
	}
	if _, err := ds.Dataset("other", info.ID); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Fatalf("another tenant's dataset: %v, want %s", err, privalytics.ENOTFOUND)
	}
	job := Job{Op: OpSum, Column: "quantity"}
	j, err := ds.Submit("shop", info.ID, job)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Submit("shop", info.ID, job); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Fatalf("a second job over MaxJobsPerDataset 1: %v, want %s", err, privalytics.ECONFLICT)
	}
	var b []byte
	for deadline := time.Now().Add(time.Minute); ; {
		if b, err = ds.Result("shop", info.ID, j.ID); privalytics.ErrorCode(err) != privalytics.ECONFLICT || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := res.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	got, _ := decryptMap(t, fx.keys, &res)
	want := plainTerms(t, d, job, &res.Header)
	if got["sum(quantity)"] != want["sum(quantity)"] {
		t.Errorf("sum(quantity) = %v, want %v", got["sum(quantity)"], want["sum(quantity)"])
	}
	if st, err := ds.Job("shop", info.ID, j.ID); err != nil || st.Status != JobDone || st.ResultBytes != len(b) {
		t.Errorf("job status %+v, %v", st, err)
	}
	if err := ds.Delete("shop", info.ID); err != nil {
		t.Fatal(err)
	}
	if ds.held != 0 {
		t.Errorf("held bytes after delete = %d, want 0", ds.held)
	}

	// A job left waiting for a slot when the processor closes ends failed,
	// and Close returns only once its goroutine has.
	info, err = ds.Upload(context.Background(), "shop", ctype, bytes.NewReader(body.Bytes()), size)
	if err != nil {
		t.Fatal(err)
	}
	for len(ds.slots) < cap(ds.slots) { // every slot busy: the next job waits
		ds.slots <- struct{}{}
	}
	j, err = ds.Submit("shop", info.ID, job)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ds.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st, _ := ds.Job("shop", info.ID, j.ID); st.Status != JobFailed || privalytics.ErrorCode(st.Err) != privalytics.EUNAVAILABLE {
		t.Errorf("a queued job after Close: %+v, want failed with %s", st, privalytics.EUNAVAILABLE)
	}
	if _, err := ds.Submit("shop", info.ID, job); privalytics.ErrorCode(err) != privalytics.EUNAVAILABLE {
		t.Errorf("submit after Close: %v, want %s", err, privalytics.EUNAVAILABLE)
	}
}
