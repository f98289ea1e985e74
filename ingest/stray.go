package ingest

// Stray personal data: declared free-text fields (Column.FreeText) are scanned
// for e-mail addresses, phone numbers, payment-card numbers (Luhn-checked) and
// IBANs (mod-97-checked). The tenant's policy (PrivacyPolicy.StrayData) rejects
// the batch, naming the row and field, or redacts each finding to a marker such
// as "[email]". The scan is hand-written, one pass over the bytes with small
// look-arounds at '@', at digits and at two capital letters, so it costs little
// more than reading the text (see BenchmarkScanStray).
//
// What counts:
//   - e-mail: local part of [A-Za-z0-9._%+-], '@', a domain of labels of
//     [A-Za-z0-9-] with at least one dot and a final label of two or more letters.
//   - payment card: 13 to 19 digits, optionally grouped by single spaces or
//     dashes, passing the Luhn check.
//   - phone: digits grouped by spaces, dashes, dots, slashes or parentheses,
//     10 to 15 digits, or 8 to 15 after a leading '+' (E.164 has at most 15).
//     Dates (YYYY-MM-DD, DD/MM/YYYY, DD.MM.YYYY) and times of day do not count.
//   - IBAN: two letters, two check digits, then 11 to 30 letters or digits,
//     optionally in groups of four, passing the ISO 13616 mod-97 check.
// Digit runs glued to letters ("SKU12345678901") are product codes, not phones.

// Stray personal data kinds, as named in errors and redaction markers.
const (
	StrayEmail = "email"
	StrayPhone = "phone"
	StrayCard  = "card"
	StrayIBAN  = "iban"
)

// Finding is one piece of personal data found in a text: its kind and its
// byte range [Start, End).
type Finding struct {
	Kind       string
	Start, End int
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLetter(c byte) bool {
	return c|0x20 >= 'a' && c|0x20 <= 'z'
}
func isAlnum(c byte) bool { return isDigit(c) || isLetter(c) }
func isLocalChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}
func isDomainChar(c byte) bool { return isAlnum(c) || c == '-' || c == '.' }

// ScanStray appends the findings in s to dst, in order and without overlaps.
func ScanStray(s []byte, dst []Finding) []Finding {
	n := len(s)
	for i := 0; i < n; i++ {
		c := s[i]
		switch {
		case c == '@':
			if f, ok := emailAt(s, i); ok {
				// An e-mail's local part may hold digits already reported as a
				// phone or card: the e-mail wins.
				for len(dst) > 0 && dst[len(dst)-1].End > f.Start {
					dst = dst[:len(dst)-1]
				}
				dst = append(dst, f)
				i = f.End - 1
			}
		case isDigit(c) || c == '+' || c == '(':
			if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '+') {
				continue
			}
			f, end, ok := numberAt(s, i)
			if ok {
				dst = append(dst, f)
			}
			if end > i {
				i = end - 1
			}
		case isLetter(c):
			if i+4 <= n && isLetter(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) && (i == 0 || !isAlnum(s[i-1])) {
				if f, ok := ibanAt(s, i); ok {
					dst = append(dst, f)
					i = f.End - 1
					continue
				}
			}
			// Skip the rest of the word: an IBAN or a phone starts at a word boundary.
			for i+1 < n && isLetter(s[i+1]) {
				i++
			}
		}
	}
	return dst
}

// emailAt checks for an e-mail address around the '@' at s[at].
func emailAt(s []byte, at int) (Finding, bool) {
	start := at
	for start > 0 && isLocalChar(s[start-1]) {
		start--
	}
	for start < at && s[start] == '.' { // a sentence's full stop is not part of it
		start++
	}
	if start == at {
		return Finding{}, false
	}
	end := at + 1
	for end < len(s) && isDomainChar(s[end]) {
		end++
	}
	for end > at+1 && (s[end-1] == '.' || s[end-1] == '-') {
		end--
	}
	dom := s[at+1 : end]
	lastDot := -1
	for j, c := range dom {
		if c == '.' {
			if j == 0 || dom[j-1] == '.' {
				return Finding{}, false
			}
			lastDot = j
		}
	}
	if lastDot < 1 || len(dom)-lastDot-1 < 2 {
		return Finding{}, false
	}
	for _, c := range dom[lastDot+1:] {
		if !isLetter(c) {
			return Finding{}, false
		}
	}
	return Finding{Kind: StrayEmail, Start: start, End: end}, true
}

func isPhoneSep(c byte) bool {
	return c == ' ' || c == '-' || c == '.' || c == '/' || c == '(' || c == ')'
}

