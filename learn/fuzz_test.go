package learn

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/he/federation"
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

// FuzzDecodeTask: a task comes from the untrusted relay. Whatever it holds,
// decoding either refuses it or yields one a location can answer without
// panicking, with the number of cells the task declares and finite values.
func FuzzDecodeTask(f *testing.F) {
	s := BankSchema("y")
	for _, t := range []Task{
		{Kind: TaskGram, Sigma: 3, Threshold: 2},
		{Kind: TaskRidge, Sigma: 3, SigmaXy: 2, Threshold: 2},
		{Kind: TaskGradient, Beta: make([]float64, s.Dim()), Sigma: 3, Threshold: 2},
	} {
		b, err := json.Marshal(roundTask{Round: 1, Schema: *s, Task: t})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add(`{"round":0,"schema":{"numeric":[{"name":"a","lower":0,"upper":1}],"categorical":[],"label":"y","positive":"1"},"task":{"kind":"gradient","beta":[1,2],"sigma":1e308,"threshold":1}}`)
	p, err := federation.NewParams(2, 2)
	if err != nil {
		f.Fatal(err)
	}
	csv := "age;job;marital;education;default;balance;housing;loan;contact;day;month;campaign;pdays;previous;poutcome;y\n59;admin.;married;secondary;no;2343;yes;no;unknown;5;may;1;-1;0;unknown;yes\n"
	f.Fuzz(func(t *testing.T, in string) {
		rt, err := decodeTask([]byte(in), p)
		if err != nil {
			return
		}
		rows, err := rt.Schema.ReadCSV(strings.NewReader(csv))
		if err != nil {
			return // the location's file does not fit the task's schema: it stops
		}
		d := rt.Schema.Dim()
		cells, err := rt.Task.Cells(rows, d, dp.Secure())
		if err != nil {
			return
		}
		if len(cells) != rt.Task.Len(d) || len(cells) > p.Slots() {
			t.Fatalf("%d cells for a task of %d, slots %d", len(cells), rt.Task.Len(d), p.Slots())
		}
	})
}
