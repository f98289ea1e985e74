package synth

import (
	"strconv"
	"time"
)

// AppendNDJSON appends ev to dst as one newline-terminated JSON object with the
// default retail schema's field names, and returns the extended buffer. Absent
// optional fields are left out; ts is RFC 3339 in UTC with milliseconds or
// microseconds only when the time has them; amount is a JSON number with at
// most three decimals.
//
// Strings are written without escaping: every value this package generates is
// plain ASCII without quotes, backslashes or control characters.
func AppendNDJSON(dst []byte, ev *Event) []byte {
	dst = append(dst, `{"customer_id":"`...)
	dst = append(dst, ev.CustomerID...)
	dst = append(dst, `","ts":"`...)
	dst = appendTimestamp(dst, ev.TS)
	dst = append(dst, `","type":"`...)
	dst = append(dst, ev.Type...)
	dst = append(dst, '"')
	if ev.Set.Has(FieldStore) {
		dst = appendJSONString(dst, `,"store":"`, ev.Store)
	}
	if ev.Set.Has(FieldChannel) {
		dst = appendJSONString(dst, `,"channel":"`, ev.Channel)
	}
	if ev.Set.Has(FieldCategory) {
		dst = appendJSONString(dst, `,"category":"`, ev.Category)
	}
	if ev.Set.Has(FieldProduct) {
		dst = appendJSONString(dst, `,"product":"`, ev.Product)
	}
	if ev.Set.Has(FieldOrderID) {
		dst = appendJSONString(dst, `,"order_id":"`, ev.OrderID)
	}
	if ev.Set.Has(FieldQuantity) {
		dst = append(dst, `,"quantity":`...)
		dst = strconv.AppendInt(dst, ev.Quantity, 10)
	}
	if ev.Set.Has(FieldAmount) {
		dst = append(dst, `,"amount":`...)
		dst = appendMilli(dst, ev.AmountMilli)
	}
	if ev.Set.Has(FieldCountry) {
		dst = appendJSONString(dst, `,"country":"`, ev.Country)
	}
	return append(dst, '}', '\n')
}

func appendJSONString(dst []byte, key, v string) []byte {
	dst = append(dst, key...)
	dst = append(dst, v...)
	return append(dst, '"')
}

// CSVHeader returns the header row that matches AppendCSV: the default retail
// schema's columns in declaration order.
func CSVHeader() []string {
	return []string{"customer_id", "ts", "type", "store", "channel", "category", "product", "order_id", "quantity", "amount", "country"}
}

// AppendCSV appends ev to dst as one newline-terminated CSV record in the
// order of CSVHeader; absent optional fields are empty. Nothing is quoted:
// generated values contain no commas, quotes or line breaks.
func AppendCSV(dst []byte, ev *Event) []byte {
	dst = append(dst, ev.CustomerID...)
	dst = append(dst, ',')
	dst = appendTimestamp(dst, ev.TS)
	dst = append(dst, ',')
	dst = append(dst, ev.Type...)
	dst = appendCSVString(dst, ev.Set.Has(FieldStore), ev.Store)
	dst = appendCSVString(dst, ev.Set.Has(FieldChannel), ev.Channel)
	dst = appendCSVString(dst, ev.Set.Has(FieldCategory), ev.Category)
	dst = appendCSVString(dst, ev.Set.Has(FieldProduct), ev.Product)
	dst = appendCSVString(dst, ev.Set.Has(FieldOrderID), ev.OrderID)
	dst = append(dst, ',')
	if ev.Set.Has(FieldQuantity) {
		dst = strconv.AppendInt(dst, ev.Quantity, 10)
	}
	dst = append(dst, ',')
	if ev.Set.Has(FieldAmount) {
		dst = appendMilli(dst, ev.AmountMilli)
	}
	dst = appendCSVString(dst, ev.Set.Has(FieldCountry), ev.Country)
	return append(dst, '\n')
}

func appendCSVString(dst []byte, set bool, v string) []byte {
	dst = append(dst, ',')
	if set {
		dst = append(dst, v...)
	}
	return dst
}

// appendMilli writes thousandths as a decimal number with no more than three
// decimals and no trailing zeros: 12500 → 12.5, 7 → 0.007, -1000 → -1.
func appendMilli(dst []byte, v int64) []byte {
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		u = -u // also right for math.MinInt64
	}
	dst = strconv.AppendUint(dst, u/1000, 10)
	f := u % 1000
	if f == 0 {
		return dst
	}
	dst = append(dst, '.', byte('0'+f/100))
	if f%100 != 0 {
		dst = append(dst, byte('0'+f/10%10))
		if f%10 != 0 {
			dst = append(dst, byte('0'+f%10))
		}
	}
	return dst
}

// appendTimestamp writes t in UTC as RFC 3339 with as much of a fraction as it
// has, in steps of three digits and truncated to microseconds (the schema's
// resolution): 2025-03-01T18:04:05Z, …05.250Z, …05.000125Z. It is written by
// hand because time.AppendFormat costs as much as generating the event.
func appendTimestamp(dst []byte, t time.Time) []byte {
	us := t.UnixMicro()
	sec := floorDiv(us, 1_000_000)
	frac := us - sec*1_000_000
	days := floorDiv(sec, 86400)
	sod := sec - days*86400
	y, m, d := civil(days)
	if y < 0 || y > 9999 {
		return t.UTC().Truncate(time.Microsecond).AppendFormat(dst, "2006-01-02T15:04:05.999999Z07:00")
	}
	dst = append4(dst, y)
	dst = append(dst, '-')
	dst = append2(dst, m)
	dst = append(dst, '-')
	dst = append2(dst, d)
	dst = append(dst, 'T')
	dst = append2(dst, sod/3600)
	dst = append(dst, ':')
	dst = append2(dst, sod/60%60)
	dst = append(dst, ':')
	dst = append2(dst, sod%60)
	switch {
	case frac == 0:
	case frac%1000 == 0:
		dst = append(dst, '.')
		dst = append(dst, byte('0'+frac/100_000), byte('0'+frac/10_000%10), byte('0'+frac/1000%10))
	default:
		dst = append(dst, '.')
		dst = append2(dst, frac/10_000)
		dst = append2(dst, frac/100%100)
		dst = append2(dst, frac%100)
	}
	return append(dst, 'Z')
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
func civil(days int64) (y, m, d int64) {
	z := days + 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

func append2(dst []byte, v int64) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

func append4(dst []byte, v int64) []byte {
	return append(dst, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}
