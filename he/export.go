package he

import (
	"io"

	"github.com/tuneinsight/lattigo/v5/he/heint"

	"github.com/privalytics/privalytics"
)

// This file exposes the few pieces packages built on he need (he/federation):
// the compiled Lattigo parameters of a preset and the framing of the formats.

// BGVParameters returns the Lattigo parameters of a BGV preset, after the same
// validation (HE-standard 128-bit bound) as every other use of the preset.
func (p Preset) BGVParameters() (heint.Parameters, error) {
	if p.Scheme != BGV {
		return heint.Parameters{}, privalytics.Errorf(privalytics.EINVALID, "he: preset %q is %s; a bgv preset is needed", p.Name, p.Scheme)
	}
	c, err := p.compile()
	if err != nil {
		return heint.Parameters{}, err
	}
	return c.bgv, nil
}

// WriteFrame writes b as one frame: a uint64 little-endian length, then b.
func WriteFrame(w io.Writer, b []byte) error { return writeFrame(w, b) }

// ReadFrame reads one frame of at most limit bytes; what names it in errors.
func ReadFrame(r io.Reader, limit uint64, what string) ([]byte, error) {
	return readFrame(r, limit, what)
}
