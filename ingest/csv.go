package ingest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"strconv"
	"unsafe"
)

// csvReader splits CSV (RFC 4180: fields separated by commas, quoted with ",
// "" for a quote inside quotes, quoted fields may span lines) into blocks of
// records. It exists because encoding/csv allocates strings for every record,
// which capped file import at about 0.7 M rows/s on two cores; here a block of
// rows shares one byte slice and fields are offsets into it. Its rules follow
// encoding/csv without LazyQuotes: a bare " in an unquoted field, or text after a
// closing quote, is an error; blank lines are skipped; a trailing \r is dropped;
// every record must have as many fields as the header.
type csvReader struct {
	r lineSource
	// chunk, when set, is r itself reading a chunk that is also the block's
	// data: unquoted records then stay where they are instead of being copied.
	chunk *byteLines
	line  int // lines read so far
	nf    int // fields per record; 0 until the header is read
}

// lineSource yields lines as bufio.Reader.ReadSlice('\n') does.
type lineSource interface {
	ReadSlice(delim byte) ([]byte, error)
}

// byteLines serves the lines of a chunk in memory, with bufio.Reader's rules:
// a line longer than the 1 MiB buffer is bufio.ErrBufferFull.
type byteLines struct {
	b   []byte
	pos int
}

func (s *byteLines) ReadSlice(delim byte) ([]byte, error) {
	rest := s.b[s.pos:]
	if len(rest) == 0 {
		return nil, io.EOF
	}
	i := bytes.IndexByte(rest, delim)
	if i >= maxCSVLine || (i < 0 && len(rest) > maxCSVLine) {
		return nil, bufio.ErrBufferFull
	}
	if i < 0 {
		s.pos = len(s.b)
		return rest, io.EOF
	}
	s.pos += i + 1
	return rest[:i+1], nil
}

// csvBlock is a run of records. Field j of row i is data[bounds[2(i·nf+j)] :
// bounds[2(i·nf+j)+1]].
type csvBlock struct {
	data   []byte
	bounds []int32
	lines  []int // the line each row starts on
	nf     int
}

func (b *csvBlock) rows() int { return len(b.lines) }

// row fills dst with row i's fields as strings that share the block's memory.
// That is safe because a block is never written after it is parsed, and
// everything that outlives the row (dictionary entries, memo keys) is copied by
// the converter.
func (b *csvBlock) row(i int, dst []string) {
	bs := b.bounds[2*i*b.nf : 2*(i+1)*b.nf]
	for j := range dst {
		s, e := bs[2*j], bs[2*j+1]
		if e > s {
			dst[j] = unsafe.String(&b.data[s], int(e-s))
		} else {
			dst[j] = ""
		}
	}
}

// csvError is a malformed file; line is 1-based.
type csvError struct {
	line int
	msg  string
}

func (e *csvError) Error() string { return e.msg }

const maxCSVLine = 1 << 20

// header reads the first record.
func (r *csvReader) header() ([]string, error) {
	var b csvBlock
	if err := r.record(&b); err != nil {
		return nil, err
	}
	out := make([]string, b.nf)
	for j := range out {
		out[j] = string(b.data[b.bounds[2*j]:b.bounds[2*j+1]])
	}
	r.nf = b.nf
	return out, nil
}

// block reads up to n records. It returns io.EOF only with an empty block.
func (r *csvReader) block(n, sizeHint int) (*csvBlock, error) {
	b := &csvBlock{nf: r.nf, data: make([]byte, 0, sizeHint), bounds: make([]int32, 0, 2*n*r.nf), lines: make([]int, 0, n)}
	for b.rows() < n && len(b.data) < 1<<30 { // offsets are int32
		if err := r.record(b); err != nil {
			if err == io.EOF && b.rows() > 0 {
				return b, nil
			}
			return b, err
		}
	}
	return b, nil
}

// record appends one record to b, or returns io.EOF at the end of the input.
func (r *csvReader) record(b *csvBlock) error {
	if r.chunk != nil && r.plainLine(b) {
		return nil
	}
	var ln []byte
	for {
		var err error
		ln, err = r.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return &csvError{r.line + 1, "a line is longer than 1 MiB"}
		}
		if err != nil && err != io.EOF {
			return &csvError{r.line + 1, "reading the file: " + err.Error()}
		}
		if len(ln) == 0 && err == io.EOF {
			return io.EOF
		}
		r.line++
		if len(trimEOL(ln)) > 0 {
			break
		}
	}
	start := r.line
	mark := len(b.bounds)
	if bytes.IndexByte(ln, '"') < 0 {
		// The common case: no quotes, so the line is the fields.
		raw := len(ln)
		ln = trimEOL(ln)
		var base int32
		if r.chunk != nil {
			base = int32(r.chunk.pos - raw) // b.data begins with the chunk
		} else {
			if len(b.data)+len(ln) > 1<<31-1 {
				return &csvError{start, "block too large"}
			}
			base = int32(len(b.data))
			b.data = append(b.data, ln...)
		}
		from := int32(0)
		for {
			i := bytes.IndexByte(ln[from:], ',')
			if i < 0 {
				b.bounds = append(b.bounds, base+from, base+int32(len(ln)))
				break
			}
			b.bounds = append(b.bounds, base+from, base+from+int32(i))
			from += int32(i) + 1
		}
	} else if err := r.quoted(b, ln); err != nil {
		return err
	}
	nf := (len(b.bounds) - mark) / 2
	if r.nf != 0 && nf != r.nf {
		b.bounds = b.bounds[:mark]
		return &csvError{start, "wrong number of fields: the header has " + strconv.Itoa(r.nf) + ", this record " + strconv.Itoa(nf)}
	}
	b.nf = nf
	b.lines = append(b.lines, start)
	return nil
}

