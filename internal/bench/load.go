package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/synth"
)

// loadBenchTenant creates a tenant and streams rows events of the query
// benchmark's generator into it (one customer per ten events, as for "bench").
func loadBenchTenant(ctx context.Context, op *client.Client, id string, rows, senders int) error {
	_, ingest, err := benchTenant(ctx, op, id)
	if err != nil {
		return err
	}
	cfg := synth.DefaultConfig()
	cfg.Customers, cfg.Events, cfg.Seed = max(rows/10, 1000), rows, 12
	_, err = Stream(ctx, ingest, cfg, 50_000, senders, nil)
	return err
}

// benchTenant creates a tenant with a budget no benchmark exhausts and
// returns clients with its admin key and with a new ingest key.
func benchTenant(ctx context.Context, op *client.Client, id string) (admin, ingest *client.Client, err error) {
	created, err := op.CreateTenant(ctx, wire.CreateTenantRequest{ID: id, Budget: wire.Cost{Epsilon: 1e6, Delta: 0.5}, Period: "lifetime"})
	if err != nil {
		return nil, nil, err
	}
	admin = op.WithToken(created.AdminKey.Token)
	ik, err := admin.CreateKey(ctx, "load", wire.RoleIngest)
	if err != nil {
		return nil, nil, err
	}
	return admin, admin.WithToken(ik.Token), nil
}

// ndjsonBatches pre-generates the batches so generation is not timed.
func ndjsonBatches(cfg synth.Config, per int) ([][]byte, error) {
	gen, err := synth.New(cfg)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	var ev synth.Event
	buf, n := make([]byte, 0, per*150), 0
	for gen.Next(&ev) {
		buf = synth.AppendNDJSON(buf, &ev)
		if n++; n == per {
			out, buf, n = append(out, buf), make([]byte, 0, per*150), 0
		}
	}
	if n > 0 {
		out = append(out, buf)
	}
	return out, nil
}

// Stream generates cfg's events and sends them as NDJSON batches of per rows
// from senders concurrent clients, as a busy web shop would, without holding
// their text in memory (the timed HTTP figure uses pre-generated batches
// instead, so generation is not timed). sent, if not nil, is called with the
// rows of each stored batch (from the senders' goroutines); Stream returns the
// events generated once every sender has finished.
func Stream(ctx context.Context, c *client.Client, cfg synth.Config, per, senders int, sent func(rows int)) (int, error) {
	gen, err := synth.New(cfg)
	if err != nil {
		return 0, err
	}
	work := make(chan []byte, senders)
	errc := make(chan error, senders)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				res, err := c.Ingest(ctx, b, client.IngestOptions{})
				if err != nil {
					errc <- err
					for range work { // drain, so the generator does not block
					}
					return
				}
				if sent != nil {
					sent(res.Rows)
				}
			}
		}()
	}
	var ev synth.Event
	buf, n, total := make([]byte, 0, per*150), 0, 0
	for gen.Next(&ev) {
		buf = synth.AppendNDJSON(buf, &ev)
		total++
		if n++; n == per {
			work <- buf
			buf, n = make([]byte, 0, per*150), 0
		}
	}
	if n > 0 {
		work <- buf
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return 0, err
	default:
		return total, nil
	}
}

func sendBatches(ctx context.Context, c *client.Client, batches [][]byte, senders int) (time.Duration, error) {
	work := make(chan []byte)
	errc := make(chan error, senders)
	var wg sync.WaitGroup
	start := time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if _, err := c.Ingest(ctx, b, client.IngestOptions{}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for _, b := range batches {
		select {
		case work <- b:
		case err := <-errc:
			close(work)
			wg.Wait()
			return 0, err
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return 0, err
	default:
	}
	return time.Since(start), nil
}

// importPath uploads the file at path through POST /v1/imports.
func importPath(ctx context.Context, c *client.Client, path string, opt client.ImportOptions) (*wire.ImportReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return c.Import(ctx, f, fi.Size(), opt)
}

// pollInterval paces every wait for the other parties of a federation round.
const pollInterval = 25 * time.Millisecond

// waitFor polls until done returns true or an error, or the context ends.
func waitFor(ctx context.Context, what string, done func() (bool, error)) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}
