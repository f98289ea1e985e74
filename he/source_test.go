package he

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
)

// TestReadSourceCapsRowsPerSubject: each customer keeps its first
// RowsPerSubject rows; later rows and rows without a customer are dropped and
// counted before any value is checked, and the cap goes into the table spec.
func TestReadSourceCapsRowsPerSubject(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "orders.csv")
	csv := "customer,amount\na,1\nb,2\na,3\na,999\n,4\nb,5\nc,6\n"
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	req, err := ParseEncryptRequest([]string{"amount:0:10"}, nil, "customer", 2, false)
	if err != nil {
		t.Fatal(err)
	}
	src, err := ReadSource(path, "csv", req)
	if err != nil {
		t.Fatalf("ReadSource: %v (a's third row, 999, is over the cap and must not be checked)", err)
	}
	if src.Rows != 5 || src.Dropped != 1 || src.NoSubject != 1 {
		t.Fatalf("rows %d, dropped %d, without customer %d; want 5, 1, 1", src.Rows, src.Dropped, src.NoSubject)
	}
	spec, values := src.Table(testInsecureBGV)
	if spec.RowsPerSubject != 2 || len(values) != 1 {
		t.Fatalf("spec %+v, %d columns", spec, len(values))
	}
	if got := values[0]; len(got) != 5 || got[0] != 1 || got[2] != 3 || got[4] != 6 {
		t.Errorf("amounts kept = %v, want [1 2 3 5 6]", got)
	}
	for _, tt := range []struct {
		subject string
		cap     int
		want    string
	}{{"", 2, "--subject"}, {"customer", 0, "--rows-per-subject"}, {"customer", MaxRowsPerSubject + 1, "--rows-per-subject"}} {
		_, err := ParseEncryptRequest([]string{"amount:0:10"}, nil, tt.subject, tt.cap, false)
		if privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("subject %q cap %d: %v, want %s naming %s", tt.subject, tt.cap, err, privalytics.EINVALID, tt.want)
		}
	}
}

// FuzzParseEncryptRequest: any --column/--category flag values parse or are
// refused with EINVALID; what parses has finite bounds with min ≤ max and
// non-empty declared categories.
func FuzzParseEncryptRequest(f *testing.F) {
	f.Add("quantity:0:100", "country:France,Germany")
	f.Add("x:-1e9:1e9", "c:a")
	f.Add("bad", "c:")
	f.Fuzz(func(t *testing.T, column, category string) {
		req, err := ParseEncryptRequest([]string{column}, []string{category}, "customer", 1, false)
		if err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("%v, want %s", err, privalytics.EINVALID)
			}
			return
		}
		for _, c := range req.values {
			if !(c.Min <= c.Max) || c.Name == "" {
				t.Fatalf("column %+v", c)
			}
		}
		for _, c := range req.categories {
			if c.name == "" || len(c.values) == 0 {
				t.Fatalf("category %+v", c)
			}
		}
	})
}
