package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/he"
	"github.com/privalytics/privalytics/internal/cli"
	"github.com/privalytics/privalytics/internal/progress"
)

// The owner's side of encrypted analytics (README, "Encrypted analytics"):
// keygen and encrypt and decrypt run on the owner's machine and never talk to
// a server; upload and job talk to a processor (serve --role processor).

// The owner's upload and job run over the Go SDK.
var _ he.ProcessorClient = (*client.Client)(nil)

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

func heKeygenCommand() *cobra.Command {
	var (
		preset, scheme, ops, out string
		budget                   float64
	)
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
			o, err := he.ParseOps(ops)
			if err != nil {
				return err
			}
			p, err := he.ChoosePreset(preset, he.Scheme(scheme), o)
			if err != nil {
				return err
			}
			if out == "" {
				return privalytics.Errorf(privalytics.EINVALID, "--out DIR is required: the directory for secret.key, public.key and eval.keys")
			}
			k, err := he.WriteKeys(out, p, o, budget)
			if err != nil {
				return err
			}
			k.WriteText(cmd.OutOrStdout(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&preset, "preset", "", "parameter preset: "+strings.Join(he.PresetNames(), ", ")+" (default: chosen from --scheme and --ops)")
	cmd.Flags().StringVar(&scheme, "scheme", string(he.BGV), "bgv (exact integers) or ckks (reals), when --preset is not given")
	cmd.Flags().StringVar(&ops, "ops", "", "operations the processor may run: count, sum, mean, variance, category-count, category-sum, dot, covariance, regression")
	cmd.Flags().StringVar(&out, "out", "", "directory for the key files (created 0700)")
	cmd.Flags().Float64Var(&budget, "budget", he.DefaultReleaseBudget, "total ε the DP releases of results under these keys may spend (recorded in the release ledger beside secret.key)")
	return cmd
}

// sizeOf and fmtInt write sizes and counts for a person.
var (
	sizeOf = he.FormatBytes
	fmtInt = he.FormatCount
)

func heEncryptCommand() *cobra.Command {
	var (
		public, format, out, subject string
		columns, categories          []string
		rowsPerSubject               int
		quiet, clip                  bool
	)
	cmd := &cobra.Command{
		Use:   "encrypt FILE --public KEY --subject CUSTOMER --rows-per-subject N --column NAME:MIN:MAX … --out TABLE",
		Short: "Encrypt columns of a CSV or Parquet file into an encrypted table",
		Long: `encrypt reads FILE (CSV with a header row, optionally .gz, or Parquet) and
writes the encrypted-table file (he/FORMAT.md) to --out, with a progress bar.

--subject names the customer column and --rows-per-subject the most rows one
customer keeps in the table: a customer's rows beyond it (the later ones in
file order) are dropped, and so are rows with an empty customer (they cannot
be bounded); both counts are printed. The customer column is never encrypted or sent; the cap is recorded in the table
header and he decrypt sizes its DP noise from it.

--column NAME:MIN:MAX declares a numeric column and its bounds. The bounds are a
contract: a value outside them is refused (with its row) unless --clip clamps
it, and the processor sizes its overflow checks and the DP release its noise
from them: tight bounds mean less noise. BGV presets take integers only; store
decimals scaled (cents). --category NAME:A,B,C turns a categorical column into
one 0/1 indicator column per declared value (NAME=A, …) for per-category counts
and sums; values not declared count in none. Column names, bounds, declared
categories, the cap and the row count are visible to the processor; the values are not.`,
		Example: `  privalytics he encrypt orders.csv --public owner-keys/public.key --subject customer --rows-per-subject 20 --column quantity:0:100 --category country:France,Germany --out orders.pvht`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := he.NewEncryptFile(public, columns, categories, subject, rowsPerSubject, clip, out)
			if err != nil {
				return err
			}
			if format == "" {
				if format, err = formatOf(args[0]); err != nil {
					return err
				}
			}
			start := time.Now()
			e.Input, e.Format = args[0], format
			var bar *progress.Bar
			if !quiet && isTerminal(cmd.ErrOrStderr()) {
				e.Progress = func(done, total int64) {
					if bar == nil { // the total is known once encryption starts
						bar = progress.New(cmd.ErrOrStderr(), total, "encrypting", false, false)
					}
					bar.Set(done)
				}
			}
			enc, err := e.Run(cmd.Context())
			if err != nil {
				return err
			}
			bar.Finish()
			enc.WriteText(cmd.OutOrStdout(), time.Since(start))
			return nil
		},
	}
	cmd.Flags().StringVar(&public, "public", "", "public key file from he keygen (public.key)")
	cmd.Flags().StringVar(&format, "format", "", "csv or parquet (default: from the file name)")
	cmd.Flags().StringVar(&subject, "subject", "", "the customer column (not encrypted; caps each customer's rows)")
	cmd.Flags().IntVar(&rowsPerSubject, "rows-per-subject", 0, "most rows one customer keeps in the table; later rows are dropped and counted")
	cmd.Flags().StringArrayVar(&columns, "column", nil, "numeric column with declared bounds, NAME:MIN:MAX (repeatable)")
	cmd.Flags().StringArrayVar(&categories, "category", nil, "categorical column with declared values, NAME:A,B,C (repeatable)")
	cmd.Flags().StringVar(&out, "out", "", "encrypted table file to write")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	cmd.Flags().BoolVar(&clip, "clip", false, "clamp values outside the declared bounds instead of refusing the file (the count is printed)")
	_ = cmd.MarkFlagRequired("public")
	_ = cmd.MarkFlagRequired("subject")
	_ = cmd.MarkFlagRequired("rows-per-subject")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func heDecryptCommand() *cobra.Command {
	var (
		secret, result  string
		epsilon, budget float64
		rowsPerSubject  int
		exact, asJSON   bool
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

By default the values and the row count are then released with Laplace noise
for --epsilon, with sensitivity from the declared bounds and the per-customer
row cap he encrypt enforced (recorded in the table). Every release's ε is
appended, fsynced, to the release ledger <secret key>.releases.jsonl before
anything is shown, and a release that would take the ledger past its budget
(set at keygen; --budget can lower it, or set it for older keys) is refused.
--exact skips the DP noise and the ledger: the output is for the owner's
internal use only and is labelled so; do not share it.`,
		Example: `  privalytics he decrypt --secret owner-keys/secret.key --result mean.pvhr --epsilon 1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := he.DecryptFile{SecretKey: secret, Result: result, Exact: exact, Epsilon: epsilon, Budget: budget, RowsPerSubject: rowsPerSubject}.Run(time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				return d.WriteJSON(cmd.OutOrStdout())
			}
			d.WriteText(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().StringVar(&secret, "secret", "", "secret key file from he keygen (secret.key)")
	cmd.Flags().StringVar(&result, "result", "", "encrypted result file from he job")
	cmd.Flags().Float64Var(&epsilon, "epsilon", 1, "ε spent on this release (Laplace noise on every value and the row count)")
	cmd.Flags().Float64Var(&budget, "budget", 0, "total ε of the key's releases; lowers the budget set at keygen, or sets one for keys made before the release ledger")
	cmd.Flags().IntVar(&rowsPerSubject, "rows-per-subject", 0, "most rows one customer has in the table; only for tables encrypted without --subject (their cap is recorded and used)")
	cmd.Flags().BoolVar(&exact, "exact", false, "show exact values without DP noise (owner-internal use only)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("secret")
	_ = cmd.MarkFlagRequired("result")
	return cmd
}

func heUploadCommand() *cobra.Command {
	var (
		sf    cli.ServerFlags
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
			c, err := sf.Client()
			if err != nil {
				return err
			}
			var bar *progress.Bar
			defer func() { bar.Finish() }()
			wrap := func(f io.Reader, size int64) io.Reader {
				bar = progress.New(cmd.ErrOrStderr(), size, "uploading", true, quiet)
				return bar.Reader(f)
			}
			start := time.Now()
			ds, err := he.Upload(cmd.Context(), c, eval, args[0], wrap)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Dataset %s: %s rows × %d columns, preset %s, ops %v; %s uploaded in %.2fs\n",
				ds.ID, fmtInt(ds.Rows), len(ds.Columns), ds.Preset, ds.Ops, sizeOf(int(ds.Bytes)), time.Since(start).Seconds())
			return nil
		},
	}
	sf.Bind(cmd)
	cmd.Flags().StringVar(&eval, "eval", "", "evaluation keys from he keygen (eval.keys)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	_ = cmd.MarkFlagRequired("eval")
	return cmd
}

func heJobCommand() *cobra.Command {
	var (
		sf                         cli.ServerFlags
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
			c, err := sf.Client()
			if err != nil {
				return err
			}
			spec := client.HEJobSpec{Op: op, Column: column, Group: group, Target: target}
			if columns != "" {
				spec.Columns = strings.Split(columns, ",")
			}
			start := time.Now()
			j, size, err := he.RunJob(cmd.Context(), c, dataset, spec, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Job %s (%s) done in %.2fs; encrypted result → %s (%s)\n", j.ID, op, time.Since(start).Seconds(), out, sizeOf(size))
			return nil
		},
	}
	sf.Bind(cmd)
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
