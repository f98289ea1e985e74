package learn

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func FuzzSchemaReadCSV(f *testing.F) {
	f.Add("age;job;marital;education;default;balance;housing;loan;contact;day;month;campaign;pdays;previous;poutcome;y\n59;admin.;married;secondary;no;2343;yes;no;unknown;5;may;1;-1;0;unknown;yes\n")
	f.Add("age;y\n1;yes\n")
	f.Add("age;job;marital;education;default;balance;housing;loan;contact;day;month;campaign;pdays;previous;poutcome;y\nNaN;admin.;married;secondary;no;1e400;yes;no;unknown;5;may;1;-1;0;unknown;yes\n")
	s := BankSchema("y")
	f.Fuzz(func(t *testing.T, in string) {
		rows, err := s.ReadCSV(strings.NewReader(in))
		if err != nil {
			return
		}
		for i, x := range rows.X {
			if len(x) != s.Dim() {
				t.Fatalf("row %d has %d features, want %d", i, len(x), s.Dim())
			}
			if n := dot(x, x); !(n <= 1+1e-9) {
				t.Fatalf("row %d has norm² %v outside the unit ball", i, n)
			}
			if rows.Y[i] != 0 && rows.Y[i] != 1 {
				t.Fatalf("label %v", rows.Y[i])
			}
		}
	})
}

func FuzzReadModel(f *testing.F) {
	s := BankSchema("age")
	m := &Model{FormatVersion: FormatVersion, Version: 1, Kind: KindRidge, Schema: *s, Features: s.Names(), Coefficients: make([]float64, s.Dim())}
	var buf bytes.Buffer
	if err := m.WriteJSON(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.String())
	f.Add(`{"format_version":1,"kind":"ridge"}`)
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ReadModel(strings.NewReader(in))
		if err != nil {
			return
		}
		if len(m.Coefficients) != m.Schema.Dim() {
			t.Fatalf("accepted %d coefficients for %d features", len(m.Coefficients), m.Schema.Dim())
		}
		for _, c := range m.Coefficients {
			if math.IsNaN(c) || math.IsInf(c, 0) {
				t.Fatal("accepted a non-finite coefficient")
			}
		}
	})
}
