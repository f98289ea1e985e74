package he

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

// The owner's steps of the he command (README, "Encrypted analytics") over
// files: each reads and checks its inputs here, so the command only parses
// flags and prints.

// ParseOps parses a comma-separated list of operations (blank items ignored).
func ParseOps(list string) ([]Op, error) {
	var ops []Op
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			ops = append(ops, Op(s))
		}
	}
	if len(ops) == 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "--ops is empty; name the statistics the processor may compute, e.g. --ops sum,mean")
	}
	return ops, nil
}

// ChoosePreset returns the preset named name, or without a name the cheapest
// preset of scheme that runs ops.
func ChoosePreset(name string, scheme Scheme, ops []Op) (Preset, error) {
	if name != "" {
		return LookupPreset(name)
	}
	return PresetFor(scheme, ops...)
}

// EncryptFile is what encrypting a file needs: the input and its format
// (csv or parquet), the public key and its preset (ReadPublicKeyFile), the
// parsed request and the table file to write.
type EncryptFile struct {
	Input, Format, Out string
	Preset             Preset
	Key                *rlwe.PublicKey
	Request            EncryptRequest
	// Progress, if set, is called as rows are encrypted.
	Progress func(done, total int64)
}

// Encrypted says what EncryptFile.Run wrote.
type Encrypted struct {
	Source  *Source // the rows kept and the counts of those dropped or clipped
	Preset  Preset
	Columns []string // the encrypted columns, indicator columns included
	Bytes   int64    // the table file's size
	Request EncryptRequest
	Out     string // the table file
}

// NewEncryptFile reads the public key file (first: without a key nothing
// else matters) and parses the columns, categories and the per-customer cap
// (ParseEncryptRequest) into an EncryptFile writing out; Input and Format are
// the caller's to set.
func NewEncryptFile(publicKey string, columns, categories []string, subject string, rowsPerSubject int, clip bool, out string) (EncryptFile, error) {
	preset, pk, err := ReadPublicKeyFile(publicKey)
	if err != nil {
		return EncryptFile{}, err
	}
	req, err := ParseEncryptRequest(columns, categories, subject, rowsPerSubject, clip)
	if err != nil {
		return EncryptFile{}, err
	}
	return EncryptFile{Out: out, Preset: preset, Key: pk, Request: req}, nil
}

// Run reads the input, caps each customer's rows and writes the encrypted
// table file (FORMAT.md).
func (e EncryptFile) Run(ctx context.Context) (*Encrypted, error) {
	src, err := ReadSource(e.Input, e.Format, e.Request)
	if err != nil {
		return nil, err
	}
	spec, values := src.Table(e.Preset)
	spec.Progress = e.Progress
	size, err := WriteTableFile(ctx, e.Out, e.Key, spec, values)
	if err != nil {
		return nil, err
	}
	out := &Encrypted{Source: src, Preset: e.Preset, Bytes: size, Request: e.Request, Out: e.Out}
	for _, c := range spec.Columns {
		out.Columns = append(out.Columns, c.Name)
	}
	return out, nil
}

// ReadEvalKeys reads evaluation keys for upload, refusing a secret key file:
// it must never leave the owner's machine.
func ReadEvalKeys(path string) ([]byte, error) {
	keys, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--eval: %w", err)
	}
	if LooksLikeSecretKey(keys) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "--eval %s is a secret key; pass eval.keys — the secret key never leaves this machine", path)
	}
	return keys, nil
}

// DecryptFile is what decrypting a result file needs.
type DecryptFile struct {
	SecretKey, Result string
	// Exact skips the DP release and its ledger: for the owner's internal use.
	Exact bool
	// Epsilon is the release's ε; Budget lowers (or, for older keys, sets)
	// the ledger's total; RowsPerSubject is the cap for tables encrypted
	// without one recorded.
	Epsilon, Budget float64
	RowsPerSubject  int
}

// Decrypted is a decrypted result: Plain as decrypted (with its decryption
// error estimates), Shown what may be shown (the DP release, or Plain when
// exact), and Label what Shown is, in words.
type Decrypted struct {
	Plain, Shown *Plain
	Label        string
	Exact        bool
}

