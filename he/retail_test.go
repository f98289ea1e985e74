package he

import (
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOnlineRetail encrypts the 541,909 rows of the UCI Online Retail set and
// checks the decrypted aggregates against the independently computed truth:
// BGV exactly (quantity sum, rows of the top three countries), CKKS revenue
// within its stated error.
func TestOnlineRetail(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypts 541,909 rows; skipped with -short")
	}
	t.Parallel()
	dir := sharedData(t)
	var truth struct {
		R struct {
			Rows          int64           `json:"rows"`
			SumQuantity   float64         `json:"sum_quantity"`
			Revenue       float64         `json:"sum_quantity_x_unitprice"`
			RowsByCountry [][]interface{} `json:"rows_by_country_top10"`
		} `json:"online_retail_uci"`
	}
	tb, err := os.ReadFile(filepath.Join(dir, "online_retail_uci.truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(tb, &truth); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "online_retail_uci.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	rd := csv.NewReader(gz)
	rd.ReuseRecord = true
	if _, err := rd.Read(); err != nil { // header
		t.Fatal(err)
	}
	var qty, revenue []float64
	var country []string
	for {
		rec, err := rd.Read()
		if err != nil {
			break
		}
		q, _ := strconv.ParseFloat(rec[3], 64)
		p, _ := strconv.ParseFloat(rec[5], 64)
		qty = append(qty, q)
		revenue = append(revenue, q*p)
		country = append(country, rec[7])
	}
	if int64(len(qty)) != truth.R.Rows {
		t.Fatalf("read %d rows, truth has %d", len(qty), truth.R.Rows)
	}
	bounds := func(x []float64) (float64, float64) {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range x {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		return lo, hi
	}
	top := []string{"United Kingdom", "Germany", "France"}
	wantRows := map[string]float64{}
	for _, kv := range truth.R.RowsByCountry[:3] {
		wantRows["sum(country="+kv[0].(string)+")"] = kv[1].(float64)
	}

	t.Run("bgv", func(t *testing.T) {
		t.Parallel()
		p, _ := PresetFor(BGV, OpSum, OpCategoryCount)
		fx := keysFor(t, p, OpSum, OpCategoryCount)
		lo, hi := bounds(qty)
		specs, inds := IndicatorColumns("country", top, country)
		tab := encrypt(t, p, fx.keys, dataset{spec: append([]ColumnSpec{{Name: "quantity", Kind: KindValue, Min: lo, Max: hi}}, specs...), columns: append([][]float64{qty}, inds...)})
		proc, _ := NewProcessor(fx.evk)
		want := map[string]float64{"sum(quantity)": truth.R.SumQuantity}
		got := map[string]float64{}
		for _, job := range []Job{{Op: OpSum, Column: "quantity"}, {Op: OpCategoryCount, Group: "country"}} {
			res, err := proc.Run(context.Background(), tab, job)
			if err != nil {
				t.Fatal(err)
			}
			g, _ := decryptMap(t, fx.keys, res)
			for k, v := range g {
				got[k] = v
			}
		}
		for k, v := range wantRows {
			want[k] = v
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("exact aggregates (-want +got):\n%s", diff)
		}
	})
	t.Run("ckks", func(t *testing.T) {
		t.Parallel()
		p, _ := PresetFor(CKKS, OpSum)
		fx := keysFor(t, p, OpSum)
		lo, hi := bounds(revenue)
		tab := encrypt(t, p, fx.keys, dataset{spec: []ColumnSpec{{Name: "revenue", Kind: KindValue, Min: lo, Max: hi}}, columns: [][]float64{revenue}})
		proc, _ := NewProcessor(fx.evk)
		res, err := proc.Run(context.Background(), tab, Job{Op: OpSum, Column: "revenue"})
		if err != nil {
			t.Fatal(err)
		}
		got, std := decryptMap(t, fx.keys, res)
		t.Logf("revenue: got %.2f want %.2f, stated σ %.3g", got["sum(revenue)"], truth.R.Revenue, std["sum(revenue)"])
		// The truth is rounded to cents: allow 0.005 on top of 6σ.
		if e := math.Abs(got["sum(revenue)"] - truth.R.Revenue); e > 6*std["sum(revenue)"]+0.005 {
			t.Errorf("revenue = %.2f, want %.2f (error %.3g, σ %.3g)", got["sum(revenue)"], truth.R.Revenue, e, std["sum(revenue)"])
		}
	})
}
