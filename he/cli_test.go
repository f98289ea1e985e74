package he

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

func TestParseOps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []Op
	}{
		{"sum", []Op{OpSum}},
		{" count , mean,,", []Op{OpCount, OpMean}},
	} {
		got, err := ParseOps(tc.in)
		if err != nil {
			t.Fatalf("ParseOps(%q): %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseOps(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, in := range []string{"", " , ,"} {
		if _, err := ParseOps(in); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "--ops sum,mean") {
			t.Errorf("ParseOps(%q) = %v, want EINVALID naming an example", in, err)
		}
	}
}

func TestChoosePreset(t *testing.T) {
	t.Parallel()
	name := PresetNames()[0]
	p, err := ChoosePreset(name, CKKS, []Op{OpSum})
	if err != nil || p.Name != name {
		t.Fatalf("ChoosePreset(%q) = %s, %v; want the named preset whatever the scheme", name, p.Name, err)
	}
	want, err := PresetFor(BGV, OpSum, OpMean)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ChoosePreset("", BGV, []Op{OpSum, OpMean}); err != nil || p.Name != want.Name {
		t.Errorf("ChoosePreset without a name = %s, %v; want %s", p.Name, err, want.Name)
	}
	if _, err := ChoosePreset("no-such-preset", BGV, nil); err == nil {
		t.Error("an unknown preset was accepted")
	}
}

func TestFormatBytesAndCount(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 << 20: "3.0 MiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int64]string{7: "7", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := FormatCount(n); got != want {
			t.Errorf("FormatCount(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestDecryptFileRefusesEpsilon: a release's ε is checked before any file is
// read, and --exact needs none.
func TestDecryptFileRefusesEpsilon(t *testing.T) {
	t.Parallel()
	for _, eps := range []float64{0, -1, 101} {
		_, err := DecryptFile{SecretKey: "/nonexistent", Result: "/nonexistent", Epsilon: eps}.Run(time.Now())
		if privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "--exact") {
			t.Errorf("ε = %g: %v, want EINVALID naming --exact", eps, err)
		}
	}
	if _, err := (DecryptFile{SecretKey: "/nonexistent", Exact: true}).Run(time.Now()); err == nil || !strings.Contains(err.Error(), "--secret") {
		t.Errorf("exact with a missing key file: %v, want an error naming --secret", err)
	}
}

// fakeProcessor records what the owner's steps send.
type fakeProcessor struct {
	keys, table []byte
	size        int64
	spec        wire.HEJobSpec
	result      []byte
}

func (f *fakeProcessor) UploadHEDataset(_ context.Context, keys []byte, table io.Reader, size int64) (*wire.HEDataset, error) {
	f.keys, f.size = keys, size
	var err error
	f.table, err = io.ReadAll(table)
	return &wire.HEDataset{ID: "hds_1"}, err
}

func (f *fakeProcessor) SubmitHEJob(_ context.Context, _ string, job wire.HEJobSpec) (*wire.HEJob, error) {
	f.spec = job
	return &wire.HEJob{ID: "hjob_1"}, nil
}

func (f *fakeProcessor) WaitHEJob(context.Context, string, string) ([]byte, error) {
	return f.result, nil
}

// TestUploadAndRunJob: the keys and the table reach the processor whole
// (through the progress wrapper), a secret key never does, and a job's
// result is written where asked.
func TestUploadAndRunJob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fx := keysFor(t, testInsecureTiny, OpSum)
	evk, _ := fx.evk.MarshalBinary()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	evalPath, tablePath, secretPath := write("eval.keys", evk), write("t.pvht", []byte("PVHT table bytes")), write("secret.key", mustOwner(t, fx.keys))
	var f fakeProcessor
	wrapped := false
	wrap := func(r io.Reader, size int64) io.Reader { wrapped = size == 16; return r }
	if _, err := Upload(context.Background(), &f, evalPath, tablePath, wrap); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.keys, evk) || string(f.table) != "PVHT table bytes" || f.size != 16 || !wrapped {
		t.Errorf("upload sent keys %d bytes (want %d), table %q of size %d, wrapped %v", len(f.keys), len(evk), f.table, f.size, wrapped)
	}
	var g fakeProcessor
	if _, err := Upload(context.Background(), &g, secretPath, tablePath, nil); privalytics.ErrorCode(err) != privalytics.EINVALID || g.keys != nil {
		t.Errorf("upload of a secret key: %v, sent %d bytes; want EINVALID and nothing sent", err, len(g.keys))
	}
	f.result = []byte("encrypted result")
	out := filepath.Join(dir, "r.pvhr")
	j, n, err := RunJob(context.Background(), &f, "hds_1", wire.HEJobSpec{Op: "sum", Column: "x"}, out)
	if err != nil || j.ID != "hjob_1" || n != len(f.result) || f.spec.Column != "x" {
		t.Fatalf("RunJob = %v, %d, %v; spec %+v", j, n, err, f.spec)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, f.result) {
		t.Errorf("result file holds %q, %v; want %q", b, err, f.result)
	}
}

func FuzzParseOps(f *testing.F) {
	f.Fuzz(func(t *testing.T, list string) {
		ops, err := ParseOps(list)
		if err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("ParseOps(%q): %v, want EINVALID", list, err)
			}
			return
		}
		for _, o := range ops {
			if o == "" || strings.TrimSpace(string(o)) != string(o) || strings.Contains(string(o), ",") {
				t.Fatalf("ParseOps(%q) gave op %q", list, o)
			}
		}
	})
}

// TestNewEncryptFile: the public key is read before the columns are
// checked, and a valid request carries the key's preset.
func TestNewEncryptFile(t *testing.T) {
	t.Parallel()
	fx := keysFor(t, testInsecureTiny, OpSum)
	pub, err := MarshalPublicKey(testInsecureTiny, fx.keys.Public)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "public.key")
	if err := os.WriteFile(path, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEncryptFile(path+".missing", []string{"bad"}, nil, "", 0, false, "t.pvht"); err == nil || !strings.Contains(err.Error(), "public.key.missing") {
		t.Errorf("a missing key with bad columns: %v, want the key's error first", err)
	}
	if _, err := NewEncryptFile(path, []string{"x:0:10"}, nil, "", 5, false, "t.pvht"); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "--subject") {
		t.Errorf("no customer column: %v, want EINVALID naming --subject", err)
	}
	e, err := NewEncryptFile(path, []string{"x:0:10"}, nil, "customer", 5, true, "t.pvht")
	if err != nil || e.Preset.Name != testInsecureTiny.Name || e.Key == nil || e.Out != "t.pvht" || !e.Request.Clip || e.Request.RowsPerSubject != 5 {
		t.Errorf("NewEncryptFile = %+v, %v", e, err)
	}
}