// numberAt reads a run of digit groups from s[i] and classifies it as a card,
// a phone number or nothing. end is where the run stops, found or not.
func numberAt(s []byte, i int) (f Finding, end int, ok bool) {
	n := len(s)
	if d := dateAt(s, i); d > 0 {
		return Finding{}, d, false
	}
	plus := s[i] == '+'
	j := i
	if plus {
		j++
	}
	var digits [20]byte
	nd := 0
	// cardish: the groups are separated only by single spaces or dashes.
	cardish, lastDigit := !plus, -1
	for j < n {
		c := s[j]
		if isDigit(c) {
			if nd < len(digits) {
				digits[nd] = c
			}
			nd++
			lastDigit = j
			j++
			continue
		}
		if !isPhoneSep(c) {
			break
		}
		// At most two separators in a row (") "), and a digit must follow.
		k := j
		for k < n && k-j < 2 && isPhoneSep(s[k]) {
			k++
		}
		if k >= n || !isDigit(s[k]) {
			break
		}
		if k-j > 1 || (c != ' ' && c != '-') {
			cardish = false
		}
		j = k
	}
	if lastDigit < 0 {
		return Finding{}, i + 1, false
	}
	end = lastDigit + 1
	if end < n && (isLetter(s[end]) || s[end] == ':') {
		return Finding{}, end, false // glued to a word (a code) or a time of day
	}
	if s[i] == '(' && nd > 0 {
		cardish = false
	}
	if cardish && nd >= 13 && nd <= 19 && luhn(digits[:nd]) {
		return Finding{Kind: StrayCard, Start: i, End: end}, end, true
	}
	if nd <= 15 && (nd >= 10 || (plus && nd >= 8)) {
		return Finding{Kind: StrayPhone, Start: i, End: end}, end, true
	}
	return Finding{}, end, false
}

// dateAt returns the end of a date written YYYY-MM-DD, DD/MM/YYYY or
// DD.MM.YYYY (any of -, / and . as separator) at s[i], or 0: dates are digit
// groups that must not join a following number into a "phone".
func dateAt(s []byte, i int) int {
	digitsAt := func(j, k int) bool {
		if j+k > len(s) {
			return false
		}
		for _, c := range s[j : j+k] {
			if !isDigit(c) {
				return false
			}
		}
		return true
	}
	sepAt := func(j int) bool { return j < len(s) && (s[j] == '-' || s[j] == '/' || s[j] == '.') }
	if digitsAt(i, 4) && sepAt(i+4) && digitsAt(i+5, 2) && sepAt(i+7) && digitsAt(i+8, 2) && s[i+4] == s[i+7] {
		return i + 10
	}
	if digitsAt(i, 2) && sepAt(i+2) && digitsAt(i+3, 2) && sepAt(i+5) && digitsAt(i+6, 4) && s[i+2] == s[i+5] {
		return i + 10
	}
	return 0
}

// luhn reports whether the digits pass the Luhn check of payment-card numbers.
func luhn(d []byte) bool {
	sum := 0
	for k := 0; k < len(d); k++ {
		v := int(d[len(d)-1-k] - '0')
		if k%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// ibanAt checks for an IBAN starting at s[i] (two letters, two digits known):
// the longest run of 15 to 34 letters and digits, optionally in groups of four
// separated by single spaces, that passes mod-97.
func ibanAt(s []byte, i int) (Finding, bool) {
	var chars [34]byte
	var ends [34]int // ends[k]: the byte after the (k+1)-th character
	nc := 0
	j := i
	for j < len(s) && nc < len(chars) {
		c := s[j]
		if isAlnum(c) {
			chars[nc] = c
			nc++
			j++
			ends[nc-1] = j
			continue
		}
		if c == ' ' && nc%4 == 0 && j+1 < len(s) && isAlnum(s[j+1]) {
			j++
			continue
		}
		break
	}
	for k := nc; k >= 15; k-- {
		e := ends[k-1]
		if e < len(s) && isAlnum(s[e]) {
			continue // it must end at a word boundary, not inside a longer code
		}
		if mod97(chars[:k]) == 1 {
			return Finding{Kind: StrayIBAN, Start: i, End: e}, true
		}
	}
	return Finding{}, false
}

// mod97 computes the ISO 13616 check: the first four characters moved to the
// end, letters as 10..35, the whole read as a decimal number, modulo 97.
func mod97(c []byte) int {
	r := 0
	add := func(b byte) {
		switch {
		case isDigit(b):
			r = (r*10 + int(b-'0')) % 97
		default:
			v := int(b|0x20-'a') + 10
			r = (r*100 + v) % 97
		}
	}
	for _, b := range c[4:] {
		add(b)
	}
	for _, b := range c[:4] {
		add(b)
	}
	return r
}

// Redact returns s with every finding replaced by its marker, "[email]" etc.
func Redact(s []byte, fs []Finding) []byte {
	out := make([]byte, 0, len(s))
	prev := 0
	for _, f := range fs {
		out = append(out, s[prev:f.Start]...)
		out = append(out, '[')
		out = append(out, f.Kind...)
		out = append(out, ']')
		prev = f.End
	}
	return append(out, s[prev:]...)
}

var strayNames = map[string]string{StrayEmail: "an e-mail address", StrayPhone: "a phone number", StrayCard: "a payment-card number", StrayIBAN: "an IBAN"}
