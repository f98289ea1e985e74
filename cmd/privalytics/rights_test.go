package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp/dptest"
	"github.com/privalytics/privalytics/ingest"
	"github.com/privalytics/privalytics/store/keyring"
)

// rightsEvents makes n events per customer, every field set, each order_id and
// product unique to its customer, in January and February 2025.
func rightsEvents(customers []string, n int) ([]map[string]any, []byte) {
	var evs []map[string]any
	var body bytes.Buffer
	for ci, c := range customers {
		for i := range n {
			ev := map[string]any{
				"customer_id": c,
				"ts":          time.Date(2025, 1, 10+ci+i*4, 9, i, 0, 0, time.UTC).Format(time.RFC3339Nano),
				"type":        privalytics.EventPurchase,
				"store":       "store-" + strconv.Itoa(ci%2),
				"channel":     "web",
				"category":    "shoes",
				"product":     fmt.Sprintf("only-%s-product-%d", c, i),
				"order_id":    fmt.Sprintf("only-%s-order-%d", c, i),
				"quantity":    json.Number(strconv.Itoa(i + 1)),
				"amount":      json.Number(fmt.Sprintf("%d.%03d", 10+i, 250+ci)),
				"country":     "DE",
			}
			evs = append(evs, ev)
			line, _ := json.Marshal(ev)
			body.Write(append(line, '\n'))
		}
	}
	return evs, body.Bytes()
}

// countAll asks the number of events, exactly (the server runs without noise).
func countAll(t *testing.T, q *client.Client) float64 {
	t.Helper()
	res, err := q.Query(context.Background(), &wire.Query{
		Aggregates: []wire.Aggregate{{Name: "n", Op: "count"}},
		Bounds:     wire.Bounds{MaxGroups: 1, MaxRowsPerGroup: 100},
		Epsilon:    0.5,
	})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if len(res.Rows) != 1 {
		t.Fatalf("count query gave %d rows", len(res.Rows))
	}
	return res.Rows[0].Cells[0].Value
}

