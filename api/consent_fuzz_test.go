package api

import (
	"testing"

	"github.com/privalytics/privalytics"
)

// FuzzDecodeConsents: any body, in either mode, gives records numbered from 1
// and within the row limit, or an error a caller can act on (never an
// internal one). Seeds in testdata/fuzz/FuzzDecodeConsents.
func FuzzDecodeConsents(f *testing.F) {
	f.Add([]byte(`{"customer_id":"c1","purpose":"analytics","granted":true}`), true)
	f.Add([]byte("{\"customer_id\":\"c1\",\"purpose\":\"analytics\",\"granted\":false}\n\n{\"customer_id\":\"c2\",\"purpose\":\"marketing\",\"granted\":true}\n"), false)
	f.Add([]byte(`[{"customer_id":"c1","purpose":"analytics","granted":true},{"customer_id":"c2"}]`), true)
	f.Fuzz(func(t *testing.T, body []byte, asJSON bool) {
		const maxRows = 3
		recs, err := decodeConsents(body, asJSON, maxRows)
		if err != nil {
			if code := privalytics.ErrorCode(err); code != privalytics.EINVALID && code != privalytics.ETOOLARGE {
				t.Fatalf("error code %q (%v), want invalid or too_large", code, err)
			}
			return
		}
		if len(recs) == 0 || len(recs) > maxRows {
			t.Fatalf("%d records, want 1..%d", len(recs), maxRows)
		}
		for i, r := range recs {
			if r.line < 1 || (i > 0 && r.line <= recs[i-1].line) {
				t.Fatalf("record %d has line %d after %d; want increasing lines from 1", i, r.line, recs[max(i-1, 0)].line)
			}
		}
	})
}
