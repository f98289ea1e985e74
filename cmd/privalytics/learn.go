package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/learn"
	"github.com/privalytics/privalytics/learn/fairness"
)

// learnCommand wires the learn and learn/fairness packages: flags and files
// only; see docs/learning.md.
func learnCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "learn", Short: "Federated DP models for a franchise: train (simulated locations), score locally, audit for bias"}
	cmd.AddCommand(learnTrainCommand(), learnScoreCommand(), learnAuditCommand())
	return cmd
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
			o := learn.Options{Epsilon: epsilon, Delta: delta, Rounds: rounds, HessianShare: 0.35, Mechanisms: dp.Secure()}
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
	c.Flags().IntVar(&rounds, "rounds", 10, "gradient rounds (logistic)")
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
