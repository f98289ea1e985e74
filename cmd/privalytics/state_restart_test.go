package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/he"
	"github.com/privalytics/privalytics/he/federation"
)

// startOn runs the real App on cfg in this process; stop shuts it down as
// SIGTERM would (drain, HE jobs cancelled, stores closed) and waits.
func startOn(t *testing.T, cfg Config) (app *App, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	app, err := openApp(ctx, cfg, appOptions{logOutput: io.Discard})
	if err != nil {
		cancel()
		t.Fatalf("openApp: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- app.serve(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("the server did not stop within a minute")
		}
	}
	t.Cleanup(stop)
	return app, stop
}

// A real server restart while HE jobs are queued and computing: after the
// restart the dataset is there, every job (finished before, cut by the
// shutdown, or never started) ends done, and each result decrypts to the
// plaintext figure. A damaged dataset file then stops the start naming it.
func TestHEJobsSurviveARestart(t *testing.T) {
	x := make([]float64, 40_000)
	var sum float64
	for i := range x {
		x[i] = float64((i * 31) % 101)
		sum += x[i]
	}
	keys, evb, tab := heUploadFixture(t, x)
	dir := t.TempDir()
	cfg := startupConfig(dir)
	cfg.Role, cfg.HEJobs = "processor", 1
	ctx := context.Background()

	app, stop := startOn(t, cfg)
	op := client.New(app.URL(), app.OperatorToken)
	res, err := op.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "owner", Budget: wire.Cost{Epsilon: 1, Delta: 1e-6}})
	if err != nil {
		t.Fatal(err)
	}
	admin := op.WithToken(res.AdminKey.Token)
	k, err := admin.CreateKey(ctx, "processor", wire.RoleProcessor)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := admin.WithToken(k.Token).UploadHEDataset(ctx, evb, bytes.NewReader(tab), int64(len(tab)))
	if err != nil {
		t.Fatal(err)
	}
	pc := admin.WithToken(k.Token)
	var jobs []string
	for i := range 8 {
		j, err := pc.SubmitHEJob(ctx, ds.ID, client.HEJobSpec{Op: []string{"sum", "mean"}[i%2], Column: "x"})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j.ID)
	}
	last, err := pc.HEJobStatus(ctx, ds.ID, jobs[len(jobs)-1])
	if err != nil {
		t.Fatal(err)
	}
	if last.Status == he.JobDone {
		t.Fatal("the last of 8 jobs on one slot finished before the shutdown; the test needs a job cut by it (make the table larger)")
	}
	stop() // SIGTERM with jobs queued and one computing

	app, stop = startOn(t, cfg)
	pc = client.New(app.URL(), k.Token)
	if got, err := pc.HEDatasetInfo(ctx, ds.ID); err != nil || got.Rows != int64(len(x)) {
		t.Fatalf("the dataset after the restart: %+v, %v", got, err)
	}
	dec, _ := he.NewDecryptor(keys)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, id := range jobs {
		b, err := pc.WaitHEJob(wctx, ds.ID, id)
		if err != nil {
			t.Fatalf("job %s after the restart: %v", id, err)
		}
		var r he.Result
		if err := r.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		plain, err := dec.Decrypt(&r)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := plain.Get("sum(x)"); v != sum {
			t.Errorf("job %s after the restart: sum %v, plaintext %v", id, v, sum)
		}
	}
	stop()

	// A flipped byte in the stored table stops the next start, naming the file.
	table := filepath.Join(dir, "state", "he", "owner", ds.ID, "table")
	raw, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, tab[len(tab)/2:len(tab)/2+64]) {
		t.Error("the stored table is not encrypted at rest (--encrypt-at-rest is on)")
	}
	raw[len(raw)/2] ^= 1
	if err := os.WriteFile(table, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openApp(ctx, cfg, appOptions{logOutput: io.Discard})
	if err == nil || !strings.Contains(err.Error(), table) {
		t.Fatalf("start over a damaged table: %v, want a refusal naming %s", err, table)
	}
}

