package fairness

import (
	"encoding/csv"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/privalytics/privalytics"
)

// Columns name the fields of a predictions CSV (header row first).
type Columns struct {
	Group, Score, Label string
	Positive            string // the label's value that counts as a positive outcome
	Comma               rune   // 0 means ','
}

// MaxCSVBytes bounds a predictions file.
const MaxCSVBytes = 1 << 30

// ReadCSV reads predictions made anywhere (one row per customer): a group,
// a score in [0, 1] and the outcome. Errors name the line and the field.
func ReadCSV(r io.Reader, c Columns) ([]Record, error) {
	cr := csv.NewReader(io.LimitReader(r, MaxCSVBytes))
	if c.Comma != 0 {
		cr.Comma = c.Comma
	}
	header, err := cr.Read()
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "fairness: csv: the header row is missing or malformed: %v", err)
	}
	idx := [3]int{-1, -1, -1}
	for i, h := range header {
		h = strings.TrimSpace(h)
		for j, want := range []string{c.Group, c.Score, c.Label} {
			if h == want {
				idx[j] = i
			}
		}
	}
	for j, want := range []string{c.Group, c.Score, c.Label} {
		if idx[j] < 0 {
			return nil, privalytics.Errorf(privalytics.EINVALID, "fairness: csv: column %q is missing; the header has %v", want, header)
		}
	}
	var out []Record
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "fairness: csv line %d: %v", line, err)
		}
		s, err := strconv.ParseFloat(strings.TrimSpace(rec[idx[1]]), 64)
		if err != nil || math.IsNaN(s) || s < 0 || s > 1 {
			return nil, privalytics.Errorf(privalytics.EINVALID, "fairness: csv line %d: %s must be a score in [0, 1], got %q", line, c.Score, rec[idx[1]])
		}
		out = append(out, Record{Group: rec[idx[0]], Score: s, Label: strings.TrimSpace(rec[idx[2]]) == c.Positive})
	}
}
