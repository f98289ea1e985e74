package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/internal/bench"
	"github.com/privalytics/privalytics/learn"
	"github.com/privalytics/privalytics/learn/fairness"
)

// learnCommand wires the learn and learn/fairness packages: flags and files
// only; see docs/learning.md.
func learnCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "learn", Short: "Federated DP models for a franchise: train (simulated locations), score locally, audit for bias"}
	cmd.AddCommand(learnTrainCommand(), learnScoreCommand(), learnAuditCommand(), learnRelayCommand(), learnLocationCommand(), learnCoordinateCommand(), learnBenchCommand())
	return cmd
}

// franchiseScoreCommand is `privalytics franchise score`: a location scores
// its own customers with a released model, on its own machine. `learn score`
// is the same command.
func franchiseScoreCommand() *cobra.Command {
	c := learnScoreCommand()
	c.Short = "Score this location's own customers locally with a released model (no customer leaves the location)"
	c.Long = `score reads a model file (privalytics learn train / learn coordinate, or GET
/v1/models/{name}) and a CSV of this location's customers with the model's
schema's columns, and writes the CSV with a score column added: the probability
for a logistic model, the label's value for ridge. Nothing is sent anywhere.
Same as privalytics learn score.`
	c.Example = `  privalytics franchise score --model models/subscribe/v2.json --csv my_customers.csv --out scored.csv`
	return c
}

func learnRelayCommand() *cobra.Command {
	var listen, dir string
	c := &cobra.Command{
		Use:   "relay",
		Short: "Run the untrusted relay server of a training with separate location processes",
		Long: `relay serves the mailbox a training with separate location processes talks
through (docs/learning.md): it stores every blob it receives in --dir, write-once,
logs every request to --dir/relay.log, adds ciphertexts and combines decryption
shares. It holds no key. It runs until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			logf, err := os.OpenFile(filepath.Join(dir, "relay.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return err
			}
			defer logf.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("%w (pass a free --listen address)", err)
			}
			rl := &learn.Relay{Dir: dir, Log: slog.New(slog.NewTextHandler(logf, nil))}
			srv := &http.Server{Handler: rl.Handler(), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(cmd.OutOrStdout(), "relay listening on http://%s, storing in %s\n", ln.Addr(), dir)
			go func() {
				<-cmd.Context().Done()
				srv.Close()
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8091", "address to listen on")
	c.Flags().StringVar(&dir, "dir", "relay", "directory for the relay's blobs and log")
	return c
}

func learnLocationCommand() *cobra.Command {
	var (
		relay, csvPath string
		index          int
		timeout        time.Duration
		maxEps, delta  float64
	)
	c := &cobra.Command{
		Use:   "location",
		Short: "Take part in a federated training as one location, in its own process",
		Long: `location joins the key setup of the training the coordinator published on the
relay, then answers every round on this location's own CSV: it computes the
round's sums (XᵀX, Xᵀy or a gradient) over its customers, adds its share of the
Gaussian noise, encrypts them under the collective key and, when picked, sends a
decryption share. The CSV and the plaintext sums never leave this process. It
exits when the coordinator says the training is over.`,
		Example: `  privalytics learn location --relay http://127.0.0.1:8091 --index 0 --csv leeds.csv`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(csvPath)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := learn.RunLocation(ctx, learn.LocationConfig{Relay: relay, Index: index, CSV: data, Mechanisms: dp.Secure(), MaxEpsilon: maxEps, Delta: delta}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "location %d: training over\n", index)
			return nil
		},
	}
	c.Flags().StringVar(&relay, "relay", "http://127.0.0.1:8091", "the relay's URL")
	c.Flags().IntVar(&index, "index", 0, "this location's index, 0..N-1 (as agreed with the franchisor)")
	c.Flags().StringVar(&csvPath, "csv", "", "this location's customers, one row each")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	c.Flags().Float64Var(&maxEps, "max-epsilon", 1, "the most ε this location's customers may lose over all the tasks it answers (the tasks come through an untrusted relay); 0: no cap")
	c.Flags().Float64Var(&delta, "delta", 1e-5, "δ of --max-epsilon")
	return c
}

