package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
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
	r    *bufio.Reader
	line int // lines read so far
	nf   int // fields per record; 0 until the header is read
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
		ln = trimEOL(ln)
		if len(b.data)+len(ln) > 1<<31-1 {
			return &csvError{start, "block too large"}
		}
		base := int32(len(b.data))
		b.data = append(b.data, ln...)
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
