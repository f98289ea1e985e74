package learn

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// BenchmarkFederatedTraining trains on the bank data across 6 and 10
// locations (t = N − 1, one offline), ε = 1, and reports the training time,
// the bytes one location uploads per round (its ciphertext and its decryption
// share) and the test metric. Reproduce with:
//
//	go test ./learn -run '^$' -bench FederatedTraining -benchtime 1x
func BenchmarkFederatedTraining(b *testing.B) {
	raw, err := os.ReadFile(bankFile(b))
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{KindLogistic, KindRidge} {
		for _, n := range []int{6, 10} {
			b.Run(fmt.Sprintf("%s/locations=%d", kind, n), func(b *testing.B) {
				label := "y"
				if kind == KindRidge {
					label = "age"
				}
				var sim *Simulation
				for range b.N {
					sim, err = Simulate(bytes.NewReader(raw), BankSchema(label), kind, n, n-1, "random", secure(), 19)
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(sim.Seconds, "train-s")
				b.ReportMetric(float64(sim.BytesPerRound), "bytes/loc/round")
				b.ReportMetric(float64(sim.Rounds), "rounds")
				b.ReportMetric(sim.Federated, "fed-metric")
				b.ReportMetric(sim.Central, "central-metric")
			})
		}
	}
}

func TestScoreCSVLocally(t *testing.T) {
	t.Parallel()
	s := &Schema{Numeric: []Numeric{{Name: "a", Lower: 0, Upper: 10}}, Categorical: []Categorical{{Name: "c", Levels: []string{"x", "y"}}}, Label: "out", Positive: "1"}
	m := &Model{FormatVersion: FormatVersion, Kind: KindLogistic, Schema: *s, Coefficients: []float64{0, 0, 5}}
	var out bytes.Buffer
	// No label column: scoring does not need the outcome.
	if err := m.ScoreCSV(strings.NewReader("id,a,c\n1,5,x\n2,5,y\n"), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || lines[0] != "id,a,c,score" || !strings.HasSuffix(lines[1], ",0.500000") || strings.HasSuffix(lines[2], ",0.500000") {
		t.Fatalf("scores:\n%s", out.String())
	}
	if err := m.ScoreCSV(strings.NewReader("id,c\n1,x\n"), &out); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("missing column gave %v", err)
	}
}