func learnCoordinateCommand() *cobra.Command {
	var (
		relay, kind, label, out, models, name string
		locations, threshold, rounds          int
		epsilon, delta                        float64
		window, timeout                       time.Duration
	)
	c := &cobra.Command{
		Use:   "coordinate",
		Short: "Train a model as the franchisor, with the locations in their own processes",
		Long: `coordinate publishes a training on the relay, waits until all --locations have
finished key setup (privalytics learn location), runs the rounds and decrypts only
their noisy t-of-N sums. A location that does not answer a round within --window
is dropped for the rest of the training; with fewer than --threshold left the
training stops. The schema is the bank-marketing one for --label.`,
		Example: `  privalytics learn coordinate --relay http://127.0.0.1:8091 --locations 6 --threshold 5 --kind logistic --label y --models models --name subscribe`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if kind != learn.KindLogistic && kind != learn.KindRidge {
				return fmt.Errorf("--kind must be %s or %s, got %q", learn.KindLogistic, learn.KindRidge, kind)
			}
			if name == "" && out == "" {
				return fmt.Errorf("pass --out FILE or --name NAME (with --models DIR) for the model")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			co, err := learn.NewCoordinator(ctx, relay, "learn", locations, threshold)
			if err != nil {
				return err
			}
			co.Window = window
			if err := co.WaitReady(); err != nil {
				return err
			}
			o := learn.Options{Epsilon: epsilon, Delta: delta, Rounds: rounds, HessianShare: learn.DefaultHessianShare, Mechanisms: dp.Secure()}
			var m *learn.Model
			if kind == learn.KindLogistic {
				m, err = learn.TrainLogisticOn(co, learn.BankSchema(label), o)
			} else {
				m, err = learn.TrainRidgeOn(co, learn.BankSchema(label), o)
			}
			if serr := co.Stop(); err == nil {
				err = serr
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s model: ε=%.3g δ=%g; %d rounds, ≤%d bytes per location per round; dropped locations %v\n",
				kind, m.Epsilon, m.Delta, co.Rounds, co.BytesPerLoc, sortedKeys(co.Dropped))
			if name != "" {
				if err := learn.SaveModel(models, name, m); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "stored as %s version %d in %s\n", name, m.Version, models)
				return nil
			}
			w, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return fmt.Errorf("%w (models are versioned: write a new file rather than overwrite one)", err)
			}
			defer w.Close()
			return m.WriteJSON(w)
		},
	}
	c.Flags().StringVar(&relay, "relay", "http://127.0.0.1:8091", "the relay's URL")
	c.Flags().StringVar(&kind, "kind", learn.KindLogistic, "logistic or ridge")
	c.Flags().StringVar(&label, "label", "y", `label column: "y" (logistic) or "age"/"balance" (ridge)`)
	c.Flags().StringVar(&out, "out", "", "where to write the model (never overwritten)")
	c.Flags().StringVar(&models, "models", "models", "directory of versioned models (with --name)")
	c.Flags().StringVar(&name, "name", "", "store the model as the next version of this name under --models")
	c.Flags().IntVar(&locations, "locations", 6, "N")
	c.Flags().IntVar(&threshold, "threshold", 5, "t")
	c.Flags().IntVar(&rounds, "rounds", learn.DefaultRounds, "gradient rounds (logistic)")
	c.Flags().Float64Var(&epsilon, "epsilon", 1, "ε per customer for the whole training")
	c.Flags().Float64Var(&delta, "delta", 1e-5, "δ")
	c.Flags().DurationVar(&window, "window", 30*time.Second, "how long a round waits for a location before dropping it")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	return c
}

