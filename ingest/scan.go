package ingest

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// valueKind is the kind of one field value as it arrives.
type valueKind uint8

const (
	kindNull   valueKind = iota
	kindString           // raw holds the unescaped text
	kindNumber           // raw holds the JSON number's text
	kindBool             // b holds it
	kindTime             // n holds µs since the epoch (already parsed, from files)
	kindScaled           // n holds the stored int64 (already scaled, from files)
)

type value struct {
	kind valueKind
	raw  []byte
	b    bool
	n    int64
}

// scanner reads flat JSON objects: {"key": scalar, …}. It is hand-written because
// ingest speed is a product feature; FuzzDecodeNDJSON checks it against
// encoding/json.
type scanner struct {
	buf []byte
	pos int
	// scratch for unescaped strings; values point into buf when no escapes
	// occur, else into scratch (reset per row).
	scratch []byte
}

type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

func (s *scanner) errf(msg string) error {
	return &syntaxError{msg: msg + " at byte " + strconv.Itoa(s.pos)}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func (s *scanner) skipSpace() {
	for s.pos < len(s.buf) && isSpace(s.buf[s.pos]) {
		s.pos++
	}
}

// object scans one object, calling field for each member. The key and value
// slices are valid only during the call.
func (s *scanner) object(field func(key []byte, v value) error) error {
	s.scratch = s.scratch[:0]
	s.skipSpace()
	if s.pos >= len(s.buf) || s.buf[s.pos] != '{' {
		return s.errf("expected an object starting with {")
	}
	s.pos++
	s.skipSpace()
	if s.pos < len(s.buf) && s.buf[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.buf) || s.buf[s.pos] != '"' {
			return s.errf("expected a field name in quotes")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.buf) || s.buf[s.pos] != ':' {
			return s.errf("expected : after a field name")
		}
		s.pos++
		s.skipSpace()
		v, err := s.scalar()
		if err != nil {
			return err
		}
		if err := field(key, v); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.buf) {
			return s.errf("object is not closed")
		}
		switch s.buf[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errf("expected , or } after a value")
		}
	}
}

func (s *scanner) scalar() (value, error) {
	if s.pos >= len(s.buf) {
		return value{}, s.errf("expected a value")
	}
	switch c := s.buf[s.pos]; {
	case c == '"':
		b, err := s.str()
		return value{kind: kindString, raw: b}, err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true", value{kind: kindBool, b: true})
	case c == 'f':
		return s.literal("false", value{kind: kindBool})
	case c == 'n':
		return s.literal("null", value{kind: kindNull})
	case c == '{' || c == '[':
		return value{}, &syntaxError{msg: "nested objects and arrays are not accepted: events are flat"}
	}
	return value{}, s.errf("expected a value")
}

func (s *scanner) literal(lit string, v value) (value, error) {
	if len(s.buf)-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return value{}, s.errf("invalid literal")
	}
	s.pos += len(lit)
	return v, nil
}

// number scans a JSON number per RFC 8259.
func (s *scanner) number() (value, error) {
	start := s.pos
	b := s.buf
	if b[s.pos] == '-' {
		s.pos++
	}
	digits := func() int {
		n := 0
		for s.pos < len(b) && b[s.pos] >= '0' && b[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.pos < len(b) && b[s.pos] == '0' {
		s.pos++
	} else if digits() == 0 {
		return value{}, s.errf("invalid number")
	}
	if s.pos < len(b) && b[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return value{}, s.errf("invalid number")
		}
	}
	if s.pos < len(b) && (b[s.pos] == 'e' || b[s.pos] == 'E') {
		s.pos++
		if s.pos < len(b) && (b[s.pos] == '+' || b[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return value{}, s.errf("invalid number")
		}
	}
	return value{kind: kindNumber, raw: b[start:s.pos]}, nil
}

// str scans a string starting at the opening quote and returns its unescaped
// bytes. Invalid UTF-8 is rejected (encoding/json would replace it silently; we
// refuse to store mangled data).
func (s *scanner) str() ([]byte, error) {
	s.pos++ // opening quote
	start := s.pos
	b := s.buf
	for s.pos < len(b) {
		c := b[s.pos]
		if c == '"' {
			out := b[start:s.pos]
			s.pos++
			if !utf8.Valid(out) {
				return nil, &syntaxError{msg: "string is not valid UTF-8"}
			}
			return out, nil
		}
		if c == '\\' {
			return s.strEscaped(start)
		}
		if c < 0x20 {
			return nil, s.errf("control character in string")
		}
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
			return nil, s.errf("control character in string")
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
