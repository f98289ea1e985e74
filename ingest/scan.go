package ingest

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// valueKind is the kind of one field value as it arrives. JSON values keep their
// JSON type, so a string sent for an int column is a type error; cells of CSV and
// Parquet files arrive as kindText, which each column type parses from text.
type valueKind uint8

const (
	kindNull   valueKind = iota
	kindString           // a JSON string; raw holds the unescaped text
	kindNumber           // a JSON number; raw holds its text
	kindBool             // a JSON true or false; b holds it
	kindText             // an untyped cell of a file; raw holds its text
	kindTime             // n holds µs since the epoch (already parsed, from files)
	kindScaled           // n holds the stored int64 (already scaled, from files)
)

type value struct {
	kind valueKind
	b    bool
	raw  []byte
	n    int64
}

// scanner reads flat JSON objects: {"key": scalar, …}. It is hand-written because
// ingest speed is a product feature (encoding/json decodes 0.6 M rows/s on one
// core; this reaches several times that, see BenchmarkDecodeJSON), and it never
// allocates on the way to a valid row. FuzzDecodeNDJSON checks it against
// encoding/json.
type scanner struct {
	buf []byte
	pos int
	// scratch holds unescaped strings of the current object: values point into
	// buf when a string has no escapes, else into scratch. begin resets it, so a
	// key or value is valid until the next object.
	scratch []byte
	first   bool
	key     []byte // the current member, set by next
	val     value
}

type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

func (s *scanner) errf(msg string) error {
	return &syntaxError{msg: msg + " at byte " + strconv.Itoa(s.pos+1)}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func (s *scanner) skipSpace() {
	for s.pos < len(s.buf) && isSpace(s.buf[s.pos]) {
		s.pos++
	}
}

// begin consumes the opening brace of an object; next then yields its members.
func (s *scanner) begin() error {
	s.scratch = s.scratch[:0]
	s.skipSpace()
	if s.pos >= len(s.buf) || s.buf[s.pos] != '{' {
		return s.errf("expected an object starting with {")
	}
	s.pos++
	s.first = true
	return nil
}

// next moves to the object's next member, leaving it in s.key and s.val, or
// returns false after the closing brace. A loop over next instead of a callback
// per member keeps the row path free of closures, and results in the scanner
// instead of a wide return keep it in registers.
func (s *scanner) next() (bool, error) {
	b := s.buf
	for s.pos < len(b) && isSpace(b[s.pos]) {
		s.pos++
	}
	if s.pos >= len(b) {
		return false, s.errf("object is not closed")
	}
	if s.first {
		s.first = false
		if b[s.pos] == '}' {
			s.pos++
			return false, nil
		}
	} else {
		switch b[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case '}':
			s.pos++
			return false, nil
		default:
			return false, s.errf("expected , or } after a value")
		}
	}
	if s.pos >= len(b) || b[s.pos] != '"' {
		return false, s.errf("expected a field name in quotes")
	}
	key, err := s.str()
	if err != nil {
		return false, err
	}
	s.key = key
	if s.pos < len(b) && b[s.pos] == ':' { // the usual "key":value
		s.pos++
	} else {
		s.skipSpace()
		if s.pos >= len(b) || b[s.pos] != ':' {
			return false, s.errf("expected : after a field name")
		}
		s.pos++
	}
	if s.pos < len(b) && isSpace(b[s.pos]) {
		s.skipSpace()
	}
	return true, s.scalar(&s.val)
}

// object scans one whole object, calling field for each member (used by tests).
func (s *scanner) object(field func(key []byte, v value) error) error {
	if err := s.begin(); err != nil {
		return err
	}
	for {
		ok, err := s.next()
		if err != nil || !ok {
			return err
		}
		if err := field(s.key, s.val); err != nil {
			return err
		}
	}
}

func (s *scanner) scalar(v *value) error {
	if s.pos >= len(s.buf) {
		return s.errf("expected a value")
	}
	switch c := s.buf[s.pos]; {
	case c == '"':
		b, err := s.str()
		*v = value{kind: kindString, raw: b}
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number(v)
	case c == 't':
		return s.literal("true", v, value{kind: kindBool, b: true})
	case c == 'f':
		return s.literal("false", v, value{kind: kindBool})
	case c == 'n':
		return s.literal("null", v, value{kind: kindNull})
	case c == '{' || c == '[':
		return &syntaxError{msg: "nested objects and arrays are not accepted: events are flat, send each value as a string, number, true, false or null"}
	}
	return s.errf("expected a value")
}

func (s *scanner) literal(lit string, v *value, lv value) error {
	if len(s.buf)-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return s.errf("invalid literal")
	}
	s.pos += len(lit)
	*v = lv
	return nil
}

