package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"time"
)

// The parsers below turn one value into its stored int64. They allocate only to
// report an error.

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// parseIntValue accepts a JSON number or a file cell holding a whole number.
func parseIntValue(v value) (int64, error) {
	switch v.kind {
	case kindScaled:
		return v.n, nil
	case kindNumber, kindText:
		if n, ok := parseInt(bytes.TrimSpace(v.raw)); ok {
			return n, nil
		}
		return 0, fmt.Errorf("must be a whole number without a point or exponent, like 12, got %s", truncate(v.raw))
	}
	return 0, fmt.Errorf("must be a whole number, got %s", kindNames[v.kind])
}

// parseInt parses [-]digits into an int64, refusing overflow.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg || (len(b) > 0 && b[0] == '+') {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// parseDecimalValue parses an exact decimal into an int64 scaled by 10^scale. A
// JSON string is accepted as well as a number, because clients that handle money
// carefully send it as text. Exponents are refused: "1e3" is too easily a mistake
// for money, and exactness is the point.
func parseDecimalValue(v value, scale int) (int64, error) {
	switch v.kind {
	case kindScaled:
		return v.n, nil
	case kindNumber, kindString, kindText:
		mant, s, err := parseDecimal(bytes.TrimSpace(v.raw))
		if err != nil {
			return 0, err
		}
		n, err := rescale(mant, s, scale)
		if err != nil {
			// Name the value: "has more than 2 digits" alone does not say which cell.
			return 0, fmt.Errorf("%q %v", truncate(bytes.TrimSpace(v.raw)), err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("must be a decimal number like 12.50, got %s", kindNames[v.kind])
}

var errDecimalRange = errors.New("is too large for a decimal")

// parseDecimal parses [-]digits[.digits] exactly into a mantissa and its scale
// (the number of digits after the point).
func parseDecimal(b []byte) (mant int64, scale int, err error) {
	orig := b
	neg := len(b) > 0 && b[0] == '-'
	if neg || (len(b) > 0 && b[0] == '+') {
		b = b[1:]
	}
	digits, point := 0, false
	var u uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if u > (math.MaxInt64-9)/10 {
				return 0, 0, errDecimalRange
			}
			u = u*10 + uint64(c-'0')
			digits++
			if point {
				scale++
			}
		case c == '.' && !point:
			point = true
		default:
			return 0, 0, fmt.Errorf("must be a decimal number like 12.50 (no exponent, no thousands separator), got %q", truncate(orig))
		}
	}
	if digits == 0 {
		return 0, 0, fmt.Errorf("must be a decimal number like 12.50, got %q", truncate(orig))
	}
	mant = int64(u)
	if neg {
		mant = -mant
	}
	return mant, scale, nil
}

var pow10 = [...]int64{1, 10, 100, 1000, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// rescale moves mant from scale s to scale to, exactly or with an error. Trailing
// zeros beyond the column's scale are fine ("1.500" at scale 1); other digits
// are not rounded away.
func rescale(mant int64, s, to int) (int64, error) {
	if s > to {
		if s-to >= len(pow10) {
			if mant == 0 {
				return 0, nil
			}
			return 0, fmt.Errorf("has more than %d digits after the point", to)
		}
		d := pow10[s-to]
		if mant%d != 0 {
			return 0, fmt.Errorf("has more than %d digits after the point; round it, or raise the column's scale", to)
		}
		return mant / d, nil
	}
	if to-s >= len(pow10) {
		return 0, errDecimalRange
	}
	m := pow10[to-s]
	if mant > math.MaxInt64/m || mant < math.MinInt64/m {
		return 0, errDecimalRange
	}
	return mant * m, nil
}

// maxUnixMicros bounds timestamps to about ±5000 years around 1970: anything
// beyond is a unit mistake (ms or ns sent as seconds).
const maxUnixMicros = 1e17

// parseTimeValue accepts RFC 3339 text or Unix seconds (a JSON number, maybe
// with a fraction), and for file cells either of the two. memo, when not nil,
// is the column's memo of the last date and hour it read.
func parseTimeValue(v value, memo *hourMemo) (int64, error) {
	switch v.kind {
	case kindTime:
		return v.n, nil
	case kindNumber:
		if us, ok := unixMicros(v.raw); ok {
			return us, nil
		}
		return 0, fmt.Errorf("must be Unix seconds within ±1e11 (not milliseconds), got %s", truncate(v.raw))
	case kindString, kindText:
		raw := v.raw
		if v.kind == kindText {
			raw = bytes.TrimSpace(raw)
		}
		if us, ok := memo.parse(raw); ok {
			return us, nil
		}
		if v.kind == kindText { // a file cell may hold Unix seconds
			if us, ok := unixMicros(raw); ok {
				return us, nil
			}
		}
		if t, err := time.Parse(time.RFC3339Nano, string(raw)); err == nil && !tooFar(t) {
			return t.UnixMicro(), nil
		}
		return 0, fmt.Errorf("must be RFC 3339 with a zone like 2025-03-01T10:00:00Z or 2025-03-01T11:00:00+01:00, or Unix seconds as a number, got %q", truncate(raw))
	}
	return 0, fmt.Errorf("must be RFC 3339 text or Unix seconds, got %s", kindNames[v.kind])
}

func tooFar(t time.Time) bool {
	return t.Year() < -3000 || t.Year() > 7000
}

// unixMicros converts a JSON number of Unix seconds into µs exactly, without a
// float round trip (1740823200.123456 must not become …123455). Digits below a
// microsecond are dropped towards the past, as time.Time.UnixMicro does.
func unixMicros(raw []byte) (int64, bool) {
	i := 0
	neg := len(raw) > 0 && raw[0] == '-'
	if neg {
		i++
	}
	// The number is 0.d₁d₂… × 10^point; only the first 19 significant digits
	// can matter below maxUnixMicros, the rest only in whether they are zero.
	var digits [19]byte
	nd, point, rest, seen := 0, 0, false, false
	add := func(c byte) {
		if nd < len(digits) {
			digits[nd] = c - '0'
			nd++
		} else if c != '0' {
			rest = true
		}
	}
	for ; i < len(raw) && raw[i] >= '0' && raw[i] <= '9'; i++ {
		seen = true
		if nd == 0 && raw[i] == '0' {
			continue
		}
		add(raw[i])
		point++
	}
	if i < len(raw) && raw[i] == '.' {
		for i++; i < len(raw) && raw[i] >= '0' && raw[i] <= '9'; i++ {
			seen = true
			if nd == 0 && raw[i] == '0' {
				point--
				continue
			}
			add(raw[i])
		}
	}
	if !seen {
		return 0, false
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		eneg := i < len(raw) && raw[i] == '-'
		if i < len(raw) && (raw[i] == '-' || raw[i] == '+') {
			i++
		}
		exp, any := 0, false
		for ; i < len(raw) && raw[i] >= '0' && raw[i] <= '9'; i++ {
			any = true
			if exp < 10000 {
				exp = exp*10 + int(raw[i]-'0')
			}
		}
		if !any {
			return 0, false
		}
		if eneg {
			exp = -exp
		}
		point += exp
	}
	if i != len(raw) {
		return 0, false
	}
	if nd == 0 {
		return 0, true
	}
	k := point + 6 // digits before the point once counted in µs
	if k > 18 {
		return 0, false
	}
	var us int64
	for j := 0; j < k; j++ {
		us *= 10
		if j < nd {
			us += int64(digits[j])
		}
	}
	for j := max(k, 0); j < nd; j++ {
		if digits[j] != 0 {
			rest = true
		}
	}
	if us > maxUnixMicros {
		return 0, false
	}
	if neg {
		us = -us
		if rest {
			us--
		}
	}
	return us, true
}

// fastRFC3339 parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM) without
// allocating; anything else goes to time.Parse.
func fastRFC3339(b []byte) (int64, bool) {
	hour, ok := rfc3339Hour(b)
	if !ok {
		return 0, false
	}
	return rfc3339Rest(b, hour)
}

// rfc3339Hour checks the shape of b and reads its date and hour, as seconds
// since the epoch at the start of that hour (before the zone offset).
func rfc3339Hour(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	if !(ok1 && ok2 && ok3 && ok4) || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 {
		return 0, false
	}
	return (daysFromCivil(y, mo, d)*24 + int64(h)) * 3600, true
}

// rfc3339Rest reads the minutes, seconds, fraction and zone of b, whose shape
// and hour (in seconds) rfc3339Hour has read.
func rfc3339Rest(b []byte, hour int64) (int64, bool) {
	mi, ok1 := num(b[14:16])
	s, ok2 := num(b[17:19])
	if !(ok1 && ok2) || mi > 59 || s > 59 {
		return 0, false
	}
	rest := b[19:]
	frac := int64(0)
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return 0, false
		}
		for j := 1; j <= 6; j++ {
			frac *= 10
			if j < n {
				frac += int64(rest[j] - '0')
			}
		}
		rest = rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(rest[1:3])
		om, ok2 := num(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	secs := hour + int64(mi)*60 + int64(s) - int64(offset)
	return secs*1_000_000 + frac, true
}

// hourMemo remembers the date and hour of the last RFC 3339 time a column
// read: a file's times come in order, many to the hour, and the calendar
// arithmetic is most of a time's parsing.
type hourMemo struct {
	key  [13]byte // YYYY-MM-DDTHH
	hour int64
	ok   bool
}

// parse is fastRFC3339 with the memo; a nil memo is fastRFC3339.
func (m *hourMemo) parse(b []byte) (int64, bool) {
	if m == nil {
		return fastRFC3339(b)
	}
	if m.ok && len(b) >= 20 && string(b[:13]) == string(m.key[:]) && b[13] == ':' && b[16] == ':' {
		return rfc3339Rest(b, m.hour)
	}
	hour, ok := rfc3339Hour(b)
	if !ok {
		return 0, false
	}
	copy(m.key[:], b[:13])
	m.hour, m.ok = hour, true
	return rfc3339Rest(b, hour)
}

func num(s []byte) (int, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days since 1970-01-01 (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}