// A real server restart during a federation's setup and during a round: the
// location credentials still authenticate (no "send a valid location
// credential"), a location's retry of what it sent before the restart is a
// duplicate, the round completes and its result decrypts to the sum of the
// contributions.
func TestFederationRoundSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := startupConfig(dir)
	ctx := context.Background()
	app, stop := startOn(t, cfg)
	op := client.New(app.URL(), app.OperatorToken)
	res, err := op.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "franchisor", Budget: wire.Cost{Epsilon: 10, Delta: 1e-5}})
	if err != nil {
		t.Fatal(err)
	}
	adminToken := res.AdminKey.Token
	const n, th = 3, 2
	p, err := federation.NewParams(n, th)
	if err != nil {
		t.Fatal(err)
	}
	fr := federation.NewFranchisor(p)
	created, err := op.WithToken(adminToken).CreateFederation(ctx, wire.CreateFederationRequest{Name: "north", Locations: []string{"a", "b", "c"}, Threshold: th, FranchisorKey: p.EncodePublicKey(fr.Public)})
	if err != nil {
		t.Fatal(err)
	}
	fed, seed := created.Federation.ID, created.Federation.Seed
	locs := make([]*federation.Location, n)
	loc := func(i int) *client.Client { return client.New(app.URL(), created.Tokens[i]) }
	keyShares := make([][]byte, n)
	for i := range n {
		locs[i], _ = federation.NewLocation(p, i)
		ks, err := locs[i].KeyShare(seed)
		if err != nil {
			t.Fatal(err)
		}
		keyShares[i] = p.EncodeKeyShare(ks)
	}
	for i := range 2 {
		if _, err := loc(i).PostKeyShare(ctx, fed, keyShares[i]); err != nil {
			t.Fatal(err)
		}
	}

	stop() // during setup
	app, stop = startOn(t, cfg)
	if acc, err := loc(0).PostKeyShare(ctx, fed, keyShares[0]); err != nil || !acc.Duplicate {
		t.Fatalf("location 0's retry of its key share after a restart: %+v, %v; want a duplicate", acc, err)
	}
	if _, err := loc(2).PostKeyShare(ctx, fed, keyShares[2]); err != nil {
		t.Fatal(err)
	}
	view, err := loc(0).Federation(ctx, fed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		sealed, err := locs[i].ShamirShares(fed, seed, view.TransportKeys)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := loc(i).PostShamirShares(ctx, fed, p.EncodeSealed(sealed)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		in, err := loc(i).ShamirInbox(ctx, fed)
		if err != nil {
			t.Fatal(err)
		}
		shares, err := p.DecodeSealed(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := locs[i].CombineShares(fed, seed, view.TransportKeys, shares); err != nil {
			t.Fatal(err)
		}
	}
	cpkBytes, err := loc(1).CollectiveKey(ctx, fed)
	if err != nil {
		t.Fatal(err)
	}
	cpk, _ := p.DecodePublicKey(cpkBytes)
	admin := client.New(app.URL(), adminToken)
	q := wire.FederationQuery{SubjectColumn: "c", CategoryColumn: "k", Categories: []string{"x", "y"}, Aggregates: []string{federation.AggCount}, MaxRowsPerSubject: 1, Epsilon: 1, Delta: 1e-6}
	if _, err := admin.CreateRound(ctx, fed, wire.RoundRequest{Query: q, ContributeSeconds: 600, DecryptSeconds: 600}); err != nil {
		t.Fatal(err)
	}
	cells := [][]int64{{3, 1}, {5, 9}, {7, 2}}
	bodies := make([][]byte, n)
	for i := range n {
		ct, err := federation.Encrypt(p, cpk, cells[i])
		if err != nil {
			t.Fatal(err)
		}
		bodies[i] = p.EncodeCiphertext(ct)
	}
	if _, err := loc(0).Contribute(ctx, fed, 1, bodies[0]); err != nil {
		t.Fatal(err)
	}

	stop() // during the round's collection
	app, stop = startOn(t, cfg)
	loc = func(i int) *client.Client { return client.New(app.URL(), created.Tokens[i]) }
	acc, err := loc(0).Contribute(ctx, fed, 1, bodies[0])
	if err != nil || !acc.Duplicate {
		t.Fatalf("location 0's retry after a restart: %+v, %v; want an accepted duplicate", acc, err)
	}
	for i := 1; i < n; i++ {
		if _, err := loc(i).Contribute(ctx, fed, 1, bodies[i]); err != nil {
			t.Fatal(err)
		}
	}
	var rv *wire.Round
	for i := range th {
		if rv, err = loc(i).ReadyToDecrypt(ctx, fed, 1); err != nil {
			t.Fatal(err)
		}
	}
	aggBytes, err := loc(0).RoundAggregate(ctx, fed, 1)
	if err != nil {
		t.Fatal(err)
	}
	agg, _ := p.DecodeCiphertext(aggBytes)
	s0, err := locs[rv.Active[0]].DecryptionShare(rv.Active, agg, fr.Public)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loc(rv.Active[0]).PostDecryptionShare(ctx, fed, 1, p.EncodeDecryptionShare(s0)); err != nil {
		t.Fatal(err)
	}

	stop() // during the round's decryption
	app, stop = startOn(t, cfg)
	defer stop()
	loc = func(i int) *client.Client { return client.New(app.URL(), created.Tokens[i]) }
	s1, err := locs[rv.Active[1]].DecryptionShare(rv.Active, agg, fr.Public)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loc(rv.Active[1]).PostDecryptionShare(ctx, fed, 1, p.EncodeDecryptionShare(s1)); err != nil {
		t.Fatal(err)
	}
	out, err := client.New(app.URL(), adminToken).RoundResult(ctx, fed, 1)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := p.DecodeCiphertext(out)
	got, _ := fr.Decrypt(ct, 2)
	if want := []int64{3 + 5 + 7, 1 + 9 + 2}; !slices.Equal(got, want) {
		t.Fatalf("the round's result after restarts decrypts to %v, want %v", got, want)
	}
	_, err = client.New(app.URL(), created.Tokens[0]+"0").Federation(ctx, fed)
	if privalytics.ErrorCode(err) != privalytics.EUNAUTHORIZED {
		t.Errorf("a forged credential after the restarts: %v, want %s", err, privalytics.EUNAUTHORIZED)
	}

	// `privalytics backup` of the live server carries the federation: the
	// restored server serves the same result and knows the credentials.
	dest := filepath.Join(t.TempDir(), "backup")
	restored := filepath.Join(t.TempDir(), "restored")
	for _, args := range [][]string{{"backup", dest, "--data-dir", dir}, {"restore", dest, "--data-dir", restored}} {
		root := rootCommand()
		root.SetOut(io.Discard)
		root.SetArgs(args)
		if err := root.ExecuteContext(ctx); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	stop()
	app, stop = startOn(t, startupConfig(restored))
	again, err := client.New(app.URL(), adminToken).RoundResult(ctx, fed, 1)
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("the round's result on the restored server: %d bytes, %v", len(again), err)
	}
	if _, err := client.New(app.URL(), created.Tokens[2]).Federation(ctx, fed); err != nil {
		t.Fatalf("a location credential on the restored server: %v", err)
	}
	stop()

	// A flipped byte in the round's file stops the next start, naming it.
	round := filepath.Join(restored, "state", "federations", fed, "round-1")
	raw, err := os.ReadFile(round)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-20] ^= 4
	if err := os.WriteFile(round, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openApp(ctx, startupConfig(restored), appOptions{logOutput: io.Discard}); err == nil || !strings.Contains(err.Error(), round) {
		t.Fatalf("start over a damaged round file: %v, want a refusal naming %s", err, round)
	}
}
