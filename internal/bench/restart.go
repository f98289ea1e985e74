package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/store/events"
)

// restartFigures is what a restart cost.
type restartFigures struct {
	app        Server
	firstQuery time.Duration // from the new start to the first DP query's answer
	ready      time.Duration // from the new start to /readyz 200 (every tenant loaded)
	loadRate   float64       // rows ÷ ready
	cpuRate    float64       // rows ÷ the process's CPU time from listening to ready (0: not measured)
}

// benchRestart restarts the server, sends the benchmark's DP query over HTTP
// with the bench tenant's admin key as soon as it listens (it waits for the
// tenant's segments to load: issue 20's "first query after restart"), then
// waits for /readyz. rows is what the store holds.
func benchRestart(ctx context.Context, app Server, adminToken string, rows int, profile string) (restartFigures, error) {
	srv, opened, err := app.Restart(ctx)
	if err != nil {
		return restartFigures{}, fmt.Errorf("restart: %w", err)
	}
	stopProfile, err := startCPUProfile(profile) // from listening to ready: the tenants' load
	if err != nil {
		return restartFigures{}, err
	}
	defer stopProfile()
	f := restartFigures{app: srv}
	cpu0 := events.ProcessCPU()
	// /readyz is polled from the start, beside the query, so that the query
	// does not delay the moment it turns 200.
	readyc := make(chan error, 1)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			res, err := http.Get(srv.URL() + "/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					f.ready = time.Since(opened)
					if cpu := events.ProcessCPU() - cpu0; cpu > 0 {
						f.cpuRate = float64(rows) / cpu.Seconds()
					}
					readyc <- nil
					return
				}
			}
			select {
			case <-pctx.Done():
				readyc <- fmt.Errorf("gave up waiting for /readyz after the restart: %w", pctx.Err())
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	q := client.New(srv.URL(), adminToken)
	body := `{"where":[{"column":"type","eq":"purchase"}],"group_by":[{"column":"category"}],"aggregates":[{"op":"count"},{"name":"revenue","op":"sum","column":"amount","lower":0,"upper":500}],"bounds":{"max_groups":5,"max_rows_per_group":10},"epsilon":0.01,"delta":1e-9}`
	if _, err := q.QueryJSON(ctx, []byte(body)); err != nil {
		return f, fmt.Errorf("first query after the restart: %w", err)
	}
	f.firstQuery = time.Since(opened)
	if err := <-readyc; err != nil {
		return f, err
	}
	f.loadRate = float64(rows) / f.ready.Seconds()
	return f, nil
}

// segmentDisk sums the bytes of every tenant's load images and Parquet
// segments under a data directory.
func segmentDisk(dataDir string) (images, segments int64) {
	for _, pat := range []struct {
		glob string
		sum  *int64
	}{{"*.image", &images}, {"*.parquet", &segments}} {
		files, _ := filepath.Glob(filepath.Join(dataDir, "events", "*", "segments", pat.glob))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				*pat.sum += fi.Size()
			}
		}
	}
	return images, segments
}
