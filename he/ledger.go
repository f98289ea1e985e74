package he

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/privalytics/privalytics"
)

// The release ledger is the owner's privacy budget for one secret key: every
// DP release of a result decrypted with the key spends ε, and the table behind
// the results is the same customers' data, so the releases compose (basic
// composition: the ε add up). The ledger is a file beside the secret key,
// <secret key>.releases.jsonl, one JSON object per line, only ever appended
// to and fsynced before a release is shown:
//
//	{"time":"…","budget":10}                                  (keygen, or the first --budget)
//	{"time":"…","result":"<sha256 of the result file>","op":"mean","epsilon":1}
//
// A release is refused (EBUDGET) when the ε recorded so far plus its own would
// pass the budget: the smallest budget line in the file, or a budget the
// caller passes that is smaller still. Deleting the file resets the budget and
// defeats it: keep it with the secret key and back both up together.

// LedgerPath is the release ledger's file for a secret key file.
func LedgerPath(secretKey string) string { return secretKey + ".releases.jsonl" }

// DefaultReleaseBudget is the ε a new key's ledger allows when keygen is not
// given one.
const DefaultReleaseBudget = 10.0

// LedgerEntry is one line of the release ledger.
type LedgerEntry struct {
	Time time.Time `json:"time"`
	// Budget, on a budget line, is the total ε releases may spend.
	Budget float64 `json:"budget,omitempty"`
	// Result is the SHA-256 of the released result file, Op its job.
	Result  string  `json:"result,omitempty"`
	Op      Op      `json:"op,omitempty"`
	Epsilon float64 `json:"epsilon,omitempty"`
}

// LedgerStatus sums a release ledger.
type LedgerStatus struct {
	Budget   float64 // 0: no budget recorded
	Spent    float64
	Releases int
}

// Remaining is the ε left.
func (s LedgerStatus) Remaining() float64 { return math.Max(0, s.Budget-s.Spent) }

func validBudget(b float64) error {
	if !(b > 0) || math.IsInf(b, 0) {
		return privalytics.Errorf(privalytics.EINVALID, "he: the release budget must be an ε > 0 and finite, got %g", b)
	}
	return nil
}

// CreateLedger starts the release ledger of a new secret key with its budget.
// It refuses to replace an existing ledger.
func CreateLedger(secretKey string, budget float64, now time.Time) error {
	if err := validBudget(budget); err != nil {
		return err
	}
	path := LedgerPath(secretKey)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("he: create the release ledger: %w", err)
	}
	if err := appendEntry(f, LedgerEntry{Time: now.UTC(), Budget: budget}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadLedger sums the release ledger of a secret key (an absent file is an
// empty ledger without a budget).
func ReadLedger(secretKey string) (LedgerStatus, error) {
	path := LedgerPath(secretKey)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return LedgerStatus{}, nil
	} else if err != nil {
		return LedgerStatus{}, err
	}
	var st LedgerStatus
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e LedgerEntry
		if err := json.Unmarshal(line, &e); err != nil {
			var syn *json.SyntaxError
			if errors.As(err, &syn) && syn.Offset == int64(len(line)) && bytes.HasPrefix(line, []byte(`{"time":`)) {
				// A torn line (our own prefix, cut short): the process died
				// inside the append, before the fsync, so that release was
				// never shown.
				continue
			}
			return LedgerStatus{}, privalytics.Errorf(privalytics.EINVALID, "he: release ledger %s line %d is corrupt (%v); restore it from a backup — editing or deleting it would allow more ε than the budget", path, i+1, err)
		}
		if e.Budget > 0 && (st.Budget == 0 || e.Budget < st.Budget) {
			st.Budget = e.Budget
		}
		if e.Epsilon > 0 {
			st.Spent += e.Epsilon
			st.Releases++
		}
	}
	return st, nil
}

// ReleaseResult releases a decrypted result with DP noise (Release) and
// records its ε in the release ledger of the secret key first. budget, if not
// 0, is a budget given now (e.g. for keys made before the ledger existed); it
// is written to the ledger with the release and can only lower the budget.
// result is the encrypted result file's bytes, whose hash identifies the
// release.
func ReleaseResult(secretKey string, plain *Plain, result []byte, opts ReleaseOptions, budget float64, now time.Time) (*Plain, LedgerStatus, error) {
	shown, _, st, err := release(secretKey, plain.Job.Op, &plain.Header, func() (*Plain, error) { return plain, nil }, result, opts, budget, now)
	return shown, st, err
}

