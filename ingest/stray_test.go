package ingest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

func TestScanStray(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		want string // kinds found, comma-separated; redacted text after "|"
	}{
		{"no personal data here, order 42 of 2025-03-01 10:00", "|no personal data here, order 42 of 2025-03-01 10:00"},
		{"write to jane.doe+shop@example.co.uk.", "email|write to [email]."},
		{"mail: a@b.cd", "email|mail: [email]"},
		{"not an address: a@b, x@localhost, @example.com, me@example.c0m", "|not an address: a@b, x@localhost, @example.com, me@example.c0m"},
		{"call +44 20 7946 0958 after 5", "phone|call [phone] after 5"},
		{"call (020) 7946-0958", "phone|call [phone]"},
		{"tel 07700900123", "phone|tel [phone]"},
		{"short 555-1234 and year 2025 and 12345678", "|short 555-1234 and year 2025 and 12345678"},
		{"product SKU12345678901 code", "|product SKU12345678901 code"},
		{"card 4111 1111 1111 1111 thanks", "card|card [card] thanks"},
		{"card 4111-1111-1111-1111", "card|card [card]"},
		{"amex 378282246310005.", "card|amex [card]."},
		// 16 digits failing Luhn are not a card; still too long for a phone.
		{"ref 4111 1111 1111 1112", "|ref 4111 1111 1111 1112"},
		{"iban GB82 WEST 1234 5698 7654 32 please", "iban|iban [iban] please"},
		{"IBAN:DE89370400440532013000", "iban|IBAN:[iban]"},
		{"de89370400440532013000 lower case", "iban|[iban] lower case"},
		// A wrong check digit is no IBAN.
		{"GB83WEST12345698765432", "|GB83WEST12345698765432"},
		{"on 01/03/2025 14:30 and 2025-03-01 1000 items", "|on 01/03/2025 14:30 and 2025-03-01 1000 items"},
		{"code AB12CDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "|code AB12CDEFGHIJKLMNOPQRSTUVWXYZ0123456789"},
		{"12345678901@example.com and +1 415 555 0100", "email,phone|[email] and [phone]"},
		{"", "|"},
	}
	for _, tc := range tests {
		fs := ScanStray([]byte(tc.text), nil)
		var kinds []string
		for _, f := range fs {
			kinds = append(kinds, f.Kind)
		}
		got := strings.Join(kinds, ",") + "|" + string(Redact([]byte(tc.text), fs))
		if got != tc.want {
			t.Errorf("ScanStray(%q):\n got %s\nwant %s", tc.text, got, tc.want)
		}
	}
}

func TestLuhnAndMod97(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"} {
		if !luhn([]byte(d)) {
			t.Errorf("luhn(%s) = false for a test card number", d)
		}
	}
	if luhn([]byte("4111111111111112")) {
		t.Error("luhn accepts a wrong check digit")
	}
	for _, iban := range []string{"GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606", "NL91ABNA0417164300"} {
		if mod97([]byte(iban)) != 1 {
			t.Errorf("mod97(%s) = %d, want 1", iban, mod97([]byte(iban)))
		}
	}
}

// checkFindings asserts the scanner's contract on any input.
func checkFindings(t *testing.T, s []byte, fs []Finding) {
	t.Helper()
	prev := 0
	for _, f := range fs {
		if f.Start < prev || f.End <= f.Start || f.End > len(s) {
			t.Fatalf("findings out of order or bounds in %q: %+v", s, fs)
		}
		if _, ok := strayNames[f.Kind]; !ok {
			t.Fatalf("unknown kind %q", f.Kind)
		}
		prev = f.End
	}
}

func FuzzScanStray(f *testing.F) {
	for _, s := range []string{"jane@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32", "a@b.c@d.ef", "((((1", "+", "@", "AB12", "x 0000000000000000000000000"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		fs := ScanStray(s, nil)
		checkFindings(t, s, fs)
		red := Redact(s, fs)
		// Redaction leaves nothing to find where something was found: the
		// markers cannot form personal data, and text between findings was
		// scanned already. (Joining pieces can, in principle, create a new
		// match, e.g. digits around a marker; the markers' brackets prevent it.)
		if again := ScanStray(red, nil); len(fs) > 0 && len(again) > 0 {
			for _, g := range again {
				if !bytes.Contains(s, red[g.Start:g.End]) {
					t.Fatalf("redacting %q gave %q, which has a new finding %+v", s, red, g)
				}
			}
		}
	})
}

