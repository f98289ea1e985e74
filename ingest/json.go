package ingest

import (
	"bytes"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

// msgNoEvents is the error for a body without rows; it names no line.
const msgNoEvents = "the body holds no events; send NDJSON (one object per line) or a JSON array of objects"

// DecodeJSON converts a body of NDJSON (one flat object per line; blank lines are
// ignored) or one JSON array of flat objects into one record. The form is told by
// the first non-space byte. It returns the whole batch or nothing: the first bad
// row gives an *privalytics.Error, EINVALID (ETOOLARGE past Limits.MaxRows), with
// Details "line" (the 1-based line of NDJSON, blank lines counted; for an array,
// the 1-based index of the element), "field" (when one field is to blame) and
// "reason".
//
// Values: strings for string columns; JSON numbers for int (whole, no point or
// exponent) and float (finite) columns; decimals as a number or a string, with at
// most the column's scale of digits after the point, parsed exactly; timestamps as
// RFC 3339 text with a zone or Unix seconds as a number; true/false for bools;
// null or absence for a missing optional field. The customer identifier must be
// a non-empty string.
func (c *Converter) DecodeJSON(body []byte) (arrow.Record, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, msgNoEvents)
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
		return nil, privalytics.Errorf(privalytics.EINVALID, msgNoEvents)
	}
	return b.record(), nil
}

// CheckEvent validates an NDJSON body exactly as DecodeJSON would, without
// building a record: the
// tracking endpoint checks each event alone before it joins a group commit. It
// returns the number of events in the body; a valid body of more than one is
// not an error here.
func (c *Converter) CheckEvent(body []byte) (int, error) {
	b, _ := c.checks.Get().(*batch)
	if b == nil {
		b = c.newBatch(1)
	}
	defer func() { b.reset(); c.checks.Put(b) }()
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return 0, privalytics.Errorf(privalytics.EINVALID, msgNoEvents)
	}
	if err := c.decodeNDJSON(b, body); err != nil {
		return 0, err
	}
	if b.rows == 0 {
		return 0, privalytics.Errorf(privalytics.EINVALID, msgNoEvents)
	}
	return b.rows, nil
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
		return rowError(max(elem, 1), "", "unexpected text after the array")
	}
	return nil
}

// row scans one object into the batch.
func (c *Converter) row(b *batch, sc *scanner, line int) error {
	err := sc.begin()
	k := 0 // position of the field in the object
	for err == nil {
		ok, e := sc.next()
		if e != nil || !ok {
			err = e
			break
		}
		key := sc.key
		// Senders write their fields in the same order on every row: guess the
		// column from the previous row's order before asking the map (whose
		// lookup with string(key) does not allocate, but hashes).
		i := -1
		if k < len(b.order) && c.names[b.order[k]] == string(key) {
			i = b.order[k]
		} else if j, known := c.byName[string(key)]; known {
			i = j
			if k < len(b.order) {
				b.order[k] = j
			}
		} else {
			return rowError(line, string(key), "unknown field: the schema does not declare it, so it is not accepted (data minimisation); remove it or add it to the schema")
		}
		k++
		if err := b.set(i, &sc.val, line); err != nil {
			return err
		}
	}
	if se, ok := err.(*syntaxError); ok {
		return rowError(line, "", "malformed JSON: "+se.msg)
	} else if err != nil {
		return err
	}
	return b.endRow(line)
}
