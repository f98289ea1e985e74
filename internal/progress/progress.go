// Package progress draws the command line's progress bars, on terminals
// only: bars are for people, and in logs and pipes they are noise.
package progress

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Bar is a progress bar, cleared when finished. A nil *Bar draws nothing, so
// callers need not ask whether one is shown.
type Bar struct{ b *progressbar.ProgressBar }

// New returns a bar on w described by desc, counting to total (bytes when
// bytes is true, else items), or nil when quiet or w is not a terminal.
func New(w io.Writer, total int64, desc string, bytes, quiet bool) *Bar {
	if quiet || !IsTerminal(w) {
		return nil
	}
	count := progressbar.OptionShowCount()
	if bytes {
		count = progressbar.OptionShowBytes(true)
	}
	return &Bar{progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc),
		count, progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())}
}

// Add adds n to the count.
func (b *Bar) Add(n int) {
	if b != nil {
		_ = b.b.Add(n)
	}
}

// Set sets the count to n.
func (b *Bar) Set(n int64) {
	if b != nil {
		_ = b.b.Set64(n)
	}
}

// Finish completes and clears the bar.
func (b *Bar) Finish() {
	if b != nil {
		_ = b.b.Finish()
	}
}

// Reader counts what is read from r on the bar; with a nil bar it is r.
func (b *Bar) Reader(r io.Reader) io.Reader {
	if b == nil {
		return r
	}
	pr := progressbar.NewReader(r, b.b)
	return &pr
}