// Bytes of a word that separate fields or records, eight at a time: the
// splitter below finds them all in one pass over a line, where a search per
// separator costs a call per field.
const (
	lows  = 0x0101010101010101
	highs = 0x7f7f7f7f7f7f7f7f
)

// zeroBytes has the high bit set in exactly the bytes of x that are 0 (no
// false positives, unlike the shorter (x-lows)&^x trick, whose borrow marks
// the byte after a match).
func zeroBytes(x uint64) uint64 {
	y := (x & highs) + highs
	return ^(y | x | highs)
}

// plainLine splits the next line of a chunk in memory when it is an ordinary
// record: no quote, not blank, shorter than maxCSVLine. It returns false,
// having changed nothing, for anything else (and at the end of the chunk),
// which record then reads as before.
func (r *csvReader) plainLine(b *csvBlock) bool {
	data, start := r.chunk.b, r.chunk.pos
	if start >= len(data) {
		return false
	}
	mark := len(b.bounds)
	from, i, end := start, start, -1
	const comma, quote, newline = ',' * lows, '"' * lows, '\n' * lows
scan:
	for ; i+8 <= len(data); i += 8 {
		w := binary.LittleEndian.Uint64(data[i:])
		m := zeroBytes(w^comma) | zeroBytes(w^quote) | zeroBytes(w^newline)
		for ; m != 0; m &= m - 1 {
			k := i + bits.TrailingZeros64(m)/8
			switch data[k] {
			case ',':
				b.bounds = append(b.bounds, int32(from), int32(k))
				from = k + 1
			case '\n':
				end = k
				break scan
			default: // a quote
				b.bounds = b.bounds[:mark]
				return false
			}
		}
	}
	if end < 0 { // the last bytes of the chunk, one at a time
	tail:
		for ; i < len(data); i++ {
			switch data[i] {
			case ',':
				b.bounds = append(b.bounds, int32(from), int32(i))
				from = i + 1
			case '\n':
				end = i
				break tail
			case '"':
				b.bounds = b.bounds[:mark]
				return false
			}
		}
	}
	next := end + 1
	if end < 0 {
		end, next = len(data), len(data)
	}
	last := end
	if last > from && data[last-1] == '\r' {
		last--
	}
	if end-start >= maxCSVLine || (last == start && len(b.bounds) == mark) {
		b.bounds = b.bounds[:mark] // too long, or blank: record reports or skips it
		return false
	}
	b.bounds = append(b.bounds, int32(from), int32(last))
	nf := (len(b.bounds) - mark) / 2
	if r.nf != 0 && nf != r.nf {
		b.bounds = b.bounds[:mark]
		return false // record counts the same fields and reports it
	}
	r.chunk.pos = next
	r.line++
	b.nf = nf
	b.lines = append(b.lines, r.line)
	return true
}

// quoted parses a record with quotes, reading more lines while a quoted field
// is open.
func (r *csvReader) quoted(b *csvBlock, ln []byte) error {
	i := 0
	for {
		fieldStart := int32(len(b.data))
		if i < len(ln) && ln[i] == '"' {
			i++
			for {
				j := bytes.IndexByte(ln[i:], '"')
				if j < 0 {
					// The field goes on past the end of this line.
					rest := ln[i:]
					if len(rest) >= 2 && rest[len(rest)-2] == '\r' && rest[len(rest)-1] == '\n' {
						rest = append(rest[:len(rest)-2:len(rest)-2], '\n') // \r\n in quotes reads as \n, as in encoding/csv
					}
					b.data = append(b.data, rest...)
					if len(b.data)-int(fieldStart) > maxCSVLine {
						return &csvError{r.line, "a quoted field is longer than 1 MiB; is a closing quote missing?"}
					}
					next, err := r.r.ReadSlice('\n')
					if errors.Is(err, bufio.ErrBufferFull) {
						return &csvError{r.line + 1, "a line is longer than 1 MiB"}
					} else if err != nil && err != io.EOF {
						return &csvError{r.line + 1, "reading the file: " + err.Error()}
					}
					if len(next) == 0 {
						return &csvError{r.line, `a quoted field is not closed: extraneous or missing " in quoted-field`}
					}
					r.line++
					ln, i = next, 0
					continue
				}
				b.data = append(b.data, ln[i:i+j]...)
				i += j + 1
				if i < len(ln) && ln[i] == '"' { // "" is a quote
					b.data = append(b.data, '"')
					i++
					continue
				}
				break
			}
			b.bounds = append(b.bounds, fieldStart, int32(len(b.data)))
			rest := trimEOL(ln[i:])
			if len(rest) == 0 {
				return nil
			}
			if rest[0] != ',' {
				return &csvError{r.line, `extraneous or missing " in quoted-field`}
			}
			i++
			continue
		}
		// An unquoted field up to the next comma or the end of the line.
		end := i
		for end < len(ln) && ln[end] != ',' && ln[end] != '\n' {
			if ln[end] == '"' {
				return &csvError{r.line, `bare " in non-quoted-field; quote the field and double the quote ("")`}
			}
			end++
		}
		field := ln[i:end]
		last := end >= len(ln) || ln[end] == '\n'
		if last {
			field = trimEOL(field)
		}
		b.data = append(b.data, field...)
		b.bounds = append(b.bounds, fieldStart, int32(len(b.data)))
		if last {
			return nil
		}
		i = end + 1
	}
}

