package he

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"

	"github.com/privalytics/privalytics"
)

// Every serialised object of this package is a sequence of frames: a uint64
// little-endian length, then that many bytes. Readers pass the largest length
// they accept, so a corrupt or hostile length never turns into an allocation.

func writeFrame(w io.Writer, b []byte) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// readFrame reads one frame of at most limit bytes; what names the frame in errors.
func readFrame(r io.Reader, limit uint64, what string) ([]byte, error) {
	var n [8]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, truncated(what, err)
	}
	size := binary.LittleEndian.Uint64(n[:])
	if size > limit {
		return nil, privalytics.Errorf(privalytics.ETOOLARGE, "he: %s is %d bytes, more than the %d this preset allows; the input is corrupt or was made with other parameters", what, size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, truncated(what, err)
	}
	return b, nil
}

func truncated(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return privalytics.Errorf(privalytics.EINVALID, "he: %s: input ends early; the file is truncated", what)
	}
	return privalytics.Errorf(privalytics.EINVALID, "he: %s: %v", what, err)
}

// Raw coefficient codec for keys: polynomials are written row by row (each
// modulus of Q, then each of P), coefficients as uint64.

func appendPoly(buf []byte, p ring.Poly) []byte {
	for _, row := range p.Coeffs {
		for _, x := range row {
			buf = binary.LittleEndian.AppendUint64(buf, x)
		}
	}
	return buf
}

func appendPolyQP(buf []byte, p ringqp.Poly) []byte {
	buf = appendPoly(buf, p.Q)
	if p.P.Coeffs != nil {
		buf = appendPoly(buf, p.P)
	}
	return buf
}

func appendVectorQP(buf []byte, v rlwe.VectorQP) []byte {
	for _, p := range v {
		buf = appendPolyQP(buf, p)
	}
	return buf
}

func appendGadget(buf []byte, g *rlwe.GadgetCiphertext) []byte {
	for _, row := range g.Value {
		for _, v := range row {
			buf = appendVectorQP(buf, v)
		}
	}
	return buf
}

// coeffReader fills allocated polynomials from raw bytes, stopping at the
// first short read or out-of-range coefficient.
type coeffReader struct {
	b    []byte
	off  int
	q, p []uint64
	err  error
}

func (d *coeffReader) poly(p ring.Poly, moduli []uint64) {
	for j, row := range p.Coeffs {
		for k := range row {
			if d.err != nil {
				return
			}
			if d.off+8 > len(d.b) {
				d.err = fmt.Errorf("too short")
				return
			}
			x := binary.LittleEndian.Uint64(d.b[d.off:])
			if x >= moduli[j] {
				d.err = fmt.Errorf("coefficient at byte %d is not below its modulus", d.off)
				return
			}
			row[k] = x
			d.off += 8
		}
	}
}

func (d *coeffReader) polyQP(p ringqp.Poly) {
	d.poly(p.Q, d.q)
	if p.P.Coeffs != nil {
		d.poly(p.P, d.p)
	}
}

func (d *coeffReader) vectorQP(v rlwe.VectorQP) {
	for _, p := range v {
		d.polyQP(p)
	}
}

func (d *coeffReader) gadget(g *rlwe.GadgetCiphertext) {
	for _, row := range g.Value {
		for _, v := range row {
			d.vectorQP(v)
		}
	}
}