// Run decrypts the result, counting the decryption against the key's limit,
// and unless Exact releases it with DP noise recorded in the release ledger.
func (d DecryptFile) Run(now time.Time) (*Decrypted, error) {
	if !d.Exact && (!(d.Epsilon > 0) || d.Epsilon > 100) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "--epsilon must be in (0, 100], got %g; or pass --exact for the owner's internal, non-private output", d.Epsilon)
	}
	raw, err := os.ReadFile(d.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("--secret: %w", err)
	}
	var keys OwnerKeys
	if err := keys.UnmarshalBinary(raw); err != nil {
		return nil, err
	}
	rb, err := os.ReadFile(d.Result)
	if err != nil {
		return nil, fmt.Errorf("--result: %w", err)
	}
	var res Result
	if err := res.UnmarshalBinary(rb); err != nil {
		return nil, err
	}
	if d.Exact {
		plain, err := DecryptCounted(d.SecretKey, &keys, &res)
		if err != nil {
			return nil, err
		}
		return &Decrypted{Plain: plain, Shown: plain, Label: "EXACT — owner-internal use only, no DP noise; do not share", Exact: true}, nil
	}
	plain, shown, st, err := DecryptRelease(d.SecretKey, &keys, &res, rb, ReleaseOptions{Epsilon: d.Epsilon, RowsPerSubject: d.RowsPerSubject}, d.Budget, now)
	if err != nil {
		return nil, err
	}
	label := fmt.Sprintf("DP release, ε = %g, %d row(s) per customer, Laplace noise; release budget %g of %g left", d.Epsilon, shown.Header.RowsPerSubject, st.Remaining(), st.Budget)
	if shown.Header.RowsPerSubject == 0 {
		label = fmt.Sprintf("DP release, ε = %g, %d row(s) per customer (declared, not enforced), Laplace noise; release budget %g of %g left", d.Epsilon, d.RowsPerSubject, st.Remaining(), st.Budget)
	}
	return &Decrypted{Plain: plain, Shown: shown, Label: label}, nil
}

