package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/he"
)

// The owner's side of encrypted analytics (README, "Encrypted analytics"):
// keygen and encrypt and decrypt run on the owner's machine and never talk to
// a server; upload and job talk to a processor (serve --role processor).

const (
	secretKeyFile = "secret.key"
	publicKeyFile = "public.key"
	evalKeysFile  = "eval.keys"
)

func heCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "he",
		Short: "Encrypted analytics: let an outside processor compute on data it cannot read",
		Long: `he is the data owner's side of homomorphic encryption (Lattigo v5):

  keygen   create the keys (the secret key stays here, 0600)
  encrypt  encrypt columns of a CSV or Parquet file into an encrypted table
  upload   send the table and the evaluation keys to a processor
  job      run a statistic on the processor and download the encrypted result
  decrypt  decrypt a result with noise flooding, then add DP noise (default)

The processor is another privalytics server started with --role processor.`,
	}
	cmd.AddCommand(heKeygenCommand(), heEncryptCommand(), heDecryptCommand(), heUploadCommand(), heJobCommand())
	return cmd
}

func parseOps(list string) ([]he.Op, error) {
	var ops []he.Op
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			ops = append(ops, he.Op(s))
		}
	}
	if len(ops) == 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "--ops is empty; name the statistics the processor may compute, e.g. --ops sum,mean")
	}
	return ops, nil
}

func heKeygenCommand() *cobra.Command {
	var preset, scheme, ops, out string
	cmd := &cobra.Command{
		Use:   "keygen --ops OPS --out DIR",
		Short: "Create the owner's keys and the evaluation keys for a processor",
		Long: `keygen writes three files into DIR:

  secret.key  the secret and public key (0600). It never leaves this machine.
  public.key  the public key, for he encrypt.
  eval.keys   the evaluation keys for --ops only (relinearisation only if an
              operation multiplies ciphertexts; rotations for the slot sum). Send
              these to the processor with he upload.

--preset names a parameter set (` + strings.Join(he.PresetNames(), ", ") + `);
without it, the cheapest preset of --scheme that runs --ops is chosen. Every
preset is checked against the HE standard's 128-bit bounds when loaded.`,
		Example: `  privalytics he keygen --scheme bgv --ops count,sum,mean --out owner-keys`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := parseOps(ops)
			if err != nil {
				return err
			}
			var p he.Preset
			if preset != "" {
				p, err = he.LookupPreset(preset)
			} else {
				p, err = he.PresetFor(he.Scheme(scheme), o...)
			}
			if err != nil {
				return err
			}
			if err := p.Validate(); err != nil {
				return err
			}
			if out == "" {
				return privalytics.Errorf(privalytics.EINVALID, "--out DIR is required: the directory for secret.key, public.key and eval.keys")
			}
			if _, err := os.Stat(filepath.Join(out, secretKeyFile)); err == nil {
				return privalytics.Errorf(privalytics.ECONFLICT, "%s already exists; keygen never overwrites a secret key (results encrypted under it would become unreadable). Choose another --out", filepath.Join(out, secretKeyFile))
			}
			start := time.Now()
			keys, evk, err := he.KeyGen(p, o...)
			if err != nil {
				return err
			}
			sk, err := keys.MarshalBinary()
			if err != nil {
				return err
			}
			pk, err := he.MarshalPublicKey(p, keys.Public)
			if err != nil {
				return err
			}
			ek, err := evk.MarshalBinary()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			if err := writeNewFile(filepath.Join(out, secretKeyFile), sk, 0o600); err != nil {
				return err
			}
			if err := writeNewFile(filepath.Join(out, publicKeyFile), pk, 0o644); err != nil {
				return err
			}
			if err := writeNewFile(filepath.Join(out, evalKeysFile), ek, 0o644); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Preset %s (%s, N=2^%d, depth %d) for %v; keys made in %.1fs\n", p.Name, p.Scheme, p.LogN, p.Depth, o, time.Since(start).Seconds())
			fmt.Fprintf(w, "  %-42s %9s  secret: keep on this machine (0600)\n", filepath.Join(out, secretKeyFile), sizeOf(len(sk)))
			fmt.Fprintf(w, "  %-42s %9s  for he encrypt\n", filepath.Join(out, publicKeyFile), sizeOf(len(pk)))
			fmt.Fprintf(w, "  %-42s %9s  for the processor: relinearisation key %v, %d rotation keys\n", filepath.Join(out, evalKeysFile), sizeOf(len(ek)), evk.Relin != nil, len(evk.Galois))
			return nil
		},
	}
	cmd.Flags().StringVar(&preset, "preset", "", "parameter preset: "+strings.Join(he.PresetNames(), ", ")+" (default: chosen from --scheme and --ops)")
	cmd.Flags().StringVar(&scheme, "scheme", string(he.BGV), "bgv (exact integers) or ckks (reals), when --preset is not given")
	cmd.Flags().StringVar(&ops, "ops", "", "operations the processor may run: count, sum, mean, variance, category-count, category-sum, dot, covariance, regression")
	cmd.Flags().StringVar(&out, "out", "", "directory for the key files (created 0700)")
	return cmd
}

