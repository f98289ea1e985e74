package learn

import (
	"io"
	"time"

	"github.com/privalytics/privalytics"
)

// Simulation is the result of training across simulated locations.
type Simulation struct {
	Model *Model `json:"model"`
	// Metric is the test AUC (logistic) or R² (ridge) on the held-out 20%,
	// of the federated model and of the centralised non-private fit.
	Metric        string  `json:"metric"`
	Federated     float64 `json:"federated"`
	Central       float64 `json:"central"`
	Locations     int     `json:"locations"`
	Threshold     int     `json:"threshold"`
	Split         string  `json:"split"`
	Rounds        int     `json:"rounds"`
	BytesPerRound int64   `json:"bytes_per_location_per_round"`
	Seconds       float64 `json:"seconds"`
}

// Simulate splits a CSV across locations ("random", or by a column such as
// "job"), holds out 20% as a test set, trains the federated model over the
// real federation crypto with the last location offline for decryption, and
// compares it with the centralised fit. It is what the CLI's `learn train`
// and the benchmark run; real deployments run one location per process.
func Simulate(r io.Reader, s *Schema, kind string, locations, threshold int, split string, o Options, seed uint64) (*Simulation, error) {
	if kind != KindLogistic && kind != KindRidge {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: kind must be %q or %q, got %q", KindLogistic, KindRidge, kind)
	}
	all, err := s.ReadCSV(r)
	if err != nil {
		return nil, err
	}
	train, test := HoldOut(all, 0.2, seed)
	var parts []*Rows
	if split == "random" {
		parts = SplitRandom(train, locations, seed)
	} else {
		if len(all.Fields) > 0 {
			if _, ok := all.Fields[0][split]; !ok {
				return nil, privalytics.Errorf(privalytics.EINVALID, "learn: split must be \"random\" or a column of the file, got %q", split)
			}
		}
		parts = SplitBy(train, split, locations)
	}
	nw, err := NewNetwork(locations, threshold)
	if err != nil {
		return nil, err
	}
	if threshold < locations {
		nw.Offline[locations-1] = true
	}
	start := time.Now()
	sim := &Simulation{Locations: locations, Threshold: threshold, Split: split}
	var central []float64
	if kind == KindLogistic {
		sim.Model, err = TrainLogistic(nw, s, parts, o)
		if err == nil {
			central, err = CentralLogistic(train)
		}
	} else {
		sim.Model, err = TrainRidge(nw, s, parts, o)
		if err == nil {
			central, err = CentralRidge(train)
		}
	}
	if err != nil {
		return nil, err
	}
	sim.Seconds = time.Since(start).Seconds()
	base := &Model{Kind: kind, Coefficients: central}
	if kind == KindLogistic {
		sim.Metric, sim.Federated, sim.Central = "test AUC", AUC(sim.Model.Scores(test), test.Y), AUC(base.Scores(test), test.Y)
	} else {
		sim.Metric, sim.Federated, sim.Central = "test R²", R2(sim.Model.Scores(test), test.Y), R2(base.Scores(test), test.Y)
	}
	sim.Rounds, sim.BytesPerRound = nw.Rounds, nw.BytesPerLoc
	return sim, nil
}
