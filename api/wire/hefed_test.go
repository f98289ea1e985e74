package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestHEAndFederationBodiesRoundTrip: every HE and federation body survives
// JSON encoding and a strict decoding (unknown fields refused) unchanged.
func TestHEAndFederationBodiesRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	q := FederationQuery{SubjectColumn: "customer", CategoryColumn: "cat", ValueColumn: "cents", Categories: []string{"bread", "cake"},
		Aggregates: []string{"count", "sum"}, Lower: 0, Upper: 5000, MaxRowsPerSubject: 8, MaxLocationsPerSubject: 2, Epsilon: 1, Delta: 1e-6}
	fed := Federation{ID: "fed_1", Name: "north", Preset: "p", Locations: []string{"a", "b"}, Threshold: 2, Seed: []byte{1, 2}, Phase: PhaseReady,
		KeyShares: []int{0, 1}, SealedShares: []int{0, 1}, TransportKeys: [][]byte{{3}, {4}}, Rounds: 1, Created: at}
	for _, v := range []any{
		&HEDataset{ID: "hds_1", Preset: "bgv-agg", Rows: 10, Columns: []HEColumn{{Name: "x", Kind: "value", Min: -1, Max: 2}, {Name: "c=a", Kind: "indicator", Max: 1, Group: "c", Category: "a"}}, Ops: []string{"sum"}, Bytes: 99, Created: at},
		&HEJob{ID: "hjb_1", Dataset: "hds_1", Job: HEJobSpec{Op: "regression", Columns: []string{"x"}, Target: "y"}, Status: HEJobDone, ResultBytes: 5, Created: at, Finished: &at},
		&CreateFederationRequest{Name: "north", Locations: []string{"a", "b"}, Threshold: 2, FranchisorKey: []byte{9}},
		&FederationCreated{Federation: fed, Tokens: []string{"pvl_a", "pvl_b"}},
		&RoundRequest{Query: q, ContributeSeconds: 60, DecryptSeconds: 30},
		&Round{Federation: "fed_1", Number: 1, Status: RoundDone, Query: q, Threshold: 2, Opened: at, ContributeUntil: at, DecryptUntil: at,
			Contributors: []int{0, 1}, Ready: []int{1}, Active: []int{1, 0}, DecryptionFrom: []int{0}, ResultAvailable: true, NoiseStd: map[string]float64{"count": 1.5}},
		&ShareAccepted{Accepted: true, Duplicate: true},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(back); err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if !reflect.DeepEqual(v, back) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", v, back, v)
		}
	}
}
