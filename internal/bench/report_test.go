package bench

import (
	"errors"
	"testing"
	"time"

	"github.com/privalytics/privalytics/synth"
)

func TestFormatting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{fmtRate(2_340_000, "rows/s"), "2.34 M rows/s"},
		{fmtRate(41_500, "events/s"), "41.5 k events/s"},
		{fmtRate(12, "values/s"), "12 values/s"},
		{sizeOf(512), "512 B"},
		{sizeOf(3 << 10), "3.0 KiB"},
		{sizeOf(5 << 20), "5.0 MiB"},
		{verdict(true), "meets target"},
		{verdict(false), "BELOW TARGET"},
		{suffixed("", ".scale"), ""},
		{suffixed("cpu.out", ".scale"), "cpu.out.scale"},
		{ms(1500 * time.Microsecond), "1.5 ms"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// medianOf runs one warm-up and n timed runs, reports their median, and stops
// at the first error.
func TestMedianOf(t *testing.T) {
	t.Parallel()
	calls := 0
	sleeps := []time.Duration{0, 30 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}
	d, err := medianOf(3, func() error {
		time.Sleep(sleeps[calls])
		calls++
		return nil
	})
	if err != nil || calls != 4 {
		t.Fatalf("medianOf: %v after %d calls, want 4 (1 warm-up + 3)", err, calls)
	}
	if d < 2*time.Millisecond || d >= 30*time.Millisecond {
		t.Errorf("median %v, want the middle run (≈ 2 ms), not the slow one", d)
	}
	boom := errors.New("boom")
	if _, err := medianOf(3, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("medianOf with a failing run: %v, want boom", err)
	}
}

// The pre-generated batches hold every event once, per rows to a batch.
func TestNDJSONBatches(t *testing.T) {
	t.Parallel()
	cfg := synth.DefaultConfig()
	cfg.Events, cfg.Customers, cfg.Seed = 2_500, 100, 3
	batches, err := ndjsonBatches(cfg, 1_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 3 {
		t.Fatalf("%d batches, want 3 (1000 + 1000 + 500)", len(batches))
	}
	lines := 0
	for _, b := range batches {
		for _, c := range b {
			if c == '\n' {
				lines++
			}
		}
	}
	if lines != 2_500 {
		t.Errorf("%d events in the batches, want 2500", lines)
	}
}