func trimEOL(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

// parseChunk splits a chunk that ends at a record boundary (see chunker) into
// one block whose data is the chunk itself; line is the number of lines before
// the chunk. On a malformed record it returns the rows before it and the error.
// The block reuses b's slices when b is not nil.
func parseChunk(b *csvBlock, data []byte, line, nf, rowsHint int) (*csvBlock, error) {
	src := &byteLines{b: data}
	r := &csvReader{r: src, chunk: src, line: line, nf: nf}
	if b == nil {
		b = &csvBlock{}
	}
	b.nf, b.data = nf, data[:len(data):len(data)]
	// Fresh slices when the old ones are short: slices.Grow would copy their
	// megabytes of stale offsets first.
	if need := 2 * nf * rowsHint; cap(b.bounds) < need {
		b.bounds = make([]int32, 0, need+need/8)
	}
	if cap(b.lines) < rowsHint {
		b.lines = make([]int, 0, rowsHint+rowsHint/8)
	}
	b.bounds, b.lines = b.bounds[:0], b.lines[:0]
	for {
		if err := r.record(b); err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
	}
}

// chunker cuts a CSV stream into chunks that end at record boundaries, so that
// several goroutines can split and convert them at once. A newline ends a
// record exactly when an even number of quotes precedes it since the last
// boundary: RFC 4180 doubles a quote inside a quoted field, so a newline inside
// quotes always follows an odd count. In a malformed file (a bare quote) the
// count is off; the chunk then grows until a boundary is found or the limit is
// reached, and parsing it reports the malformed record with its line.
type chunker struct {
	r     io.Reader
	carry []byte // read past the last cut
	eof   bool
	line  int // lines before the next chunk
	// free, if set, holds chunks whose rows are converted, for reuse: a fresh
	// buffer of megabytes costs its page faults and zeroing every time.
	free chan []byte
}

// next returns the next chunk of about target bytes (more when a record is
// longer) and the number of lines before it, or io.EOF after the last one.
func (c *chunker) next(target int) ([]byte, int, error) {
	if c.eof && len(c.carry) == 0 {
		return nil, c.line, io.EOF
	}
	var buf []byte
	select {
	case buf = <-c.free:
	default:
		// A small first read, then the whole target: a small file gets no
		// large buffer.
		buf = make([]byte, 0, min(target, 64<<10)+len(c.carry)+4096)
	}
	buf = append(buf[:0], c.carry...)
	limit := target + 2*maxCSVLine // no record this long is valid: hand it over for its error
	cut := 0
	for {
		for len(buf) < target && !c.eof {
			if len(buf) == cap(buf) {
				buf = append(make([]byte, 0, target+4096), buf...)
			}
			// Never past target, even into a larger recycled buffer: where
			// chunks are cut decides the batches, and an import re-run with
			// the same idempotency key must cut them where it did before.
			n, err := c.r.Read(buf[len(buf):min(cap(buf), target)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				c.eof = true
			} else if err != nil {
				return nil, c.line, &csvError{c.line + bytes.Count(buf, []byte{'\n'}) + 1, "reading the file: " + err.Error()}
			}
		}
		if c.eof {
			cut = len(buf)
			break
		}
		if cut = recordBoundary(buf); cut > 0 {
			break
		}
		if len(buf) >= limit {
			cut = len(buf)
			break
		}
		target = min(2*len(buf), limit)
	}
	chunk := buf[:cut]
	c.carry = append(c.carry[:0], buf[cut:]...)
	start := c.line
	c.line += bytes.Count(chunk, []byte{'\n'})
	return chunk, start, nil
}

// recordBoundary returns the offset just after the last newline of b that ends
// a record, or 0 if none does.
func recordBoundary(b []byte) int {
	last := bytes.LastIndexByte(b, '\n')
	if last < 0 {
		return 0
	}
	if bytes.Count(b[:last], []byte{'"'})%2 == 0 {
		return last + 1
	}
	// The last newline is inside quotes: find the last one outside.
	cut, open := 0, false
	for i, ch := range b[:last] {
		switch ch {
		case '"':
			open = !open
		case '\n':
			if !open {
				cut = i + 1
			}
		}
	}
	return cut
}
