package events

import (
	"container/list"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Every loaded tenant appends to one log file. Holding each open would need
// one file descriptor per tenant, and with the common limit of 1,024 ingest
// failed past about 1,000 tenants. So open logs are kept in an LRU of
// Options.MaxOpenLogs: a tenant whose log was closed reopens it (append-only)
// at its next write.

// logLRU is the store's set of open logs, most recently written first.
type logLRU struct {
	mu    sync.Mutex
	cap   int
	order *list.List // of *tenant
	at    map[*tenant]*list.Element
}

func newLogLRU(capacity int) *logLRU {
	return &logLRU{cap: capacity, order: list.New(), at: map[*tenant]*list.Element{}}
}

// touch marks t's log as just used, closing the least recently used others
// past the capacity. The caller holds t.wmu and t's log is open. A log whose
// tenant is writing (its wmu held) or that needs cutting back is skipped, so
// the set may briefly exceed the capacity by the number of concurrent writers.
func (l *logLRU) touch(t *tenant) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.at[t]; ok {
		l.order.MoveToFront(e)
	} else {
		l.at[t] = l.order.PushFront(t)
	}
	for e := l.order.Back(); e != nil && l.order.Len() > l.cap; {
		prev := e.Prev()
		v := e.Value.(*tenant)
		if v != t && v.wmu.TryLock() {
			if !v.logDirty {
				if v.log != nil {
					v.log.Close()
					v.log = nil
				}
				l.order.Remove(e)
				delete(l.at, v)
			}
			v.wmu.Unlock()
		}
		e = prev
	}
}

// forget drops t (closed or shredded). The caller holds t.wmu.
func (l *logLRU) forget(t *tenant) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.at[t]; ok {
		l.order.Remove(e)
		delete(l.at, t)
	}
}

// len is the number of logs open now.
func (l *logLRU) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}

// ensureLog reopens the log the LRU closed. Callers hold wmu.
func (t *tenant) ensureLog() error {
	if t.log != nil {
		return nil
	}
	// Never created here: the file exists since openLog made it, and a log
	// gone missing under a running store must fail loudly, not start afresh.
	f, err := fsys.OpenFile(filepath.Join(t.dir, "wal", logName(t.logSeq)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("events: tenant %s: reopen log: %w", t.id, err)
	}
	t.log = f
	t.s.openLogs.touch(t)
	return nil
}
