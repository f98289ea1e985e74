package learn

import (
	"encoding/csv"
	"io"
	"strconv"

	"github.com/privalytics/privalytics"
)

// ScoreCSV scores a location's own customers locally: it reads their CSV
// with the model's schema and writes the same columns, in order, plus "score" (a
// probability for a logistic model, the label in its units for ridge). No
// customer leaves the location; the model is all that came in.
func (m *Model) ScoreCSV(r io.Reader, w io.Writer) error {
	rows, err := m.Schema.readCSV(r, false)
	if err != nil {
		return err
	}
	if len(rows.X) == 0 {
		return privalytics.Errorf(privalytics.EINVALID, "learn: score: the file has no customer rows")
	}
	cw := csv.NewWriter(w)
	if m.Schema.Comma != "" {
		cw.Comma = []rune(m.Schema.Comma)[0]
	}
	header := rows.Header
	if err := cw.Write(append(append([]string(nil), header...), "score")); err != nil {
		return err
	}
	for i, x := range rows.X {
		p := m.Predict(x)
		if m.Kind == KindRidge {
			p = m.Label(p)
		}
		rec := make([]string, 0, len(header)+1)
		for _, h := range header {
			rec = append(rec, rows.Fields[i][h])
		}
		if err := cw.Write(append(rec, strconv.FormatFloat(p, 'f', 6, 64))); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
