package privalytics_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
)

func TestDefaultSchemaIsValidAndStoredOrder(t *testing.T) {
	t.Parallel()
	s := privalytics.DefaultRetailSchema()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	stored := s.Stored()
	if stored[0].Name != privalytics.SubjectColumn || stored[1].Name != "ts" {
		t.Errorf("stored order starts %s, %s; want subject, ts", stored[0].Name, stored[1].Name)
	}
	if n := s.Arrow().NumFields(); n != len(s.Columns) {
		t.Errorf("arrow schema has %d fields, want %d", n, len(s.Columns))
	}
}

func TestSchemaValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	s := privalytics.Schema{Subject: "who", Time: "when", Columns: []privalytics.Column{
		{Name: "Bad Name", Type: privalytics.TypeString},
		{Name: "x", Type: "uuid"},
		{Name: "x", Type: privalytics.TypeInt, MaxLength: 3},
		{Name: "subject", Type: privalytics.TypeString},
		{Name: "d", Type: privalytics.TypeDecimal, Scale: 12},
	}}
	err := s.Validate()
	if privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Fatalf("got %v, want invalid", err)
	}
	for _, want := range []string{"Bad Name", `"uuid"`, "duplicate column", "max_length", "reserved", "scale must be 0..9", `subject "who"`, `time "when"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not mention %q", err, want)
		}
	}
}

func TestErrorsHideInternals(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("handler: %w", privalytics.Errorf(privalytics.EBUDGET, "budget exhausted").With("remaining", 0.5))
	if privalytics.ErrorCode(wrapped) != privalytics.EBUDGET || privalytics.ErrorMessage(wrapped) != "budget exhausted" || privalytics.ErrorDetails(wrapped)["remaining"] != 0.5 {
		t.Errorf("coded error lost through wrapping: %v", wrapped)
	}
	plain := errors.New("open /var/lib/secret: permission denied")
	if privalytics.ErrorCode(plain) != privalytics.EINTERNAL || privalytics.ErrorMessage(plain) != "internal error" {
		t.Errorf("an uncoded error must read as internal error, got %q", privalytics.ErrorMessage(plain))
	}
	if privalytics.ErrorCode(nil) != "" {
		t.Error("nil has a code")
	}
}
