package ingest

import (
	"fmt"
	"strings"
	"testing"
)

// TestStrTableAgreesWithAMap puts and gets keys of every length from 0 to 40
// (the hash takes a different path below 4, 8 and 16 bytes and above) through
// growth and reset, and checks every answer against a Go map.
func TestStrTableAgreesWithAMap(t *testing.T) {
	t.Parallel()
	var keys []string
	for n := 0; n <= 40; n++ {
		for v := range 60 {
			k := fmt.Sprintf("%0*d", n, v*7919)
			if len(k) > n { // the number is longer than n: keep n bytes of it
				k = k[len(k)-n:]
			}
			keys = append(keys, k, strings.Repeat("x", n/2)+k[n/2:])
		}
	}
	tab := newStrTable[int](12345, 0)
	for round := range 2 {
		want := map[string]int{}
		for i, k := range keys {
			h := tab.hash([]byte(k))
			if h&1 == 0 {
				t.Fatalf("hash of %q is even: the empty-slot mark", k)
			}
			got, ok := tab.get([]byte(k), h)
			if w, wok := want[k]; ok != wok || got != w {
				t.Fatalf("round %d: get(%q) = %d, %v; the map says %d, %v", round, k, got, ok, w, wok)
			}
			if !ok {
				tab.put(k, h, i)
				want[k] = i
			}
		}
		if tab.len() != len(want) {
			t.Fatalf("round %d: %d keys in the table, %d in the map", round, tab.len(), len(want))
		}
		for k, w := range want {
			if got, ok := tab.get([]byte(k), tab.hash([]byte(k))); !ok || got != w {
				t.Fatalf("round %d: after growth, get(%q) = %d, %v, want %d", round, k, got, ok, w)
			}
		}
		tab.reset()
		if _, ok := tab.get([]byte(keys[5]), tab.hash([]byte(keys[5]))); ok || tab.len() != 0 {
			t.Fatalf("round %d: a key outlived reset", round)
		}
	}
}

// TestStrTableSeeds checks that the seed changes the hash: without it a file
// could be written whose values all land in one probe chain.
func TestStrTableSeeds(t *testing.T) {
	t.Parallel()
	a, b := newStrTable[int](newSeed(), 0), newStrTable[int](newSeed(), 0)
	same := 0
	for _, k := range []string{"", "a", "abcd", "cust-014140", "a key longer than sixteen bytes"} {
		if a.hash([]byte(k)) == b.hash([]byte(k)) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d of 5 keys hash the same under two random seeds", same)
	}
}

func BenchmarkStrTable(b *testing.B) {
	for _, card := range []int{5, 1000, 50_000} {
		keys := make([][]byte, card)
		for i := range keys {
			keys[i] = []byte(fmt.Sprintf("cust-%06d", i*7919%1_000_003))
		}
		tab := newStrTable[int32](newSeed(), 0)
		m := map[string]int32{}
		for i, k := range keys {
			tab.put(string(k), tab.hash(k), int32(i))
			m[string(k)] = int32(i)
		}
		b.Run(fmt.Sprintf("table/%d", card), func(b *testing.B) {
			for i := range b.N {
				k := keys[i*31%card]
				if _, ok := tab.get(k, tab.hash(k)); !ok {
					b.Fatal(string(k))
				}
			}
		})
		b.Run(fmt.Sprintf("map/%d", card), func(b *testing.B) {
			for i := range b.N {
				if _, ok := m[string(keys[i*31%card])]; !ok {
					b.Fatal()
				}
			}
		})
	}
}