// DecryptRelease decrypts a result under the decryption counter
// (DecryptCounted) and releases it (ReleaseResult), holding the owner's lock
// throughout, and checks the budget before decrypting: a release the ledger
// refuses does not use up one of the result's decryptions. It returns the
// decrypted values (owner-internal) and the release.
func DecryptRelease(secretKey string, keys *OwnerKeys, res *Result, result []byte, opts ReleaseOptions, budget float64, now time.Time) (plain, shown *Plain, st LedgerStatus, err error) {
	decrypt := func() (*Plain, error) { return decryptCounted(CounterPath(secretKey), keys, res) }
	shown, plain, st, err = release(secretKey, res.Job.Op, &res.Header, decrypt, result, opts, budget, now)
	return plain, shown, st, err
}

func release(secretKey string, op Op, h *TableHeader, decrypt func() (*Plain, error), result []byte, opts ReleaseOptions, budget float64, now time.Time) (shown, plain *Plain, st LedgerStatus, err error) {
	if budget != 0 {
		if err := validBudget(budget); err != nil {
			return nil, nil, st, err
		}
	}
	// The options first: a release refused for them (ε, the cap) is refused
	// whatever the ledger holds.
	if !(opts.Epsilon > 0) || math.IsInf(opts.Epsilon, 0) {
		return nil, nil, st, privalytics.Errorf(privalytics.EINVALID, "he: epsilon must be > 0 and finite, got %g", opts.Epsilon)
	}
	if _, err := opts.rowsPerSubject(h); err != nil {
		return nil, nil, st, err
	}
	unlock, err := lockOwner(secretKey)
	if err != nil {
		return nil, nil, st, err
	}
	defer unlock()
	if st, err = ReadLedger(secretKey); err != nil {
		return nil, nil, st, err
	}
	if budget > 0 && (st.Budget == 0 || budget < st.Budget) {
		st.Budget = budget
	} else {
		budget = 0 // nothing new to record
	}
	if st.Budget == 0 {
		return nil, nil, st, privalytics.Errorf(privalytics.EINVALID, "he: %s has no release budget (the key predates the release ledger); give the total ε releases with this key may spend with --budget EPS", LedgerPath(secretKey))
	}
	// A small tolerance so that ε = 0.1 ten times fits a budget of 1.
	if st.Spent+opts.Epsilon > st.Budget*(1+1e-9) {
		return nil, nil, st, privalytics.Errorf(privalytics.EBUDGET, "he: this release needs ε = %g but the key's release budget has %g of %g left (%d releases); release with a smaller --epsilon, or stop: results of this key's tables cannot be released further", opts.Epsilon, st.Remaining(), st.Budget, st.Releases).
			With("remaining_epsilon", st.Remaining()).With("budget_epsilon", st.Budget)
	}
	if plain, err = decrypt(); err != nil {
		return nil, nil, st, err
	}
	if shown, err = Release(plain, opts); err != nil {
		return nil, nil, st, err
	}
	sum := sha256.Sum256(result)
	entries := []LedgerEntry{{Time: now.UTC(), Result: hex.EncodeToString(sum[:]), Op: op, Epsilon: opts.Epsilon}}
	if budget > 0 {
		entries = append([]LedgerEntry{{Time: now.UTC(), Budget: budget}}, entries...)
	}
	f, err := os.OpenFile(LedgerPath(secretKey), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, st, fmt.Errorf("he: open the release ledger: %w", err)
	}
	defer f.Close()
	for _, e := range entries {
		if err := appendEntry(f, e); err != nil {
			return nil, nil, st, err
		}
	}
	st.Spent += opts.Epsilon
	st.Releases++
	return shown, plain, st, nil
}

// appendEntry writes one line and fsyncs it: a release is shown only after
// its ε is on disk.
func appendEntry(f *os.File, e LedgerEntry) error {
	b, _ := json.Marshal(e)
	w := bufio.NewWriter(f)
	// A torn line left by a crash has no newline; start on a fresh one.
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			w.WriteByte('\n')
		}
	}
	w.Write(b)
	w.WriteByte('\n')
	if err := w.Flush(); err != nil {
		return fmt.Errorf("he: write the release ledger: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("he: sync the release ledger: %w", err)
	}
	return nil
}
