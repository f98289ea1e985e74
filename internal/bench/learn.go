package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/learn"
)

// LearnOptions size `learn bench`.
type LearnOptions struct {
	Data      []byte // the bank-marketing CSV
	Locations []int  // federation sizes; t = N − 1
	Epsilon   float64
}

// LearnRow is one measured training.
type LearnRow struct {
	Kind                string
	Locations, Rounds   int
	Setup, Train        time.Duration
	BytesPerLocPerRound int64
	Metric              string
	Federated, Central  float64
}

// RunLearn trains both models at each federation size with every location a
// goroutine speaking HTTP to a relay on 127.0.0.1 (its blobs in a temporary
// directory), and prints training time, bytes one location uploads per round
// (its ciphertext and its decryption share) and the test metric beside the
// centralised fit. Locations share this machine's cores, so the times are an
// upper bound on a deployment's critical path.
func RunLearn(ctx context.Context, out io.Writer, opt LearnOptions) ([]LearnRow, error) {
	parts := map[int][][]byte{}
	var test []byte
	var rows []LearnRow
	for _, n := range opt.Locations {
		parts[n], test = learn.SplitCSV(opt.Data, n, 0.2, 19)
		for _, kind := range []string{learn.KindLogistic, learn.KindRidge} {
			r, err := learnOnce(ctx, kind, parts[n], test, opt.Epsilon)
			if err != nil {
				return nil, err
			}
			rows = append(rows, r)
		}
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tlocations\tt\trounds\tsetup\ttraining\tbytes/location/round\ttest metric (federated / central)")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2fs\t%.2fs\t%d\t%s %.4f / %.4f\n", r.Kind, r.Locations, r.Locations-1, r.Rounds,
			r.Setup.Seconds(), r.Train.Seconds(), r.BytesPerLocPerRound, r.Metric, r.Federated, r.Central)
	}
	return rows, tw.Flush()
}

func learnOnce(ctx context.Context, kind string, parts [][]byte, test []byte, epsilon float64) (LearnRow, error) {
	n := len(parts)
	row := LearnRow{Kind: kind, Locations: n}
	dir, err := os.MkdirTemp("", "privalytics-learn-bench-")
	if err != nil {
		return row, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return row, err
	}
	srv := &http.Server{Handler: (&learn.Relay{Dir: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()

	start := time.Now()
	co, err := learn.NewCoordinator(ctx, url, "bench", n, n-1)
	if err != nil {
		return row, err
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- learn.RunLocation(ctx, learn.LocationConfig{Relay: url, Index: i, CSV: parts[i], Mechanisms: dp.Secure()})
		}()
	}
	if err := co.WaitReady(); err != nil {
		return row, err
	}
	row.Setup = time.Since(start)
	label := "y"
	if kind == learn.KindRidge {
		label = "age"
	}
	s := learn.BankSchema(label)
	o := learn.Options{Epsilon: epsilon, Delta: 1e-5, Rounds: learn.DefaultRounds, HessianShare: learn.DefaultHessianShare, Mechanisms: dp.Secure()}
	start = time.Now()
	var m *learn.Model
	if kind == learn.KindLogistic {
		m, err = learn.TrainLogisticOn(co, s, o)
	} else {
		m, err = learn.TrainRidgeOn(co, s, o)
	}
	row.Train = time.Since(start)
	if serr := co.Stop(); err == nil {
		err = serr
	}
	for range n {
		if lerr := <-errs; err == nil {
			err = lerr
		}
	}
	if err != nil {
		return row, err
	}
	row.Rounds, row.BytesPerLocPerRound = co.Rounds, co.BytesPerLoc

	var all [][]byte
	for _, p := range parts {
		all = append(all, p)
	}
	train, err := s.ReadCSV(bytes.NewReader(joinCSV(all)))
	if err != nil {
		return row, err
	}
	held, err := s.ReadCSV(bytes.NewReader(test))
	if err != nil {
		return row, err
	}
	base := &learn.Model{Kind: kind}
	if kind == learn.KindLogistic {
		base.Coefficients, err = learn.CentralLogistic(train)
		row.Metric = "AUC"
	} else {
		base.Coefficients, err = learn.CentralRidge(train)
		row.Metric = "R²"
	}
	if err != nil {
		return row, err
	}
	if kind == learn.KindLogistic {
		row.Federated, row.Central = learn.AUC(m.Scores(held), held.Y), learn.AUC(base.Scores(held), held.Y)
	} else {
		row.Federated, row.Central = learn.R2(m.Scores(held), held.Y), learn.R2(base.Scores(held), held.Y)
	}
	return row, nil
}

// joinCSV concatenates CSVs that share a header.
func joinCSV(parts [][]byte) []byte {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			if k := bytes.IndexByte(p, '\n'); k >= 0 {
				p = p[k+1:]
			}
		}
		b.Write(p)
	}
	return b.Bytes()
}
