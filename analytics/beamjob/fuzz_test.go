package beamjob

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadCells: the pipeline's output is decoded strictly; no input panics.
func FuzzReadCells(f *testing.F) {
	f.Add([]byte(`{"aggregate":0,"key":["web"],"value":12}` + "\n"))
	f.Add([]byte("\n\n{\"aggregate\":1,\"key\":[],\"value\":-1e308}\n"))
	f.Add([]byte(`{"aggregate":0,"key":["web"],"value":12,"extra":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		name := filepath.Join(t.TempDir(), "cells.ndjson")
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cells, err := ReadCells(name)
		if err == nil {
			for _, c := range cells {
				if c.Key == nil && c.Aggregate == 0 && c.Value == 0 && len(data) == 0 {
					t.Fatal("a cell from no input")
				}
			}
		}
	})
}

func TestReadCellsRefusesUnknownFields(t *testing.T) {
	name := filepath.Join(t.TempDir(), "cells.ndjson")
	os.WriteFile(name, []byte(`{"aggregate":0,"key":["web"],"value":12,"secret":1}`+"\n"), 0o600)
	if _, err := ReadCells(name); err == nil {
		t.Fatal("a cell with an unknown field was accepted")
	}
	os.WriteFile(name, []byte(`{"aggregate":1,"key":["a","b"],"value":2.5}`+"\n"), 0o600)
	cells, err := ReadCells(name)
	if err != nil || len(cells) != 1 || cells[0].Aggregate != 1 || cells[0].Value != 2.5 || cells[0].Key[1] != "b" {
		t.Fatalf("got %+v, %v", cells, err)
	}
}
