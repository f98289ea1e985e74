package rights

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/privalytics/privalytics"
)

// PurgeExpired purges, for every tenant with a retention period, the events
// older than it at now, and records each purge that hid rows. It goes on past
// a failing tenant and returns the purges done and the errors met.
func (s *Service) PurgeExpired(ctx context.Context, now time.Time) ([]privalytics.PurgeReceipt, error) {
	tenants, err := s.d.Tenants.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	var out []privalytics.PurgeReceipt
	failed := 0
	for _, t := range tenants {
		cut, ok := t.RetentionCutoff(now)
		if !ok {
			continue
		}
		rc, err := s.d.Events.Purge(ctx, t.ID, t.Schema, cut)
		if err != nil {
			s.d.Logger.Error("retention purge failed; the next pass retries", slog.String("tenant", t.ID), slog.Any("err", err))
			failed++
			continue
		}
		if rc.Rows == 0 {
			continue
		}
		s.d.Logger.Info("retention purge", slog.String("tenant", t.ID), slog.Time("before", rc.Before), slog.Int("rows", rc.Rows))
		_ = s.record(ctx, Actor{KeyID: RetentionActor}, t.ID, AuditPurge, t.ID, nil,
			map[string]string{"rows": strconv.Itoa(rc.Rows), "before": rc.Before.UTC().Format(time.RFC3339)})
		if s.d.Hooks.Purged != nil {
			s.d.Hooks.Purged(ctx, rc)
		}
		out = append(out, rc)
	}
	if failed > 0 {
		return out, privalytics.Errorf(privalytics.EINTERNAL, "retention purge failed for %d tenants; see the log", failed)
	}
	return out, nil
}

// pass is one turn of the retention loop: purge what retention no longer
// allows, then retry any compaction that failed in the background, so that
// erased and purged rows leave the disk within one period even then.
func (s *Service) pass(ctx context.Context) {
	if _, err := s.PurgeExpired(ctx, s.d.Now()); err != nil && ctx.Err() == nil {
		s.d.Logger.Error("retention pass", slog.Any("err", err))
	}
	if err := s.d.Events.CompactDue(ctx); err != nil && ctx.Err() == nil {
		s.d.Logger.Error("compaction retry", slog.Any("err", err))
	}
}

// StartRetention runs a retention pass now and then every interval, in a
// goroutine the service owns, until Close. Starting twice is a no-op.
func (s *Service) StartRetention(every time.Duration) {
	if s == nil { // a server without a subject store has nothing to purge
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.pass(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}(s.done)
}

// Close stops the retention loop and waits for its pass in progress to end,
// so the stores can be closed after it. Safe without StartRetention, and
// more than once.
func (s *Service) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel, s.done = nil, nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}
