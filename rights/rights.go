// Package rights carries out a data subject's rights for a business: a copy
// of everything held about one customer (access and portability), the
// correction of their events (rectification), their erasure, and the
// retention loop that purges events older than each tenant allows.
//
// Every action is recorded in the audit trail with the receipt and row counts
// only, never the customer. The HTTP handlers in api decode a request, call a
// Service method and encode its answer; nothing else in the product erases,
// rectifies or purges events.
package rights

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

// Audit actions of this package (the audit trail's action names).
const (
	AuditErase     = "subject.erase"    // with the receipt ID and row count, never the customer
	AuditRectify   = "subject.rectify"  // likewise
	AuditExport    = "subject.export"   // the rows exported, never the customer
	AuditRetention = "tenant.retention" // the new retention period in days
	AuditPurge     = "retention.purge"  // by the retention loop (actor RetentionActor)
)

// RetentionActor is the audit trail's actor for the retention loop's purges.
const RetentionActor = "retention"

// MaxCustomerIDBytes is the longest customer identifier accepted, the same
// bound ingest applies to the subject column.
const MaxCustomerIDBytes = 1024

// Hooks receive a record of each action once it is done; nil hooks are
// skipped. They must not block for long: they run in the request, or in the
// retention loop.
type Hooks struct {
	// Erased follows every erasure and rectification (action "erase" or
	// "rectify") with its receipt.
	Erased func(ctx context.Context, action string, r privalytics.ErasureReceipt)
	// Purged follows every retention purge that hid rows.
	Purged func(ctx context.Context, r privalytics.PurgeReceipt)
}

// Tenants is what the service needs of the metadata store.
type Tenants interface {
	Tenants(ctx context.Context) ([]*privalytics.Tenant, error)
	SetRetention(ctx context.Context, tenantID string, days int) error
}

// Deps are the service's ports; cmd (or api, for a server built in a test)
// wires the real ones.
type Deps struct {
	Events  privalytics.SubjectStore
	Tenants Tenants
	Audit   privalytics.AuditLog // nil: actions are logged but not audited (tests of other parts)
	Hooks   Hooks
	Logger  *slog.Logger     // nil: slog.Default()
	Now     func() time.Time // nil: time.Now
}

// Service carries out the rights. It owns the retention loop's goroutine:
// StartRetention starts it and Close stops it and waits for it.
type Service struct {
	d Deps

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a service over d.
func New(d Deps) *Service {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{d: d}
}

// Actor is who asked for an action, as the audit trail records it.
type Actor struct {
	KeyID     string // the API key that asked
	RequestID string // the request, to find it in the logs
}

// Subject is one customer of one tenant.
type Subject struct {
	Tenant     *privalytics.Tenant
	CustomerID string // as the business knows the customer (sent with the events)
	Pseudonym  uint64 // the keyed hash of CustomerID that ingest stores
}

// Checker turns one event as sent to POST /v1/events into its stored row
// under the tenant's schema and rules (ingest's converter): a rectification's
// new values pass the same checks as ingested events.
type Checker interface {
	DecodeJSON(row []byte) (arrow.Record, error)
}

// CheckCustomerID refuses an identifier no event could have carried. It reads
// only the request, so it costs nothing and reveals nothing.
func CheckCustomerID(id string) error {
	if id == "" || len(id) > MaxCustomerIDBytes {
		return privalytics.Errorf(privalytics.EINVALID, "customer_id must be 1 to %d bytes: the identifier sent with the customer's events", MaxCustomerIDBytes)
	}
	return nil
}

// record appends one audit entry; err is the action's outcome (nil: "ok").
// Details must hold no personal data. The entry is written even when the
// caller's context is gone, and a failed append is returned so that a
// caller may fail closed.
func (s *Service) record(ctx context.Context, a Actor, tenantID, action, target string, err error, details map[string]string) error {
	if s.d.Audit == nil {
		return nil
	}
	e := &privalytics.AuditEntry{Time: s.d.Now().UTC(), TenantID: tenantID, Actor: a.KeyID, Action: action, Target: target,
		Outcome: privalytics.AuditOK, Details: details}
	if err != nil {
		e.Outcome = privalytics.ErrorCode(err)
	}
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	if a.RequestID != "" {
		e.Details["request_id"] = a.RequestID
	}
	if aerr := s.d.Audit.Append(context.WithoutCancel(ctx), e); aerr != nil {
		s.d.Logger.Error("audit append failed", slog.String("action", action), slog.String("request_id", a.RequestID), slog.Any("err", aerr))
		return privalytics.Errorf(privalytics.EINTERNAL, "audit: %v", aerr)
	}
	return nil
}

// erased logs, audits and announces a finished erasure or rectification.
func (s *Service) erased(ctx context.Context, a Actor, action string, rc privalytics.ErasureReceipt) {
	s.d.Logger.Info("customer data "+action+"d", slog.String("tenant", rc.Tenant), slog.String("receipt", rc.ID), slog.Int("rows", rc.Rows))
	_ = s.record(ctx, a, rc.Tenant, "subject."+action, rc.ID, nil, map[string]string{"rows": strconv.Itoa(rc.Rows)})
	if s.d.Hooks.Erased != nil {
		s.d.Hooks.Erased(ctx, action, rc)
	}
}

// Erase erases one customer: hidden from every query at once, removed from
// disk by compaction; the receipt says when. Erasing a customer with no
// events still records (and compacts) the request. Budget already spent is
// not given back.
func (s *Service) Erase(ctx context.Context, a Actor, sub Subject) (privalytics.ErasureReceipt, error) {
	rc, err := s.d.Events.Erase(ctx, sub.Tenant.ID, sub.Tenant.Schema, []uint64{sub.Pseudonym})
	if err != nil {
		return rc, err
	}
	s.erased(ctx, a, "erase", rc)
	return rc, nil
}

// Receipt returns an erasure or rectification receipt with its current status.
func (s *Service) Receipt(ctx context.Context, t *privalytics.Tenant, id string) (privalytics.ErasureReceipt, error) {
	return s.d.Events.Receipt(ctx, t.ID, t.Schema, id)
}

// SetRetention changes a tenant's retention period; the next pass of the
// retention loop purges what it no longer allows.
func (s *Service) SetRetention(ctx context.Context, a Actor, tenantID string, days int) error {
	err := s.d.Tenants.SetRetention(ctx, tenantID, days)
	_ = s.record(ctx, a, tenantID, AuditRetention, tenantID, err, map[string]string{"days": strconv.Itoa(days)})
	return err
}