// writeNewFile creates path with mode, refusing to replace an existing file,
// and syncs it.
func writeNewFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func sizeOf(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func heEncryptCommand() *cobra.Command {
	var (
		public, format, out string
		columns, categories []string
		quiet, clip         bool
	)
	cmd := &cobra.Command{
		Use:   "encrypt FILE --public KEY --column NAME:MIN:MAX … --out TABLE",
		Short: "Encrypt columns of a CSV or Parquet file into an encrypted table",
		Long: `encrypt reads FILE (CSV with a header row, optionally .gz, or Parquet) and
writes the encrypted-table file (he/FORMAT.md) to --out, with a progress bar.

--column NAME:MIN:MAX declares a numeric column and its bounds. The bounds are a
contract: a value outside them is refused (with its row) unless --clip clamps
it, and the processor sizes its overflow checks and the DP release its noise
from them: tight bounds mean less noise. BGV presets take integers only; store
decimals scaled (cents). --category NAME:A,B,C turns a categorical column into
one 0/1 indicator column per declared value (NAME=A, …) for per-category counts
and sums; values not declared count in none. Column names, bounds, declared
categories and the row count are visible to the processor; the values are not.`,
		Example: `  privalytics he encrypt orders.csv --public owner-keys/public.key --column quantity:0:100 --category country:France,Germany --out orders.pvht`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := os.ReadFile(public)
			if err != nil {
				return fmt.Errorf("--public: %w", err)
			}
			if he.LooksLikeSecretKey(raw) {
				return privalytics.Errorf(privalytics.EINVALID, "--public %s is a secret key; pass public.key (encrypting needs only the public key)", public)
			}
			preset, pk, err := he.UnmarshalPublicKey(raw)
			if err != nil {
				return err
			}
			req, err := parseEncryptColumns(columns, categories)
			if err != nil {
				return err
			}
			if format == "" {
				if format, err = formatOf(args[0]); err != nil {
					return err
				}
			}
			start := time.Now()
			src, err := readSource(args[0], format, req, clip)
			if err != nil {
				return err
			}
			specs, values := src.encryptColumns(req)
			rows := int64(src.rows)
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			spec := he.TableSpec{Preset: preset, Columns: specs}
			var bar *progressbar.ProgressBar
			if !quiet && isTerminal(cmd.ErrOrStderr()) {
				spec.Progress = func(done, total int64) {
					if bar == nil {
						bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(cmd.ErrOrStderr()), progressbar.OptionSetDescription("encrypting"),
							progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
					}
					_ = bar.Set64(done)
				}
			}
			bw := newBufferedFile(f)
			tw, err := he.NewTableWriter(bw, pk, spec, rows)
			if err != nil {
				return err
			}
			if err := tw.WriteRows(cmd.Context(), values); err != nil {
				return err
			}
			if err := tw.Close(); err != nil {
				return err
			}
			if bar != nil {
				_ = bar.Finish()
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			names := make([]string, len(specs))
			for i, s := range specs {
				names[i] = s.Name
			}
			if clip {
				fmt.Fprintf(cmd.OutOrStdout(), "Clipped %d values to their declared bounds\n", src.clipped)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Encrypted %d rows × %d columns [%s] under %s in %.2fs → %s (%s)\n",
				rows, len(specs), strings.Join(names, ", "), preset.Name, time.Since(start).Seconds(), out, sizeOf(int(fi.Size())))
			return nil
		},
	}
	cmd.Flags().StringVar(&public, "public", "", "public key file from he keygen (public.key)")
	cmd.Flags().StringVar(&format, "format", "", "csv or parquet (default: from the file name)")
	cmd.Flags().StringArrayVar(&columns, "column", nil, "numeric column with declared bounds, NAME:MIN:MAX (repeatable)")
	cmd.Flags().StringArrayVar(&categories, "category", nil, "categorical column with declared values, NAME:A,B,C (repeatable)")
	cmd.Flags().StringVar(&out, "out", "", "encrypted table file to write")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	cmd.Flags().BoolVar(&clip, "clip", false, "clamp values outside the declared bounds instead of refusing the file (the count is printed)")
	_ = cmd.MarkFlagRequired("public")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func heDecryptCommand() *cobra.Command {
	var (
		secret, result string
		epsilon        float64
		rowsPerSubject int
		exact, asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "decrypt --secret KEY --result FILE",
		Short: "Decrypt a processor's result with noise flooding and release it with DP",
		Long: `decrypt decrypts an encrypted result (from he job) with the secret key. Before
decoding it floods the decryption with Gaussian noise sized from the parameters
and the number of decryptions the preset allows (σ_flood = σ_noise·√(k·N)·2^(λ/2),
README "Encrypted analytics"), so what is shown reveals nothing about the key.
Each result may be decrypted at most k times (16 in every preset); the count is
kept in <secret key>.decryptions.json so the limit holds across runs.

By default the values are then released with Laplace noise for --epsilon,
with sensitivity from the declared bounds and --rows-per-subject (the most rows
one customer has in the table). --exact skips the DP noise: the output is for
the owner's internal use only and is labelled so; do not share it.`,
		Example: `  privalytics he decrypt --secret owner-keys/secret.key --result mean.pvhr --epsilon 1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !exact && (!(epsilon > 0) || epsilon > 100) {
				return privalytics.Errorf(privalytics.EINVALID, "--epsilon must be in (0, 100], got %g; or pass --exact for the owner's internal, non-private output", epsilon)
			}
			raw, err := os.ReadFile(secret)
			if err != nil {
				return fmt.Errorf("--secret: %w", err)
			}
			var keys he.OwnerKeys
			if err := keys.UnmarshalBinary(raw); err != nil {
				return err
			}
			rb, err := os.ReadFile(result)
			if err != nil {
				return fmt.Errorf("--result: %w", err)
			}
			var res he.Result
			if err := res.UnmarshalBinary(rb); err != nil {
				return err
			}
			plain, err := decryptCounted(secret, &keys, &res)
			if err != nil {
				return err
			}
			label := fmt.Sprintf("DP release, ε = %g, %d row(s) per customer, Laplace noise", epsilon, rowsPerSubject)
			shown := plain
			if exact {
				label = "EXACT — owner-internal use only, no DP noise; do not share"
			} else if shown, err = he.Release(plain, he.ReleaseOptions{Epsilon: epsilon, RowsPerSubject: rowsPerSubject}); err != nil {
				return err
			}
			if asJSON {
				return printPlainJSON(cmd.OutOrStdout(), shown, label, exact)
			}
			printPlain(cmd.OutOrStdout(), plain, shown, label, exact)
			return nil
		},
	}
	cmd.Flags().StringVar(&secret, "secret", "", "secret key file from he keygen (secret.key)")
	cmd.Flags().StringVar(&result, "result", "", "encrypted result file from he job")
	cmd.Flags().Float64Var(&epsilon, "epsilon", 1, "ε spent on this release (Laplace noise on every value)")
	cmd.Flags().IntVar(&rowsPerSubject, "rows-per-subject", 0, "most rows one customer has in the table; only for tables encrypted without --subject (their cap is recorded and used)")
	cmd.Flags().BoolVar(&exact, "exact", false, "show exact values without DP noise (owner-internal use only)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("secret")
	_ = cmd.MarkFlagRequired("result")
	return cmd
}

// decryptCounted decrypts under the persisted per-result decryption counts:
// it locks <secret>.decryptions.json, loads the counts, decrypts, and writes
// the new counts (synced) before anything is shown.
func decryptCounted(secret string, keys *he.OwnerKeys, res *he.Result) (*he.Plain, error) {
	path := secret + ".decryptions.json"
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("decryption counter: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock the decryption counter: %w", err)
	}
	dec, err := he.NewDecryptor(keys)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &counts); err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "decryption counter %s is corrupt (%v); restore it from a backup — deleting it would allow more decryptions than the flooding was sized for", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := dec.LoadCounts(counts); err != nil {
		return nil, err
	}
	plain, err := dec.Decrypt(res)
	if err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(dec.Counts(), "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	return plain, nil
}

func printPlain(w io.Writer, plain, shown *he.Plain, label string, exact bool) {
	h := shown.Header
	fmt.Fprintf(w, "%s of %s rows, preset %s\n", shown.Job.Op, fmtInt(h.Rows), h.Preset.Name)
	fmt.Fprintf(w, "[%s]\n", label)
	for i, v := range shown.Values {
		d := plain.Values[i]
		switch {
		case d.Exact && exact:
			fmt.Fprintf(w, "  %-28s %.0f  (exact; σ_flood %.3g hidden mod t)\n", v.Name, v.Value, d.FloodStd)
		case !exact:
			fmt.Fprintf(w, "  %-28s %.6g  (Laplace b = %.3g; decryption error ±%.3g)\n", v.Name, v.Value, v.LaplaceScale, d.ErrorStd)
		default:
			fmt.Fprintf(w, "  %-28s %.6g  (decryption error ±%.3g; σ_flood %.3g)\n", v.Name, v.Value, d.ErrorStd, d.FloodStd)
		}
	}
	for _, line := range derived(shown) {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

// derived are the statistics computed from the released aggregates.
func derived(p *he.Plain) []string {
	var out []string
	switch p.Job.Op {
	case he.OpCount:
		if v, err := p.Count(); err == nil {
			out = append(out, fmt.Sprintf("count = %.6g", v))
		}
	case he.OpMean:
		if v, err := p.Mean(); err == nil {
			out = append(out, fmt.Sprintf("mean(%s) = %.6g", p.Job.Column, v))
		}
	case he.OpVariance:
		m, err1 := p.Mean()
		v, err2 := p.Variance()
		if err1 == nil && err2 == nil {
			out = append(out, fmt.Sprintf("mean(%s) = %.6g", p.Job.Column, m), fmt.Sprintf("variance(%s) = %.6g", p.Job.Column, v))
		}
	case he.OpCovariance:
		if m, err := p.Covariance(); err == nil {
			out = append(out, fmt.Sprintf("covariance %v = %.6g", p.Job.Columns, m))
		}
	case he.OpRegression:
		if b, err := p.Regression(); err == nil {
			out = append(out, fmt.Sprintf("β (intercept, %s) = %.6g", strings.Join(p.Job.Columns, ", "), b))
		}
	}
	return out
}

func printPlainJSON(w io.Writer, p *he.Plain, label string, exact bool) error {
	type value struct {
		Name     string  `json:"name"`
		Value    float64 `json:"value"`
		ErrorStd float64 `json:"error_std"`
		FloodStd float64 `json:"flood_std"`
		Laplace  float64 `json:"laplace_scale,omitempty"`
	}
	out := struct {
		Job     he.Job   `json:"job"`
		Rows    int64    `json:"rows"`
		Preset  string   `json:"preset"`
		Exact   bool     `json:"exact"`
		Label   string   `json:"label"`
		Values  []value  `json:"values"`
		Derived []string `json:"derived,omitempty"`
	}{Job: p.Job, Rows: p.Header.Rows, Preset: p.Header.Preset.Name, Exact: exact, Label: label, Derived: derived(p)}
	for _, v := range p.Values {
		out.Values = append(out.Values, value{v.Name, v.Value, v.ErrorStd, v.FloodStd, v.LaplaceScale})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func fmtInt(n int64) string {
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

func heUploadCommand() *cobra.Command {
	var (
		sf    serverFlags
		eval  string
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "upload TABLE --eval KEYS",
		Short: "Send an encrypted table and its evaluation keys to a processor",
		Long: `upload streams the evaluation keys (eval.keys) and the encrypted table to the
processor's POST /v1/he/datasets and prints the dataset ID. The key must have
role processor (or admin) on the processor. Never pass secret.key: the
processor refuses it, and it must not leave this machine.`,
		Example: `  privalytics he upload orders.pvht --eval owner-keys/eval.keys --server http://processor:8080 --key $PROCESSOR_KEY`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client()
			if err != nil {
				return err
			}
			keys, err := os.ReadFile(eval)
			if err != nil {
				return fmt.Errorf("--eval: %w", err)
			}
			if he.LooksLikeSecretKey(keys) {
				return privalytics.Errorf(privalytics.EINVALID, "--eval %s is a secret key; pass eval.keys — the secret key never leaves this machine", eval)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			var body io.Reader = f
			if !quiet && isTerminal(cmd.ErrOrStderr()) {
				bar := progressbar.NewOptions64(fi.Size(), progressbar.OptionSetWriter(cmd.ErrOrStderr()), progressbar.OptionSetDescription("uploading"),
					progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
				defer bar.Finish()
				r := progressbar.NewReader(f, bar)
				body = &r
			}
			start := time.Now()
			ds, err := c.UploadHEDataset(cmd.Context(), keys, body, fi.Size())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Dataset %s: %s rows × %d columns, preset %s, ops %v; %s uploaded in %.2fs\n",
				ds.ID, fmtInt(ds.Rows), len(ds.Columns), ds.Preset, ds.Ops, sizeOf(int(ds.Bytes)), time.Since(start).Seconds())
			return nil
		},
	}
	sf.bind(cmd)
	cmd.Flags().StringVar(&eval, "eval", "", "evaluation keys from he keygen (eval.keys)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	_ = cmd.MarkFlagRequired("eval")
	return cmd
}

func heJobCommand() *cobra.Command {
	var (
		sf                         serverFlags
		dataset, op, column, group string
		columns, target, out       string
	)
	cmd := &cobra.Command{
		Use:   "job --dataset ID --op OP … --out RESULT",
		Short: "Run a statistic on an encrypted dataset and download the encrypted result",
		Long: `job asks the processor to compute one statistic on an uploaded dataset, waits
for it and writes the encrypted result to --out for he decrypt.

  --op count [--column INDICATOR]       --op sum|mean|variance --column X
  --op category-count --group G         --op category-sum --group G --column X
  --op dot --columns A,B                --op covariance --columns A,B,…
  --op regression --columns X1,X2 --target Y

The processor refuses, before computing, a job whose result could wrap around
(BGV) or overflow (CKKS) given the declared bounds and the row count.`,
		Example: `  privalytics he job --dataset hds_… --op mean --column quantity --out mean.pvhr --server http://processor:8080 --key $PROCESSOR_KEY`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := sf.client()
			if err != nil {
				return err
			}
			spec := client.HEJobSpec{Op: op, Column: column, Group: group, Target: target}
			if columns != "" {
				spec.Columns = strings.Split(columns, ",")
			}
			start := time.Now()
			j, err := c.SubmitHEJob(cmd.Context(), dataset, spec)
			if err != nil {
				return err
			}
			res, err := c.WaitHEJob(cmd.Context(), dataset, j.ID)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, res, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Job %s (%s) done in %.2fs; encrypted result → %s (%s)\n", j.ID, op, time.Since(start).Seconds(), out, sizeOf(len(res)))
			return nil
		},
	}
	sf.bind(cmd)
	cmd.Flags().StringVar(&dataset, "dataset", "", "dataset ID from he upload")
	cmd.Flags().StringVar(&op, "op", "", "count, sum, mean, variance, category-count, category-sum, dot, covariance or regression")
	cmd.Flags().StringVar(&column, "column", "", "the value column (or indicator for count)")
	cmd.Flags().StringVar(&group, "group", "", "the categorical column for category-count and category-sum")
	cmd.Flags().StringVar(&columns, "columns", "", "comma-separated columns for dot, covariance, regression")
	cmd.Flags().StringVar(&target, "target", "", "the y column for regression")
	cmd.Flags().StringVar(&out, "out", "", "file for the encrypted result")
	_ = cmd.MarkFlagRequired("dataset")
	_ = cmd.MarkFlagRequired("op")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