func sortedKeys(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func learnTrainCommand() *cobra.Command {
	var (
		data, kind, label, split, out, models, name string
		locations, threshold, rounds                int
		epsilon, delta                              float64
	)
	c := &cobra.Command{
		Use:   "train",
		Short: "Train a model across simulated locations of the bank-marketing data and write it as JSON",
		Long: `train splits a bank-marketing CSV across --locations simulated locations (at
random or by a column), holds out 20%, runs the federation's real crypto in one
process (t = --threshold of N, the last location offline for decryption), and
prints the federated and centralised test metric. The model goes to --out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(data)
			if err != nil {
				return err
			}
			defer f.Close()
			o := learn.Options{Epsilon: epsilon, Delta: delta, Rounds: rounds, HessianShare: learn.DefaultHessianShare, Mechanisms: dp.Secure()}
			sim, err := learn.Simulate(f, learn.BankSchema(label), kind, locations, threshold, split, o, 19)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: federated %.4f, centralised %.4f; ε=%.3g δ=%g; %d rounds, %d bytes per location per round, %.1fs\n",
				kind, sim.Metric, sim.Federated, sim.Central, sim.Model.Epsilon, sim.Model.Delta, sim.Rounds, sim.BytesPerRound, sim.Seconds)
			if name != "" {
				if err := learn.SaveModel(models, name, sim.Model); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "stored as %s version %d in %s\n", name, sim.Model.Version, models)
				return nil
			}
			w, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return fmt.Errorf("%w (models are versioned: write a new file rather than overwrite one)", err)
			}
			defer w.Close()
			return sim.Model.WriteJSON(w)
		},
	}
	c.Flags().StringVar(&data, "data", "../shared/data/bank_marketing.csv", "the bank-marketing CSV")
	c.Flags().StringVar(&kind, "kind", learn.KindLogistic, "logistic or ridge")
	c.Flags().StringVar(&label, "label", "y", `label column: "y" (logistic) or "age"/"balance" (ridge)`)
	c.Flags().StringVar(&split, "split", "random", `"random" or a column to split locations by (e.g. job)`)
	c.Flags().StringVar(&out, "out", "model.json", "where to write the model (never overwritten); ignored with --name")
	c.Flags().StringVar(&models, "models", "models", "directory of versioned models (with --name)")
	c.Flags().StringVar(&name, "name", "", "store the model as the next version of this name under --models (models/<name>/v<N>.json)")
	c.Flags().IntVar(&locations, "locations", 6, "N")
	c.Flags().IntVar(&threshold, "threshold", 5, "t")
	c.Flags().IntVar(&rounds, "rounds", learn.DefaultRounds, "gradient rounds (logistic)")
	c.Flags().Float64Var(&epsilon, "epsilon", 1, "ε per customer for the whole training")
	c.Flags().Float64Var(&delta, "delta", 1e-5, "δ")
	return c
}

func learnScoreCommand() *cobra.Command {
	var model, in, out string
	c := &cobra.Command{
		Use:   "score",
		Short: "Score a location's own customers locally with a released model",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			mf, err := os.Open(model)
			if err != nil {
				return err
			}
			defer mf.Close()
			m, err := learn.ReadModel(mf)
			if err != nil {
				return err
			}
			f, err := os.Open(in)
			if err != nil {
				return err
			}
			defer f.Close()
			w := cmd.OutOrStdout()
			if out != "" {
				o, err := os.Create(out)
				if err != nil {
					return err
				}
				defer o.Close()
				w = o
			}
			return m.ScoreCSV(f, w)
		},
	}
	c.Flags().StringVar(&model, "model", "model.json", "the model file")
	c.Flags().StringVar(&in, "csv", "", "the location's customers (the model's schema's columns)")
	c.Flags().StringVar(&out, "out", "", "where to write the scores (default stdout)")
	return c
}

func learnAuditCommand() *cobra.Command {
	var (
		in, attribute, groups, group, score, label, positive, comma string
		threshold, epsilon, delta, confidence                       float64
		asJSON                                                      bool
	)
	c := &cobra.Command{
		Use:   "audit",
		Short: "DP bias audit of predictions (a CSV of group, score, outcome) with a plain-language report",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(in)
			if err != nil {
				return err
			}
			defer f.Close()
			cols := fairness.Columns{Group: group, Score: score, Label: label, Positive: positive}
			if comma != "" {
				cols.Comma = []rune(comma)[0]
			}
			recs, err := fairness.ReadCSV(f, cols)
			if err != nil {
				return err
			}
			cfg := fairness.Config{Attribute: attribute, Groups: strings.Split(groups, ","), Threshold: threshold, Epsilon: epsilon, Delta: delta, Confidence: confidence}
			rep, err := fairness.Audit(recs, cfg, dp.Secure())
			if err != nil {
				return err
			}
			if asJSON {
				e := json.NewEncoder(cmd.OutOrStdout())
				e.SetIndent("", "  ")
				return e.Encode(rep)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), rep.Markdown())
			return err
		},
	}
	c.Flags().StringVar(&in, "csv", "", "predictions: one row per customer")
	c.Flags().StringVar(&attribute, "attribute", "group", "what the groups are, for the report (e.g. \"age band\")")
	c.Flags().StringVar(&groups, "groups", "", "the declared groups, comma-separated (public; other values are not counted)")
	c.Flags().StringVar(&group, "group-column", "group", "column of the group")
	c.Flags().StringVar(&score, "score-column", "score", "column of the score in [0, 1]")
	c.Flags().StringVar(&label, "label-column", "y", "column of the outcome")
	c.Flags().StringVar(&positive, "positive", "yes", "the outcome's positive value")
	c.Flags().StringVar(&comma, "comma", "", "field separator (default ,)")
	c.Flags().Float64Var(&threshold, "threshold", 0.5, "a score ≥ threshold is a positive decision")
	c.Flags().Float64Var(&epsilon, "epsilon", 1, "ε per customer for the whole audit")
	c.Flags().Float64Var(&delta, "delta", 1e-5, "δ")
	c.Flags().Float64Var(&confidence, "confidence", 0.95, "confidence of every interval")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON instead of text")
	return c
}

func learnBenchCommand() *cobra.Command {
	var (
		data      string
		locations []int
		epsilon   float64
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Time federated training at several federation sizes over a loopback relay",
		Long: `bench trains the logistic (y) and ridge (age) models on the bank-marketing CSV at
each --locations size (t = N − 1), every location a goroutine speaking HTTP to a
relay on 127.0.0.1, and prints the key setup and training time, the bytes one
location uploads per round (ciphertext and decryption share) and the test metric
beside the centralised fit. All locations share this machine's cores.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := os.ReadFile(data)
			if err != nil {
				return err
			}
			_, err = bench.RunLearn(cmd.Context(), cmd.OutOrStdout(), bench.LearnOptions{Data: raw, Locations: locations, Epsilon: epsilon})
			return err
		},
	}
	c.Flags().StringVar(&data, "data", "../shared/data/bank_marketing.csv", "the bank-marketing CSV")
	c.Flags().IntSliceVar(&locations, "locations", []int{6, 10}, "federation sizes N")
	c.Flags().Float64Var(&epsilon, "epsilon", 1, "ε per customer for each training")
	return c
}
