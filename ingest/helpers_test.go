package ingest

import (
	"bytes"
	"testing"

	"github.com/privalytics/privalytics"
)

var testKey = bytes.Repeat([]byte{7}, 32)

func testConverter(tb testing.TB) *Converter {
	tb.Helper()
	p, err := NewPseudonymiser(testKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := NewConverter(privalytics.DefaultRetailSchema(), p, DefaultLimits())
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