// number scans a JSON number per RFC 8259.
func (s *scanner) number(v *value) error {
	start := s.pos
	b := s.buf
	if b[s.pos] == '-' {
		s.pos++
	}
	if s.pos < len(b) && b[s.pos] == '0' {
		s.pos++
	} else if s.digits() == 0 {
		return s.errf("invalid number")
	}
	if s.pos < len(b) && b[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return s.errf("invalid number")
		}
	}
	if s.pos < len(b) && (b[s.pos] == 'e' || b[s.pos] == 'E') {
		s.pos++
		if s.pos < len(b) && (b[s.pos] == '+' || b[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.errf("invalid number")
		}
	}
	*v = value{kind: kindNumber, raw: b[start:s.pos]}
	return nil
}

func (s *scanner) digits() int {
	start := s.pos
	for s.pos < len(s.buf) && s.buf[s.pos] >= '0' && s.buf[s.pos] <= '9' {
		s.pos++
	}
	return s.pos - start
}

// plain marks the bytes a string can hold without a closer look: not the quote,
// not the backslash, no control character, ASCII.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans a string starting at the opening quote and returns its unescaped
// bytes. Invalid UTF-8 is rejected: encoding/json would replace it silently, and
// we refuse to store mangled data.
func (s *scanner) str() ([]byte, error) {
	s.pos++ // opening quote
	start := s.pos
	b := s.buf
	ascii := true
	for s.pos < len(b) {
		c := b[s.pos]
		if plain[c] {
			s.pos++
			continue
		}
		switch {
		case c == '"':
			out := b[start:s.pos]
			s.pos++
			if !ascii && !utf8.Valid(out) {
				return nil, &syntaxError{msg: "string is not valid UTF-8"}
			}
			return out, nil
		case c == '\\':
			return s.strEscaped(start)
		case c < 0x20:
			return nil, s.errf("control character in string (escape it as \\n, \\t or \\u00XX)")
		}
		ascii = false
		s.pos++
	}
	return nil, s.errf("string is not closed")
}

func (s *scanner) strEscaped(start int) ([]byte, error) {
	b := s.buf
	from := len(s.scratch)
	s.scratch = append(s.scratch, b[start:s.pos]...)
	for s.pos < len(b) {
		c := b[s.pos]
		switch {
		case c == '"':
			s.pos++
			out := s.scratch[from:]
			if !utf8.Valid(out) {
				return nil, &syntaxError{msg: "string is not valid UTF-8"}
			}
			return out, nil
		case c < 0x20:
			return nil, s.errf("control character in string (escape it as \\n, \\t or \\u00XX)")
		case c != '\\':
			s.scratch = append(s.scratch, c)
			s.pos++
			continue
		}
		s.pos++
		if s.pos >= len(b) {
			break
		}
		e := b[s.pos]
		s.pos++
		switch e {
		case '"', '\\', '/':
			s.scratch = append(s.scratch, e)
		case 'b':
			s.scratch = append(s.scratch, '\b')
		case 'f':
			s.scratch = append(s.scratch, '\f')
		case 'n':
			s.scratch = append(s.scratch, '\n')
		case 'r':
			s.scratch = append(s.scratch, '\r')
		case 't':
			s.scratch = append(s.scratch, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, s.errf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A lone surrogate becomes U+FFFD, as encoding/json does.
				r2 := utf8.RuneError
				if s.pos+6 <= len(b) && b[s.pos] == '\\' && b[s.pos+1] == 'u' {
					save := s.pos
					s.pos += 2
					if lo, ok := s.hex4(); ok {
						if dec := utf16.DecodeRune(r, lo); dec != utf8.RuneError {
							r2 = dec
						} else {
							s.pos = save
						}
					} else {
						s.pos = save
					}
				}
				r = r2
			}
			s.scratch = utf8.AppendRune(s.scratch, r)
		default:
			return nil, s.errf("invalid escape")
		}
	}
	return nil, s.errf("string is not closed")
}

func (s *scanner) hex4() (rune, bool) {
	if s.pos+4 > len(s.buf) {
		return 0, false
	}
	var r rune
	for _, c := range s.buf[s.pos : s.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	s.pos += 4
	return r, true
}
