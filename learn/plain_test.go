package learn

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/dp"
)

// plainFederation answers rounds like Network without the encryption: the
// same tasks, the same noise shares from the same sampler, summed in the
// clear. The crypto adds only fixed-point rounding (±2^-17 per cell), so its
// releases have the distribution of Network's; it makes hundreds of
// trainings affordable for measuring how often a setting misses a target.
type plainFederation struct {
	data []*Rows
	t    int
	m    dp.Mechanisms
}

func (f plainFederation) Round(s *Schema, task Task) ([]float64, error) {
	var sum []float64
	for _, r := range f.data {
		c, err := task.Cells(r, s.Dim(), f.m)
		if err != nil {
			return nil, err
		}
		if sum == nil {
			sum = make([]float64, len(c))
		}
		for i, v := range c {
			sum[i] += v
		}
	}
	return sum, nil
}

func (f plainFederation) Size() (int, int, int) { return len(f.data), f.t, 8192 }

// TestSweepLogistic is a measurement, not a check: for each setting of
// rounds and Hessian share it trains the logistic model LEARN_SWEEP times on
// each of TestFederatedAccuracy's splits (plainFederation, same noise) and
// prints the distribution of the test-AUC gap to the central fit and how
// often it exceeds 0.03. (The federation releases sums over all locations, so
// the two splits give the same distribution; their counts can be pooled.)
//
//	LEARN_SWEEP=1000 LEARN_SWEEP_ROUNDS=10,20 LEARN_SWEEP_SHARES=0.35,0.2 go test ./learn -run TestSweepLogistic -v -timeout 60m
func TestSweepLogistic(t *testing.T) {
	spec := os.Getenv("LEARN_SWEEP")
	if spec == "" {
		t.Skip("SKIPPED: a measurement, not a check; set LEARN_SWEEP=runs, LEARN_SWEEP_ROUNDS=r1,r2,… and LEARN_SWEEP_SHARES=s1,s2,… to print the AUC gap's distribution per setting")
	}
	runs, _ := strconv.Atoi(spec)
	all := loadBank(t, "y")
	train, test := HoldOut(all, 0.2, 19)
	central, err := CentralLogistic(train)
	if err != nil {
		t.Fatal(err)
	}
	want := AUC((&Model{Kind: KindLogistic, Coefficients: central}).Scores(test), test.Y)
	splits := map[string][]*Rows{"random": SplitRandom(train, 6, 7), "job": SplitBy(train, "job", 6)}
	for _, rs := range strings.Split(os.Getenv("LEARN_SWEEP_ROUNDS"), ",") {
		rounds, _ := strconv.Atoi(rs)
		for _, hss := range strings.Split(os.Getenv("LEARN_SWEEP_SHARES"), ",") {
			hs, _ := strconv.ParseFloat(hss, 64)
			var line []string
			for _, name := range []string{"random", "job"} {
				var gaps []float64
				miss := 0
				for range runs {
					o := Options{Epsilon: 1, Delta: 1e-5, Rounds: rounds, HessianShare: hs, Mechanisms: dp.Secure()}
					m, err := TrainLogisticOn(plainFederation{splits[name], 5, o.Mechanisms}, BankSchema("y"), o)
					if err != nil {
						t.Fatal(err)
					}
					g := want - AUC(m.Scores(test), test.Y)
					gaps = append(gaps, g)
					if g > 0.03 {
						miss++
					}
				}
				sort.Float64s(gaps)
				mean := 0.0
				for _, g := range gaps {
					mean += g / float64(len(gaps))
				}
				line = append(line, fmt.Sprintf("%s mean %.4f p95 %.4f max %.4f miss %d/%d", name, mean, gaps[len(gaps)*95/100], gaps[len(gaps)-1], miss, runs))
			}
			fmt.Printf("rounds %2d share %.2f: %s\n", rounds, hs, strings.Join(line, " | "))
		}
	}
}

// sizedFederation is a plainFederation of the locations that answer, sized
// as the federation they belong to (Size's N counts the offline ones too).
type sizedFederation struct {
	plainFederation
	n int
}

func (f sizedFederation) Size() (int, int, int) { return f.n, f.t, 8192 }

// TestSweepMissingLocation is a measurement, not a check: it trains both
// models LEARN_SWEEP times as TestSeparateLocationProcesses does — six
// locations, threshold 5, the sixth location's customers missing — on
// hold-out splits, and prints how far they fall from the central fit on all
// six locations' rows: the ridge test-R² ratio (how often below 0.95) and the
// logistic test-AUC gap (how often above 0.03).
//
//	LEARN_SWEEP=1000 go test ./learn -run TestSweepMissingLocation -v
func TestSweepMissingLocation(t *testing.T) {
	spec := os.Getenv("LEARN_SWEEP")
	if spec == "" {
		t.Skip("SKIPPED: a measurement, not a check; set LEARN_SWEEP=runs to print the models' distance from the central fit with one location's customers missing")
	}
	runs, _ := strconv.Atoi(spec)
	for _, kind := range []string{KindRidge, KindLogistic} {
		label := "age"
		if kind == KindLogistic {
			label = "y"
		}
		all := loadBank(t, label)
		for _, seed := range []uint64{19, 3, 5} {
			train, test := HoldOut(all, 0.2, seed)
			f := sizedFederation{plainFederation{SplitRandom(train, 6, 7)[:5], 5, secure().Mechanisms}, 6}
			var central []float64
			var err error
			if kind == KindRidge {
				central, err = CentralRidge(train)
			} else {
				central, err = CentralLogistic(train)
			}
			if err != nil {
				t.Fatal(err)
			}
			base := &Model{Kind: kind, Coefficients: central}
			var dist []float64 // ridge: R² ratio; logistic: AUC gap
			miss, mean := 0, 0.0
			for range runs {
				var m *Model
				if kind == KindRidge {
					m, err = TrainRidgeOn(f, BankSchema(label), secure())
				} else {
					m, err = TrainLogisticOn(f, BankSchema(label), secure())
				}
				if err != nil {
					t.Fatal(err)
				}
				var d float64
				if kind == KindRidge {
					d = R2(m.Scores(test), test.Y) / R2(base.Scores(test), test.Y)
					if d < 0.95 {
						miss++
					}
				} else {
					d = AUC(base.Scores(test), test.Y) - AUC(m.Scores(test), test.Y)
					if d > 0.03 {
						miss++
					}
				}
				dist, mean = append(dist, d), mean+d/float64(runs)
			}
			sort.Float64s(dist)
			if kind == KindRidge {
				fmt.Printf("ridge, hold-out seed %2d: R² ratio mean %.4f p5 %.4f lowest %.4f; below 0.95 in %d of %d\n", seed, mean, dist[runs/20], dist[0], miss, runs)
			} else {
				fmt.Printf("logistic, hold-out seed %2d: AUC gap mean %.4f p95 %.4f largest %.4f; above 0.03 in %d of %d\n", seed, mean, dist[runs-1-runs/20], dist[runs-1], miss, runs)
			}
		}
	}
}