// BenchmarkScanStray measures the scan of one typical free-text value (a
// customer-service note, 96 bytes, with no personal data: the common case) and
// of one with an e-mail address and a phone number.
func BenchmarkScanStray(b *testing.B) {
	for _, text := range []string{
		"Customer asked about delivery of order 2025-03-01/7741; parcel left with neighbour at number 12.",
		"Customer asked to be called on +44 20 7946 0958 or mailed at jane.doe@example.com about order 7741.",
	} {
		b.Run(fmt.Sprintf("%dB", len(text)), func(b *testing.B) {
			s := []byte(text)
			var fs []Finding
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				fs = ScanStray(s, fs[:0])
			}
		})
	}
}

func freeTextSchema() privalytics.Schema {
	s := privalytics.DefaultRetailSchema()
	s.Columns = append(s.Columns, privalytics.Column{Name: "note", Type: privalytics.TypeString, FreeText: true, MaxLength: 200})
	return s
}

func TestConverterStrayDataPolicy(t *testing.T) {
	t.Parallel()
	body := []byte(`{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","type":"view","note":"left at the door"}
{"customer_id":"c2","ts":"2025-03-01T10:00:00Z","type":"view","note":"call me on +44 20 7946 0958"}
{"customer_id":"c3","ts":"2025-03-01T10:00:00Z","type":"view","note":"call me on +44 20 7946 0958"}
{"customer_id":"c3","ts":"2025-03-01T10:00:00Z","type":"view","category":"jane@example.com"}
`)
	reject := converterFor(t, freeTextSchema(), DefaultLimits())
	_, err := reject.DecodeJSON(body)
	d := privalytics.ErrorDetails(err)
	if privalytics.ErrorCode(err) != privalytics.EINVALID || d["line"] != 2 || d["field"] != "note" || d["kind"] != StrayPhone {
		t.Fatalf("reject policy: %v %v; want line 2, field note, a phone", err, d)
	}
	if strings.Contains(privalytics.ErrorMessage(err), "7946") {
		t.Errorf("the error repeats the personal data: %s", privalytics.ErrorMessage(err))
	}

	redact := converterFor(t, freeTextSchema(), DefaultLimits())
	if err := redact.SetStrayData(privalytics.StrayRedact); err != nil {
		t.Fatal(err)
	}
	rec, err := redact.DecodeJSON(body)
	if err != nil {
		t.Fatalf("redact policy: %v", err)
	}
	defer rec.Release()
	notes := stringColumn(t, rec, "note")
	want := []string{"left at the door", "call me on [phone]", "call me on [phone]", ""}
	if fmt.Sprint(notes) != fmt.Sprint(want) {
		t.Errorf("notes after redaction = %q, want %q", notes, want)
	}
	// category is not declared free text: not scanned.
	if got := stringColumn(t, rec, "category")[3]; got != "jane@example.com" {
		t.Errorf("category = %q; only free-text fields are scanned", got)
	}
	if err := redact.SetStrayData("ignore"); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("SetStrayData(ignore) = %v", err)
	}
}

// stringColumn reads a dictionary-encoded string column ("" for null).
func stringColumn(t *testing.T, rec arrow.Record, name string) []string {
	t.Helper()
	idx := rec.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("no column %s", name)
	}
	col := rec.Column(idx[0])
	out := make([]string, col.Len())
	for i := range out {
		if col.IsValid(i) {
			out[i] = col.ValueStr(i)
		}
	}
	return out
}

// BenchmarkConvertFreeText gives the scanner's cost per row inside the
// converter: the retail schema plus a 96-byte free-text note, every note
// distinct (the worst case: nothing is served from the batch's dictionary),
// with the note scanned or declared as plain text.
func BenchmarkConvertFreeText(b *testing.B) {
	var body bytes.Buffer
	const rows = 10_000
	for i := range rows {
		fmt.Fprintf(&body, `{"customer_id":"c%d","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"3.20","note":"Customer asked about delivery of order %07d; parcel left with neighbour at number 12."}`+"\n", i%500, i)
	}
	for _, scan := range []bool{false, true} {
		s := freeTextSchema()
		s.Columns[len(s.Columns)-1].FreeText = scan
		c := converterFor(b, s, DefaultLimits())
		b.Run(fmt.Sprintf("scanned=%v", scan), func(b *testing.B) {
			b.SetBytes(int64(body.Len()))
			for b.Loop() {
				rec, err := c.DecodeJSON(body.Bytes())
				if err != nil {
					b.Fatal(err)
				}
				rec.Release()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}
