package progress

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

// TestNoBarOffATerminal: in a pipe or a buffer no bar is drawn, and the nil
// bar's methods are safe and pass reads through.
func TestNoBarOffATerminal(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, out := range []io.Writer{&buf, w} {
		if IsTerminal(out) {
			t.Errorf("%T taken for a terminal", out)
		}
		if b := New(out, 100, "x", true, false); b != nil {
			t.Errorf("a bar on %T", out)
		}
	}
	var b *Bar
	b.Add(3)
	b.Set(5)
	b.Finish()
	got, err := io.ReadAll(b.Reader(strings.NewReader("abc")))
	if err != nil || string(got) != "abc" || buf.Len() != 0 {
		t.Errorf("nil bar read %q, %v; wrote %q", got, err, buf.String())
	}
}
