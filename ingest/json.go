package ingest

import (
	"bytes"
	"errors"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

// DecodeJSON converts a body of NDJSON (one flat object per line; blank lines are
// ignored) or one JSON array of flat objects into one record. The form is told by
// the first non-space byte. Errors name the line of NDJSON, or the element of an
// array (as "line", counting from 1), the field and the reason.
func (c *Converter) DecodeJSON(body []byte) (arrow.Record, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "the body holds no events")
	}
	estimate := bytes.Count(body, []byte{'\n'}) + 1
	if trimmed[0] == '[' {
		estimate = len(body) / 64
	}
	b := c.newBatch(min(estimate, c.limits.MaxRows+1))
	var err error
	if trimmed[0] == '[' {
		err = c.decodeArray(b, trimmed)
	} else {
		err = c.decodeNDJSON(b, body)
	}
	if err != nil {
		return nil, err
	}
	if b.rows == 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "the body holds no events")
	}
	return b.record(), nil
}

func (c *Converter) decodeNDJSON(b *batch, body []byte) error {
	sc := &scanner{}
	line := 0
	for len(body) > 0 {
		line++
		nl := bytes.IndexByte(body, '\n')
		var ln []byte
		if nl < 0 {
			ln, body = body, nil
		} else {
			ln, body = body[:nl], body[nl+1:]
		}
		if len(bytes.TrimSpace(ln)) == 0 {
			continue
		}
		sc.buf, sc.pos = ln, 0
		if err := c.row(b, sc, line); err != nil {
			return err
		}
		sc.skipSpace()
		if sc.pos != len(ln) {
			return rowError(line, "", "unexpected text after the object; send one object per line")
		}
	}
	return nil
}

func (c *Converter) decodeArray(b *batch, body []byte) error {
	sc := &scanner{buf: body, pos: 1}
	elem := 0
	sc.skipSpace()
	if sc.pos < len(body) && body[sc.pos] == ']' {
		sc.pos++
	} else {
		for {
			elem++
			if err := c.row(b, sc, elem); err != nil {
				return err
			}
			sc.skipSpace()
			if sc.pos >= len(body) {
				return rowError(elem, "", "the array is not closed")
			}
			if body[sc.pos] == ']' {
				sc.pos++
				break
			}
			if body[sc.pos] != ',' {
				return rowError(elem, "", "expected , or ] after an element")
			}
			sc.pos++
		}
	}
	sc.skipSpace()
	if sc.pos != len(body) {
		return rowError(elem, "", "unexpected text after the array")
	}
	return nil
}

// row scans one object into the batch.
func (c *Converter) row(b *batch, sc *scanner, line int) error {
	err := sc.object(func(key []byte, v value) error {
		i, ok := c.byName[string(key)]
		if !ok {
			return rowError(line, string(key), "unknown field: the schema does not declare it, so it is not accepted (data minimisation)")
		}
		return b.set(i, v, line, string(key))
	})
	var se *syntaxError
	if errors.As(err, &se) {
		return rowError(line, "", "malformed JSON: "+se.msg)
	} else if err != nil {
		return err
	}
	return b.endRow(line)
}
