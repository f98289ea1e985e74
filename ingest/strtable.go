package ingest

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// strTable maps short byte strings to values: a string column's dictionary
// (value → code) and the pseudonym memo (identifier → subject). It does what a
// Go map[string]V does, faster for these keys: Go's maps of up to eight
// entries compare the key with every entry (25 ns for a five-value column
// here), and a large one probes its control words before comparing. Here one
// multiply-mix hash of the key (keyed by a secret seed, so that a file cannot
// be crafted to collide) picks a slot; the stored hash is compared before the
// key, so a probe past other keys costs no byte comparison.
//
// Linear probing, at most 3/4 full. The zero hash marks an empty slot, so
// hashes are made odd.
type strTable[V any] struct {
	slots []strSlot[V]
	mask  uint64
	n     int
	seed  uint64
}

type strSlot[V any] struct {
	h   uint64
	key string
	val V
}

// newStrTable returns an empty table with room for about hint keys before it
// grows.
func newStrTable[V any](seed uint64, hint int) *strTable[V] {
	size := 8
	for size*3 < hint*4 {
		size *= 2
	}
	return &strTable[V]{slots: make([]strSlot[V], size), mask: uint64(size - 1), seed: seed}
}

// newSeed returns a secret hash seed from the system's random source.
func newSeed() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ingest: no system randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return binary.LittleEndian.Uint64(b[:])
}

// Constants of the mix (odd, with well-spread bits; those of wyhash).
const (
	mixA = 0xa0761d6478bd642f
	mixB = 0xe7037ed1a0b428db
	mixC = 0x8ebc6af09c88c6e3
)

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash returns the key's odd 64-bit hash under the table's seed. Keys of up to
// 16 bytes, which nearly all are, take one multiply: every byte is in a or c.
func (t *strTable[V]) hash(k []byte) uint64 {
	n := len(k)
	s := t.seed
	var a, c uint64
	switch {
	case n > 16:
		for rest := k; len(rest) > 16; rest = rest[16:] {
			s = mix(binary.LittleEndian.Uint64(rest)^mixA, binary.LittleEndian.Uint64(rest[8:])^s)
		}
		// The last 16 bytes, overlapping what the loop took.
		a, c = binary.LittleEndian.Uint64(k[n-16:]), binary.LittleEndian.Uint64(k[n-8:])
	case n >= 8:
		a, c = binary.LittleEndian.Uint64(k), binary.LittleEndian.Uint64(k[n-8:])
	case n >= 4:
		a, c = uint64(binary.LittleEndian.Uint32(k)), uint64(binary.LittleEndian.Uint32(k[n-4:]))
	case n > 0:
		a = uint64(k[0])<<16 | uint64(k[n>>1])<<8 | uint64(k[n-1])
	}
	return mix(mix(a^mixA^uint64(n), c^s^mixB), s^mixC) | 1
}

// get returns the value of k, whose hash is h.
func (t *strTable[V]) get(k []byte, h uint64) (V, bool) {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.h == h && s.key == string(k) {
			return s.val, true
		}
		if s.h == 0 {
			var zero V
			return zero, false
		}
	}
}

// put adds k (hash h, not in the table) with value v. The table keeps k: it
// must not share memory that is written later.
func (t *strTable[V]) put(k string, h uint64, v V) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	t.insert(strSlot[V]{h: h, key: k, val: v})
	t.n++
}

func (t *strTable[V]) insert(s strSlot[V]) {
	i := s.h & t.mask
	for t.slots[i].h != 0 {
		i = (i + 1) & t.mask
	}
	t.slots[i] = s
}

func (t *strTable[V]) grow() {
	old := t.slots
	t.slots = make([]strSlot[V], 2*len(old))
	t.mask = uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.h != 0 {
			t.insert(s)
		}
	}
}

// len returns the number of keys.
func (t *strTable[V]) len() int { return t.n }

// reset empties the table, keeping its memory.
func (t *strTable[V]) reset() {
	if t.n > 0 {
		clear(t.slots)
		t.n = 0
	}
}