// needlesIn lists the files under dir holding any needle.
func needlesIn(t *testing.T, dir string, needles [][]byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(raw, n) {
				hits = append(hits, fmt.Sprintf("%s holds %q", path, n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestEndToEndCustomerRights: export returns exactly what was ingested, only
// admin keys reach a customer, rectification rewrites fields, erasure changes
// the next answer at once, and after compaction no file in the data directory
// holds the customer's pseudonym (8 bytes either way round, decimal, hex) or
// any value unique to them. Then retention purges old events.
//
// It runs with encryption at rest off, where the files before erasure show the
// search finds the customer, and on, where no event value of any customer
// appears in any file at any time.
func TestEndToEndCustomerRights(t *testing.T) {
	t.Parallel()
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypt_at_rest=%v", encrypted), func(t *testing.T) {
			t.Parallel()
			testCustomerRights(t, encrypted)
		})
	}
}

func testCustomerRights(t *testing.T, encrypted bool) {
	ctx := context.Background()
	mech := dptest.NoNoise()
	dir := t.TempDir()
	ts := startServerWith(t, &mech, dir, func(c *Config) { c.EncryptAtRest = encrypted })
	admin, ingestKey, query := ts.tenantKeys(t, "shop", wire.Cost{Epsilon: 100, Delta: 1e-3})
	customers := []string{"cust-victim-7781", "cust-2", "cust-3", "cust-4"}
	evs, body := rightsEvents(customers, 6)
	if _, err := ingestKey.Ingest(ctx, body, client.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	total := float64(len(evs))
	if got := countAll(t, query); got != total {
		t.Fatalf("count before erasure = %v, want %v", got, total)
	}

	// Access: exactly what was ingested, in JSON and CSV.
	exp, err := admin.ExportSubject(ctx, customers[0])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(evs[:6], exp.Events); diff != "" {
		t.Errorf("export (-ingested +exported):\n%s", diff)
	}
	raw, err := admin.ExportSubjectCSV(ctx, customers[0])
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil || len(rows) != 7 || rows[0][0] != "customer_id" || rows[1][0] != customers[0] || rows[1][7] != "only-cust-victim-7781-order-0" {
		t.Errorf("CSV export: %v rows, header %v, first %v (err %v)", len(rows), rows[0], rows[1], err)
	}
	for _, c := range []*client.Client{query, ingestKey} {
		if _, err := c.ExportSubject(ctx, customers[0]); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
			t.Errorf("export with a non-admin key: %v, want forbidden", err)
		}
		if _, err := c.EraseSubject(ctx, customers[0]); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
			t.Errorf("erase with a non-admin key: %v, want forbidden", err)
		}
	}
	if none, err := admin.ExportSubject(ctx, "never-seen"); err != nil || none.Rows != 0 || len(none.Events) != 0 {
		t.Errorf("export of an unknown customer: %+v, %v; want no events", none, err)
	}

	// Rectification: every event of cust-2 gets the new country; bad values are refused.
	if _, err := admin.RectifySubject(ctx, customers[1], map[string]any{"country": "FR"}); err != nil {
		t.Fatal(err)
	}
	fixed, err := admin.ExportSubject(ctx, customers[1])
	if err != nil {
		t.Fatal(err)
	}
	want := make([]map[string]any, 6)
	for i, ev := range evs[6:12] {
		want[i] = map[string]any{}
		for k, v := range ev {
			want[i][k] = v
		}
		want[i]["country"] = "FR"
	}
	if diff := cmp.Diff(want, fixed.Events); diff != "" {
		t.Errorf("export after rectification (-want +got):\n%s", diff)
	}
	for _, bad := range []map[string]any{{"type": "stolen"}, {"ts": "2025-01-01T00:00:00Z"}, {"nope": 1}} {
		if _, err := admin.RectifySubject(ctx, customers[1], bad); privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Errorf("rectify %v: %v, want invalid", bad, err)
		}
	}

	// The needles: the pseudonym as stored, and values only the victim has.
	tn, err := ts.app.meta.Tenant(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	mk, _, err := keyring.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := mk.Unwrap(tn.WrappedKey, []byte("tenant:shop"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ingest.NewPseudonymiser(key)
	if err != nil {
		t.Fatal(err)
	}
	subj := p.Subject([]byte(customers[0]))
	needles := [][]byte{
		binary.LittleEndian.AppendUint64(nil, subj), binary.BigEndian.AppendUint64(nil, subj),
		[]byte(strconv.FormatUint(subj, 10)), []byte(strconv.FormatUint(subj, 16)), []byte(customers[0]),
	}
	for _, ev := range evs[:6] {
		needles = append(needles, []byte(ev["order_id"].(string)), []byte(ev["product"].(string)))
	}
	if encrypted {
		// No value of any customer, nor the victim's pseudonym, is in the clear.
		all := slices.Clone(needles)
		for _, ev := range evs[6:] {
			all = append(all, []byte(ev["order_id"].(string)), []byte(ev["product"].(string)))
		}
		if hits := needlesIn(t, dir, all); len(hits) > 0 {
			t.Errorf("with encryption at rest on, files hold plaintext:\n%s", strings.Join(hits, "\n"))
		}
	} else if hits := needlesIn(t, dir, needles); len(hits) == 0 {
		t.Fatal("before erasure no file holds the victim's bytes, so the check after it would prove nothing")
	}

	// Erasure: the next answer leaves the victim out at once.
	rc, err := admin.EraseSubject(ctx, customers[0])
	if err != nil {
		t.Fatal(err)
	}
	if rc.Rows != 6 || rc.Subjects != 1 || rc.ID == "" {
		t.Errorf("receipt %+v, want 6 rows of 1 subject", rc)
	}
	if got := countAll(t, query); got != total-6 {
		t.Errorf("count right after erasure = %v, want %v", got, total-6)
	}
	if exp, err := admin.ExportSubject(ctx, customers[0]); err != nil || exp.Rows != 0 {
		t.Errorf("export after erasure: %+v, %v; want nothing", exp, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for rc.Status != privalytics.ErasureComplete {
		if time.Now().After(deadline) {
			t.Fatalf("erasure %s not compacted after 20 s: %+v", rc.ID, rc)
		}
		time.Sleep(20 * time.Millisecond)
		if rc, err = admin.Erasure(ctx, rc.ID); err != nil {
			t.Fatal(err)
		}
	}
	if rc.CompletedAt == nil || rc.CompletedAt.Before(rc.RequestedAt) {
		t.Errorf("complete receipt without a sound completion time: %+v", rc)
	}
	if hits := needlesIn(t, dir, needles); len(hits) > 0 {
		t.Errorf("after erasure and compaction the data directory still holds the victim:\n%s", strings.Join(hits, "\n"))
	}
	if _, err := admin.Erasure(ctx, "er_nope"); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("unknown receipt: %v, want not found", err)
	}

	// Retention: 30 days, a pass "on 1 March 2025" purges what is older than 30 January.
	if tn, err := admin.SetRetention(ctx, 30); err != nil || tn.RetentionDays != 30 {
		t.Fatalf("set retention: %+v, %v", tn, err)
	}
	if _, err := admin.SetRetention(ctx, -1); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("retention -1: %v, want invalid", err)
	}
	cut := time.Date(2025, 1, 30, 0, 0, 0, 0, time.UTC)
	old := 0
	for _, ev := range evs[6:] {
		if at, _ := time.Parse(time.RFC3339Nano, ev["ts"].(string)); at.Before(cut) {
			old++
		}
	}
	purged, err := ts.app.api.PurgeExpired(ctx, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(purged) != 1 || purged[0].Rows != old || !purged[0].Before.Equal(cut) {
		t.Errorf("purges %+v, want one of %d rows before %s", purged, old, cut)
	}
	left := total - 6 - float64(old)
	if got := countAll(t, query); got != left {
		t.Errorf("count after the retention purge = %v, want %v", got, left)
	}
	if !encrypted {
		if err := admin.RotateDataKey(ctx); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
			t.Errorf("rotate with encryption off: %v, want conflict", err)
		}
		return
	}

	// Key rotation while serving: ingest and queries go on, old data stays readable.
	if err := admin.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	more, body2 := rightsEvents([]string{"cust-5"}, 3)
	if _, err := ingestKey.Ingest(ctx, body2, client.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := countAll(t, query); got != left+float64(len(more)) {
		t.Errorf("count after rotation and more events = %v, want %v", got, left+float64(len(more)))
	}
	// Crypto-shredding: the operator destroys the tenant's keys; nothing reads its events again.
	if err := admin.ShredTenantEvents(ctx, "shop"); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
		t.Errorf("shred with the tenant's admin key: %v, want forbidden", err)
	}
	if err := ts.operator.ShredTenantEvents(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := query.Query(ctx, &wire.Query{Aggregates: []wire.Aggregate{{Op: "count"}}, Bounds: wire.Bounds{MaxGroups: 1, MaxRowsPerGroup: 100}, Epsilon: 0.5}); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Errorf("query after shredding: %v, want conflict", err)
	}
	if _, err := admin.ExportSubject(ctx, customers[1]); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Errorf("export after shredding: %v, want conflict", err)
	}
}
