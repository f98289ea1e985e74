package ingest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// hmacPrefix is the reference pseudonym, computed with crypto/hmac directly.
func hmacPrefix(key []byte, id string) uint64 {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	return binary.BigEndian.Uint64(mac.Sum(nil)[:8])
}

func TestPseudonymiser(t *testing.T) {
	t.Parallel()
	otherKey := bytes.Repeat([]byte{8}, 32)
	tests := []struct {
		name string
		key  []byte
		id   string
	}{
		{"loyalty number", testKey, "loyalty-1042"},
		{"empty identifier", testKey, ""},
		{"long identifier, more than one SHA-256 block", testKey, strings.Repeat("x", 200)},
		{"non-ASCII", otherKey, "client-é-42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewPseudonymiser(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			want := hmacPrefix(tt.key, tt.id)
			for range 3 { // pooled states must come back clean
				if got := p.Subject([]byte(tt.id)); got != want {
					t.Fatalf("Subject(%q) = %x, want HMAC-SHA256 prefix %x", tt.id, got, want)
				}
			}
		})
	}
	t.Run("keys differ", func(t *testing.T) {
		t.Parallel()
		a, _ := NewPseudonymiser(testKey)
		b, _ := NewPseudonymiser(otherKey)
		if a.Subject([]byte("loyalty-1042")) == b.Subject([]byte("loyalty-1042")) {
			t.Error("two tenant keys give the same pseudonym")
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		t.Parallel()
		p, _ := NewPseudonymiser(testKey)
		var wg sync.WaitGroup
		errs := make(chan string, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 500 {
					id := fmt.Sprintf("c%d-%d", g, i)
					if p.Subject([]byte(id)) != hmacPrefix(testKey, id) {
						errs <- id
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for id := range errs {
			t.Errorf("wrong pseudonym for %q under concurrent use", id)
		}
	})
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewPseudonymiser(make([]byte, n)); privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Errorf("NewPseudonymiser with a %d-byte key: %v, want invalid", n, err)
		}
	}
}

const okRow = `{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","type":"view"}`

// with returns okRow with extra members appended.
func with(members string) string { return okRow[:len(okRow)-1] + "," + members + "}" }

func TestValidation(t *testing.T) {
	t.Parallel()
	conv := converterFor(t, allTypesSchema(), allTypesLimits())
	tests := []struct {
		name   string
		body   string
		code   string
		line   int
		field  string // "" when no one field is to blame
		reason string // a part of the reason
	}{
		{"malformed JSON", okRow + "\n" + `{"customer_id":`, privalytics.EINVALID, 2, "", "malformed JSON"},
		{"unquoted key", `{customer_id:"c"}`, privalytics.EINVALID, 1, "", "malformed JSON: expected a field name"},
		{"bad escape", `{"customer_id":"c\q"}`, privalytics.EINVALID, 1, "", "invalid escape"},
		{"raw newline in string", "{\"customer_id\":\"c\x01\"}", privalytics.EINVALID, 1, "", "control character"},
		{"invalid UTF-8", "{\"customer_id\":\"c\xff\"}", privalytics.EINVALID, 1, "", "not valid UTF-8"},
		{"not an object", `"just text"`, privalytics.EINVALID, 1, "", "expected an object"},
		{"trailing text", okRow + ` x`, privalytics.EINVALID, 1, "", "after the object"},
		{"blank lines still count", "\n\n" + with(`"qty":"2"`), privalytics.EINVALID, 3, "qty", "whole number, got a string"},
		{"string for int", with(`"qty":"2"`), privalytics.EINVALID, 1, "qty", "whole number, got a string"},
		{"fraction for int", with(`"qty":1.5`), privalytics.EINVALID, 1, "qty", "whole number without a point"},
		{"exponent for int", with(`"qty":1e3`), privalytics.EINVALID, 1, "qty", "whole number without a point"},
		{"int overflow", with(`"qty":9223372036854775808`), privalytics.EINVALID, 1, "qty", "whole number"},
		{"bool for int", with(`"qty":true`), privalytics.EINVALID, 1, "qty", "got true or false"},
		{"too many decimals", with(`"amount":1.234`), privalytics.EINVALID, 1, "amount", "more than 2 digits after the point"},
		{"too many decimals in a string", with(`"amount":"0.001"`), privalytics.EINVALID, 1, "amount", "more than 2 digits after the point"},
		{"exponent for decimal", with(`"amount":1e3`), privalytics.EINVALID, 1, "amount", "no exponent"},
		{"text for decimal", with(`"amount":"lots"`), privalytics.EINVALID, 1, "amount", "decimal number"},
		{"decimal overflow", with(`"amount":99999999999999999999`), privalytics.EINVALID, 1, "amount", "too large"},
		{"non-finite float", with(`"score":1e999`), privalytics.EINVALID, 1, "score", "finite number"},
		{"string for float", with(`"score":"NaN"`), privalytics.EINVALID, 1, "score", "must be a number, got a string"},
		{"string for bool", with(`"member":"true"`), privalytics.EINVALID, 1, "member", "true or false, got a string"},
		{"number for bool", with(`"member":1`), privalytics.EINVALID, 1, "member", "true or false"},
		{"number for string", with(`"note":42`), privalytics.EINVALID, 1, "note", "must be a string, got a number"},
		{"missing customer", `{"ts":"2025-03-01T10:00:00Z","type":"view"}`, privalytics.EINVALID, 1, "customer_id", "required field is missing"},
		{"null customer", `{"customer_id":null,"ts":"2025-03-01T10:00:00Z","type":"view"}`, privalytics.EINVALID, 1, "customer_id", "required field is missing"},
		{"empty customer", `{"customer_id":"","ts":"2025-03-01T10:00:00Z","type":"view"}`, privalytics.EINVALID, 1, "customer_id", "empty"},
		{"number for customer", `{"customer_id":17850,"ts":"2025-03-01T10:00:00Z","type":"view"}`, privalytics.EINVALID, 1, "customer_id", "must be a string"},
		{"customer too long", `{"customer_id":"` + strings.Repeat("c", 17) + `","ts":"2025-03-01T10:00:00Z","type":"view"}`, privalytics.EINVALID, 1, "customer_id", "longer than the 16 allowed"},
		{"missing time", `{"customer_id":"c","type":"view"}`, privalytics.EINVALID, 1, "ts", "required field is missing"},
		{"missing required type", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z"}`, privalytics.EINVALID, 1, "type", "required field is missing"},
		{"unknown field", with(`"email":"x@y.z"`), privalytics.EINVALID, 1, "email", "unknown field"},
		{"not an allowed value", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z","type":"teleport"}`, privalytics.EINVALID, 1, "type", `"teleport" is not one of the allowed values`},
		{"longer than the default", with(`"note":"123456789"`), privalytics.EINVALID, 1, "note", "longer than the 8 allowed"},
		{"longer in bytes than in letters", with(`"note":"ééééé"`), privalytics.EINVALID, 1, "note", "10 bytes long"},
		{"time without zone", `{"customer_id":"c","ts":"2025-03-01T10:00:00","type":"view"}`, privalytics.EINVALID, 1, "ts", "RFC 3339"},
		{"time as prose", `{"customer_id":"c","ts":"yesterday","type":"view"}`, privalytics.EINVALID, 1, "ts", "RFC 3339"},
		{"time in milliseconds", `{"customer_id":"c","ts":1740823200000000,"type":"view"}`, privalytics.EINVALID, 1, "ts", "not milliseconds"},
		{"time as bool", `{"customer_id":"c","ts":true,"type":"view"}`, privalytics.EINVALID, 1, "ts", "RFC 3339 text or Unix seconds"},
		{"nested object", with(`"note":{"a":1}`), privalytics.EINVALID, 1, "", "nested objects and arrays"},
		{"nested array", with(`"note":["a"]`), privalytics.EINVALID, 1, "", "nested objects and arrays"},
		{"duplicate key", `{"customer_id":"c","customer_id":"d","ts":"2025-03-01T10:00:00Z","type":"view"}`, privalytics.EINVALID, 1, "customer_id", "appears twice"},
		{"duplicate null key", with(`"note":null,"note":null`), privalytics.EINVALID, 1, "note", "appears twice"},
		{"array element", "[" + okRow + `,{"customer_id":"c","type":"view"}]`, privalytics.EINVALID, 2, "ts", "required field is missing"},
		{"array not closed", "[" + okRow, privalytics.EINVALID, 1, "", "not closed"},
		{"array of non-objects", `[1]`, privalytics.EINVALID, 1, "", "expected an object"},
		{"empty body", " \n", privalytics.EINVALID, 0, "", ""},
		{"empty array", "[]", privalytics.EINVALID, 0, "", ""},
		{"too many rows", strings.Repeat(okRow+"\n", 4), privalytics.ETOOLARGE, 4, "", "too many events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec, err := conv.DecodeJSON([]byte(tt.body))
			if err == nil {
				t.Fatalf("accepted %d rows, want an error", rec.NumRows())
			}
			e, ok := err.(*privalytics.Error)
			if !ok {
				t.Fatalf("error %T %v, want *privalytics.Error", err, err)
			}
			if e.Code != tt.code {
				t.Errorf("code %q, want %q (%v)", e.Code, tt.code, err)
			}
			if tt.line == 0 {
				if e.Details != nil {
					t.Errorf("details %v for a body without rows, want none", e.Details)
				}
				return
			}
			got := map[string]any{"line": e.Details["line"], "field": e.Details["field"]}
			want := map[string]any{"line": tt.line, "field": nil}
			if tt.field != "" {
				want["field"] = tt.field
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("details (-want +got):\n%s\nerror: %v", diff, err)
			}
			if reason, _ := e.Details["reason"].(string); !strings.Contains(reason, tt.reason) || !strings.Contains(e.Message, reason) {
				t.Errorf("reason %q (message %q), want it to contain %q and be in the message", reason, e.Message, tt.reason)
			}
		})
	}
}

// TestDecodeAccepts checks the value forms the contract accepts and what each
// is stored as.
func TestDecodeAccepts(t *testing.T) {
	t.Parallel()
	conv := converterFor(t, allTypesSchema(), allTypesLimits())
	base := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC).UnixMicro()
	tests := []struct {
		name    string
		members string // appended to okRow, or a whole object when it starts with {
		col     int    // stored column to look at
		want    any
	}{
		{"RFC 3339 Z", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z","type":"view"}`, 1, base},
		{"RFC 3339 offset", `{"customer_id":"c","ts":"2025-03-01T11:30:00+01:30","type":"view"}`, 1, base},
		{"RFC 3339 fraction below µs dropped", `{"customer_id":"c","ts":"2025-03-01T10:00:00.1234567Z","type":"view"}`, 1, base + 123456},
		{"RFC 3339 negative offset", `{"customer_id":"c","ts":"2025-03-01T05:00:00-05:00","type":"view"}`, 1, base},
		{"Unix seconds", `{"customer_id":"c","ts":1740823200,"type":"view"}`, 1, base},
		{"Unix seconds with µs, exactly", `{"customer_id":"c","ts":1740823200.123457,"type":"view"}`, 1, base + 123457},
		{"Unix seconds with exponent", `{"customer_id":"c","ts":1.7408232e9,"type":"view"}`, 1, base},
		{"Unix seconds before 1970", `{"customer_id":"c","ts":-1.5,"type":"view"}`, 1, int64(-1_500_000)},
		{"escaped customer", `{"customer_id":"caf\u00e9 \ud83d\ude00","ts":1740823200,"type":"view"}`, 0, subjectOf(t, "café 😀")},
		{"string with escapes", with(`"note":"a\"b\\\/\t"`), 3, "a\"b\\/\t"},
		{"max length in bytes", with(`"note":"éééé"`), 3, "éééé"},
		{"null optional", with(`"note":null`), 3, nil},
		{"absent optional", okRow, 4, nil},
		{"int", with(`"qty":-42`), 4, int64(-42)},
		{"largest int", with(`"qty":9223372036854775807`), 4, int64(9223372036854775807)},
		{"decimal number", with(`"amount":12.5`), 5, int64(1250)},
		{"decimal string", with(`"amount":"-0.07"`), 5, int64(-7)},
		{"decimal trailing zeros", with(`"amount":3.1400`), 5, int64(314)},
		{"decimal whole", with(`"amount":7`), 5, int64(700)},
		{"float", with(`"score":-2.5e-3`), 6, -0.0025},
		{"bool", with(`"member":false`), 7, false},
		{"spaces everywhere", ` { "customer_id" : "c" , "ts" : 1740823200 , "type" : "view" , "member" : true } `, 7, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := tt.members
			rec, err := conv.DecodeJSON([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, cells(t, rec)[0][tt.col]); diff != "" {
				t.Errorf("stored value (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeRoundTrip: events written as NDJSON and as a JSON array decode to the
// same record, whose values are the input's: strings through the dictionary,
// decimals exact, timestamps in µs, nulls where a field is absent or null.
func TestDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	conv := converterFor(t, allTypesSchema(), Limits{})
	type event struct {
		Customer string   `json:"customer_id"`
		TS       string   `json:"ts"`
		Type     string   `json:"type"`
		Note     *string  `json:"note"`
		Qty      *int64   `json:"qty,omitempty"`
		Amount   string   `json:"amount,omitempty"`
		Score    *float64 `json:"score,omitempty"`
		Member   *bool    `json:"member,omitempty"`
	}
	ptr := func(s string) *string { return &s }
	var events []event
	var want [][]any
	start := time.Date(2024, 12, 31, 23, 59, 59, 999999000, time.UTC)
	for i := range 1000 {
		ts := start.Add(time.Duration(i) * 7919 * time.Millisecond)
		ev := event{Customer: fmt.Sprintf("cust-%d", i%37), TS: ts.Format(time.RFC3339Nano), Type: []string{"purchase", "view"}[i%2]}
		row := []any{subjectOf(t, ev.Customer), ts.UnixMicro(), ev.Type, nil, nil, nil, nil, nil}
		if i%3 != 0 {
			ev.Note = ptr([]string{"a", "ü", "x\ny", `q"`}[i%4])
			row[3] = *ev.Note
		}
		if i%5 != 0 {
			q := int64(i*1000003) - 400_000_000
			ev.Qty, row[4] = &q, q
		}
		if i%4 != 0 {
			cents := int64(i)*997 - 200_000
			ev.Amount = fmt.Sprintf("%d.%02d", cents/100, abs64(cents%100))
			if cents < 0 && cents > -100 {
				ev.Amount = "-" + ev.Amount
			}
			row[5] = cents
		}
		if i%6 != 0 {
			f := float64(i) / 3
			ev.Score, row[6] = &f, f
		}
		if i%7 != 0 {
			m := i%2 == 0
			ev.Member, row[7] = &m, m
		}
		events = append(events, ev)
		want = append(want, row)
	}
	var nd bytes.Buffer
	for _, ev := range events {
		line, _ := json.Marshal(ev)
		nd.Write(line)
		nd.WriteString("\n")
	}
	arr, _ := json.MarshalIndent(events, "", "  ")
	fromND, err := conv.DecodeJSON(nd.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	fromArr, err := conv.DecodeJSON(arr)
	if err != nil {
		t.Fatal(err)
	}
	if !fromND.Schema().Equal(allTypesSchema().Arrow()) {
		t.Errorf("record schema\n%v\nwant Schema.Arrow()\n%v", fromND.Schema(), allTypesSchema().Arrow())
	}
	if diff := cmp.Diff(want, cells(t, fromND)); diff != "" {
		t.Errorf("NDJSON rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(cells(t, fromND), cells(t, fromArr)); diff != "" {
		t.Errorf("NDJSON and array forms differ (-ndjson +array):\n%s", diff)
	}
}

func abs64(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// TestTimeParsersAgree checks the fast RFC 3339 path against time.Parse, and
// exact Unix seconds against time.Unix.
func TestTimeParsersAgree(t *testing.T) {
	t.Parallel()
	var texts []string
	for s := int64(-3e9); s < 4e9; s += 98_765_431 {
		tm := time.Unix(s, s%1_000_000_000*7%1_000_000_000).UTC()
		texts = append(texts, tm.Format(time.RFC3339), tm.Format(time.RFC3339Nano),
			tm.In(time.FixedZone("", -(9*3600+30*60))).Format(time.RFC3339Nano), tm.In(time.FixedZone("", 14*3600)).Format(time.RFC3339))
	}
	texts = append(texts, "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2025-13-01T00:00:00Z", "2025-01-01T24:00:00Z",
		"2025-01-01T00:00:60Z", "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00+0100", "2025-01-01 00:00:00Z", "2025-01-01T00:00:00+24:00")
	// The memo of a column's last hour must answer as fastRFC3339 does, also
	// for a malformed time that shares the hour before it.
	texts = append(texts, "2025-01-01T10:00:00Z", "2025-01-01T10:61:00Z", "2025-01-01T10:59:59.5Z", "2025-01-01T10x00:00Z",
		"2025-01-01T10:00:00", "2025-01-01T10:00:00-01:30", "2025-01-01T11:00:00Z")
	var memo hourMemo
	for _, text := range texts {
		got, gotOK := fastRFC3339([]byte(text))
		if m, mOK := memo.parse([]byte(text)); m != got || mOK != gotOK {
			t.Errorf("the hour memo reads %q as %d, %v; fastRFC3339 as %d, %v", text, m, mOK, got, gotOK)
		}
		tm, err := time.Parse(time.RFC3339Nano, text)
		if gotOK && (err != nil || got != tm.UnixMicro()) {
			t.Errorf("fastRFC3339(%q) = %d, time.Parse gives %d, %v", text, got, tm.UnixMicro(), err)
		}
		if !gotOK && err == nil && len(text) <= 35 && !strings.Contains(text, "+24:") {
			t.Errorf("fastRFC3339(%q) refused what time.Parse reads", text)
		}
	}
	for _, tt := range []struct {
		text string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"1740823200.123456", 1740823200123456, true},
		{"1740823200.1234569", 1740823200123456, true}, {"-0.0000001", -1, true}, {"-1.0000001", -1000001, true},
		{"1.7408232e9", 1740823200000000, true}, {"17408232e2", 1740823200000000, true}, {"0.000001e6", 1_000_000, true},
		{"1e11", 1e17, true}, {"1.00000000000000000000001e11", 1e17, true}, {"1e12", 0, false}, {"1e-400", 0, true},
		{"00000000000000000000000001", 1_000_000, true}, {"1e", 0, false}, {"", 0, false}, {"-", 0, false},
	} {
		got, ok := unixMicros([]byte(tt.text))
		if got != tt.want || ok != tt.ok {
			t.Errorf("unixMicros(%q) = %d, %v, want %d, %v", tt.text, got, ok, tt.want, tt.ok)
		}
	}
}

// TestCheckEvent: CheckEvent accepts and refuses what DecodeJSON does, with the
// same message, however often its pooled batch is reused.
func TestCheckEvent(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	bodies := []string{
		`{"customer_id":"c1","ts":"2026-01-01T00:00:00Z","type":"view","store":"s1","amount":"1.5"}`,
		`{"customer_id":"c1","ts":"2026-01-01T00:00:00Z","type":"teleport"}`,
		`{"customer_id":"c2","ts":"2026-01-01T00:00:00Z","type":"purchase","store":"s2","quantity":3}`,
		`{"customer_id":"c1","ts":"2026-01-01T00:00:00Z"}`,
		`{"customer_id":"c1","ts":"2026-01-01T00:00:00Z","type":"view"}` + "\n" + `{"customer_id":"c2","ts":"2026-01-01T00:00:00Z","type":"view"}`,
		`{"customer_id":"c1","ts":"yesterday","type":"view"}`,
		`{"customer_id":"c1","ts":"2026-01-01T00:00:00Z","type":"view","store":"s1","store":"s2"}`,
		"  ", `{"customer_id":"c3","ts":1767225600,"type":"add_to_cart","channel":"web"}`,
	}
	for round := range 3 {
		for _, body := range bodies {
			n, err := conv.CheckEvent([]byte(body))
			rec, derr := conv.DecodeJSON([]byte(body))
			switch {
			case (err == nil) != (derr == nil):
				t.Errorf("round %d, %s: CheckEvent %v, DecodeJSON %v", round, body, err, derr)
			case err != nil && err.Error() != derr.Error():
				t.Errorf("round %d, %s: CheckEvent says %q, DecodeJSON %q", round, body, err, derr)
			case err == nil && int64(n) != rec.NumRows():
				t.Errorf("round %d, %s: CheckEvent counts %d events, DecodeJSON %d", round, body, n, rec.NumRows())
			}
		}
	}
}