// WriteText prints the result for a person: each value with its noise and
// decryption error, then the statistics derived from them.
func (d *Decrypted) WriteText(w io.Writer) {
	h := d.Shown.Header
	rows := FormatCount(h.Rows) + " rows"
	if d.Shown.RowsLaplaceScale > 0 {
		rows += fmt.Sprintf(" (Laplace b = %.3g)", d.Shown.RowsLaplaceScale)
	}
	fmt.Fprintf(w, "%s of %s, preset %s\n", d.Shown.Job.Op, rows, h.Preset.Name)
	fmt.Fprintf(w, "[%s]\n", d.Label)
	for i, v := range d.Shown.Values {
		p := d.Plain.Values[i]
		switch {
		case p.Exact && d.Exact:
			fmt.Fprintf(w, "  %-28s %.0f  (exact; σ_flood %.3g hidden mod t)\n", v.Name, v.Value, p.FloodStd)
		case !d.Exact:
			fmt.Fprintf(w, "  %-28s %.6g  (Laplace b = %.3g; decryption error ±%.3g)\n", v.Name, v.Value, v.LaplaceScale, p.ErrorStd)
		default:
			fmt.Fprintf(w, "  %-28s %.6g  (decryption error ±%.3g; σ_flood %.3g)\n", v.Name, v.Value, p.ErrorStd, p.FloodStd)
		}
	}
	for _, line := range d.Shown.Derived() {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

// WriteJSON prints what may be shown as indented JSON.
func (d *Decrypted) WriteJSON(w io.Writer) error {
	type value struct {
		Name     string  `json:"name"`
		Value    float64 `json:"value"`
		ErrorStd float64 `json:"error_std"`
		FloodStd float64 `json:"flood_std"`
		Laplace  float64 `json:"laplace_scale,omitempty"`
	}
	p := d.Shown
	out := struct {
		Job  Job   `json:"job"`
		Rows int64 `json:"rows"`
		// RowsLaplace is the scale of the DP noise on rows (0: exact).
		RowsLaplace float64  `json:"rows_laplace_scale,omitempty"`
		Preset      string   `json:"preset"`
		Exact       bool     `json:"exact"`
		Label       string   `json:"label"`
		Values      []value  `json:"values"`
		Derived     []string `json:"derived,omitempty"`
	}{Job: p.Job, Rows: p.Header.Rows, RowsLaplace: p.RowsLaplaceScale, Preset: p.Header.Preset.Name, Exact: d.Exact, Label: d.Label, Derived: p.Derived()}
	for _, v := range p.Values {
		out.Values = append(out.Values, value{v.Name, v.Value, v.ErrorStd, v.FloodStd, v.LaplaceScale})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// FormatBytes writes a size for a person: B, KiB or MiB.
func FormatBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// FormatCount writes a count with thousands separators (1,234,567).
func FormatCount(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ProcessorClient is what the owner's upload and job steps ask of a processor
// (serve --role processor); api/client.Client satisfies it.
type ProcessorClient interface {
	UploadHEDataset(ctx context.Context, keys []byte, table io.Reader, tableSize int64) (*wire.HEDataset, error)
	SubmitHEJob(ctx context.Context, dataset string, job wire.HEJobSpec) (*wire.HEJob, error)
	WaitHEJob(ctx context.Context, dataset, job string) ([]byte, error)
}

// Upload sends the evaluation keys file (refusing a secret key: ReadEvalKeys)
// and the encrypted table file to the processor. wrap, if not nil, wraps the
// table's reader given its size, to show progress.
func Upload(ctx context.Context, p ProcessorClient, evalKeys, table string, wrap func(r io.Reader, size int64) io.Reader) (*wire.HEDataset, error) {
	keys, err := ReadEvalKeys(evalKeys)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(table)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var body io.Reader = f
	if wrap != nil {
		body = wrap(f, fi.Size())
	}
	return p.UploadHEDataset(ctx, keys, body, fi.Size())
}

// RunJob asks the processor for one statistic on dataset, waits for it and
// writes the encrypted result to out for DecryptFile. It returns the job and
// the result's size.
func RunJob(ctx context.Context, p ProcessorClient, dataset string, spec wire.HEJobSpec, out string) (*wire.HEJob, int, error) {
	j, err := p.SubmitHEJob(ctx, dataset, spec)
	if err != nil {
		return nil, 0, err
	}
	res, err := p.WaitHEJob(ctx, dataset, j.ID)
	if err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(out, res, 0o644); err != nil {
		return nil, 0, err
	}
	return j, len(res), nil
}

// WriteText prints, for a person, the key files WriteKeys wrote into dir:
// their sizes, where each goes, and the release ledger's budget.
func (k *KeyFiles) WriteText(w io.Writer, dir string) {
	p := k.Preset
	fmt.Fprintf(w, "Preset %s (%s, N=2^%d, depth %d) for %v; keys made in %.1fs\n", p.Name, p.Scheme, p.LogN, p.Depth, k.Ops, k.Took.Seconds())
	fmt.Fprintf(w, "  %-42s %9s  secret: keep on this machine (0600)\n", filepath.Join(dir, SecretKeyFile), FormatBytes(k.SecretBytes))
	fmt.Fprintf(w, "  %-42s %9s  for he encrypt\n", filepath.Join(dir, PublicKeyFile), FormatBytes(k.PublicBytes))
	fmt.Fprintf(w, "  %-42s %9s  for the processor: relinearisation key %v, %d rotation keys\n", filepath.Join(dir, EvalKeysFile), FormatBytes(k.EvalBytes), k.Relinearisation, k.RotationKeys)
	fmt.Fprintf(w, "  %-42s %9s  release ledger: DP releases may spend ε = %g in total\n", LedgerPath(filepath.Join(dir, SecretKeyFile)), "", k.Budget)
}

// WriteText prints, for a person, what was encrypted and what was dropped
// or clipped on the way; took is the time it took.
func (e *Encrypted) WriteText(w io.Writer, took time.Duration) {
	src, req := e.Source, e.Request
	if req.Clip {
		fmt.Fprintf(w, "Clipped %d values to their declared bounds\n", src.Clipped)
	}
	if src.NoSubject > 0 {
		fmt.Fprintf(w, "Warning: dropped %d rows without a customer in %s\n", src.NoSubject, req.Subject)
	}
	if src.Dropped > 0 {
		fmt.Fprintf(w, "Warning: dropped %d rows of customers over --rows-per-subject %d\n", src.Dropped, req.RowsPerSubject)
	}
	fmt.Fprintf(w, "Encrypted %d rows × %d columns [%s], at most %d per customer, under %s in %.2fs → %s (%s)\n",
		src.Rows, len(e.Columns), strings.Join(e.Columns, ", "), req.RowsPerSubject, e.Preset.Name, took.Seconds(), e.Out, FormatBytes(int(e.Bytes)))
}
