package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/gin-gonic/gin"

	"github.com/privalytics/privalytics"
)

// PrivacyHooks receive a record of each privacy action once it is done; the
// audit log attaches here. Nil hooks are skipped; every action is also logged
// (without the customer). Hooks must not block for long: they run in the
// request, or in the retention loop.
type PrivacyHooks struct {
	// Erased follows every erasure and rectification (action "erase" or
	// "rectify") with its receipt.
	Erased func(ctx context.Context, action string, r privalytics.ErasureReceipt)
	// Purged follows every retention purge that hid rows.
	Purged func(ctx context.Context, r privalytics.PurgeReceipt)
}

// SubjectExport is a customer's events as GET /v1/subjects/{customer_id}
// returns them in JSON: every stored field, under the schema's names, with the
// customer's identifier as the business knows it (never the stored pseudonym).
type SubjectExport struct {
	Tenant     string           `json:"tenant"`
	CustomerID string           `json:"customer_id"`
	ExportedAt time.Time        `json:"exported_at"`
	Rows       int              `json:"rows"`
	Columns    []string         `json:"columns"`
	Events     []map[string]any `json:"events"`
}

// RectifyRequest is the body of PATCH /v1/subjects/{customer_id}: the fields to
// correct on every event of the customer, with their new values as they would
// be sent to POST /v1/events (null clears an optional field).
type RectifyRequest struct {
	Fields map[string]json.RawMessage `json:"fields"`
}

// RetentionRequest is the body of PUT /v1/tenant/retention.
type RetentionRequest struct {
	RetentionDays int `json:"retention_days"`
}

func (s *Server) subjectStore() (privalytics.SubjectStore, error) {
	ss, ok := s.events.(privalytics.SubjectStore)
	if !ok {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "the event store does not support access and erasure")
	}
	return ss, nil
}

// subjectRequest resolves the caller's tenant and the customer's pseudonym.
func (s *Server) subjectRequest(c *gin.Context) (*tenantState, privalytics.SubjectStore, string, uint64, error) {
	k := callerOf(c).Key
	if k.TenantID == "" {
		return nil, nil, "", 0, privalytics.Errorf(privalytics.EFORBIDDEN, "use the tenant's admin key: the operator key holds no customer data")
	}
	id := c.Param("customer_id")
	if id == "" || len(id) > 1024 {
		return nil, nil, "", 0, privalytics.Errorf(privalytics.EINVALID, "customer_id must be 1 to 1024 bytes: the identifier sent with the customer's events")
	}
	ss, err := s.subjectStore()
	if err != nil {
		return nil, nil, "", 0, err
	}
	st, err := s.tenantState(c.Request.Context(), k.TenantID)
	if err != nil {
		return nil, nil, "", 0, err
	}
	return st, ss, id, st.pseudo.Subject([]byte(id)), nil
}

// exportSubject returns everything held about one customer, as JSON (default)
// or CSV (?format=csv or Accept: text/csv).
func (s *Server) exportSubject(c *gin.Context) {
	st, ss, id, subj, err := s.subjectRequest(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	format := c.Query("format")
	switch {
	case format == "" && strings.Contains(c.GetHeader("Accept"), "text/csv"):
		format = "csv"
	case format == "":
		format = "json"
	case format != "json" && format != "csv":
		s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "format must be json or csv, got %q", format))
		return
	}
	rec, err := ss.SubjectEvents(c.Request.Context(), st.tenant.ID, st.tenant.Schema, subj)
	if err != nil {
		s.writeError(c, err)
		return
	}
	exp := exportOf(st.tenant, id, rec, s.now().UTC())
	if format == "json" {
		c.JSON(http.StatusOK, exp)
		return
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(exp.Columns)
	for _, ev := range exp.Events {
		row := make([]string, len(exp.Columns))
		for i, col := range exp.Columns {
			row[i] = csvCell(ev[col])
		}
		_ = w.Write(row)
	}
	w.Flush()
	c.Header("Content-Disposition", `attachment; filename="customer-export.csv"`)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

// exportOf turns a subject's stored rows into the export, in time order, with
// the columns in the schema's declared order.
func exportOf(t *privalytics.Tenant, customerID string, rec arrow.Record, now time.Time) SubjectExport {
	stored := t.Schema.Stored()
	exp := SubjectExport{Tenant: t.ID, CustomerID: customerID, ExportedAt: now, Rows: int(rec.NumRows()), Events: []map[string]any{}}
	idx := map[string]int{}
	for i, col := range stored {
		idx[col.Name] = i
	}
	idx[t.Schema.Subject] = 0
	for _, col := range t.Schema.Columns {
		exp.Columns = append(exp.Columns, col.Name)
	}
	order := make([]int, rec.NumRows())
	for i := range order {
		order[i] = i
	}
	ts := rec.Column(1).(*array.Timestamp).TimestampValues()
	slices.SortStableFunc(order, func(a, b int) int { return int(min(max(ts[a]-ts[b], -1), 1)) })
	for _, r := range order {
		ev := make(map[string]any, len(exp.Columns))
		for _, col := range t.Schema.Columns {
			i := idx[col.Name]
			if i == 0 {
				ev[col.Name] = customerID
				continue
			}
			ev[col.Name] = exportValue(stored[i], rec.Column(i), r)
		}
		exp.Events = append(exp.Events, ev)
	}
	return exp
}

// exportValue is one stored cell as the business sent it: strings, integers,
// decimals as exact numbers, floats, booleans, times in RFC 3339 (UTC); nil for null.
func exportValue(col privalytics.Column, a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Dictionary:
		return a.Dictionary().(*array.String).Value(a.GetValueIndex(i))
	case *array.Int64:
		if col.Type == privalytics.TypeDecimal {
			return json.Number(decimalText(a.Value(i), col.Scale))
		}
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(i))).UTC().Format(time.RFC3339Nano)
	}
	return nil
}

// decimalText writes v × 10^-scale exactly.
func decimalText(v int64, scale int) string {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u
	}
	digits := strconv.FormatUint(u, 10)
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

func csvCell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// rectifySubject corrects fields on every event of one customer. The new
// values pass the same checks as ingested events.
func (s *Server) rectifySubject(c *gin.Context) {
	st, ss, id, subj, err := s.subjectRequest(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	var req RectifyRequest
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if len(req.Fields) == 0 {
		s.writeError(c, privalytics.Errorf(privalytics.EINVALID, `name the fields to correct: {"fields": {"country": "FR"}}`))
		return
	}
	sch := st.tenant.Schema
	for name := range req.Fields {
		if name == sch.Subject || name == sch.Time {
			s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "field %q (the customer or the time) cannot be corrected; erase the events and send them again", name))
			return
		}
		if _, ok := sch.Column(name); !ok {
			s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "field %q is not in the tenant's schema", name))
			return
		}
	}
	ctx := c.Request.Context()
	rec, err := ss.SubjectEvents(ctx, st.tenant.ID, sch, subj)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if rec.NumRows() == 0 {
		s.writeError(c, privalytics.Errorf(privalytics.ENOTFOUND, "no events are stored for this customer"))
		return
	}
	// Check the new values as an ingested event: one of the customer's events
	// with the fields replaced goes through the tenant's converter.
	exp := exportOf(st.tenant, id, rec, s.now())
	ev := map[string]any{}
	for k, v := range exp.Events[0] {
		ev[k] = v
	}
	for k, v := range req.Fields {
		ev[k] = v
	}
	row, _ := json.Marshal(ev)
	checked, err := st.conv.DecodeJSON(row)
	if err != nil {
		s.writeError(c, err)
		return
	}
	set := map[string]any{}
	stored := sch.Stored()
	for name := range req.Fields {
		i := slices.IndexFunc(stored, func(col privalytics.Column) bool { return col.Name == name })
		set[name] = storedValue(checked.Column(i), 0)
	}
	rc, err := ss.Rectify(ctx, st.tenant.ID, sch, subj, set)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.recordErasure(c, "rectify", rc)
	c.JSON(http.StatusOK, rc)
}

// storedValue is a cell in the Go type SubjectStore.Rectify takes.
func storedValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Dictionary:
		return a.Dictionary().(*array.String).Value(a.GetValueIndex(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(i))).UTC()
	}
	return nil
}

// eraseSubject erases one customer: hidden from every query at once, removed
// from disk by compaction. 202 with the receipt; GET /v1/erasures/{id} says
// when compaction finished. Erasing a customer with no events still records
// (and compacts) the request. Budget already spent is not given back.
func (s *Server) eraseSubject(c *gin.Context) {
	st, ss, _, subj, err := s.subjectRequest(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	rc, err := ss.Erase(ctx, st.tenant.ID, st.tenant.Schema, []uint64{subj})
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.recordErasure(c, "erase", rc)
	c.Header("Location", "/v1/erasures/"+rc.ID)
	c.JSON(http.StatusAccepted, rc)
}

// callerTenant is the tenant of the caller's key. For the operator key, which
// names no tenant, or a tenant that cannot be loaded, it answers the request
// itself and returns false.
func (s *Server) callerTenant(c *gin.Context) (*tenantState, bool) {
	k := callerOf(c).Key
	if k.TenantID == "" {
		s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "use the tenant's admin key"))
		return nil, false
	}
	st, err := s.tenantState(c.Request.Context(), k.TenantID)
	if err != nil {
		s.writeError(c, err)
		return nil, false
	}
	return st, true
}

func (s *Server) erasureReceipt(c *gin.Context) {
	st, ok := s.callerTenant(c)
	if !ok {
		return
	}
	ss, err := s.subjectStore()
	if err != nil {
		s.writeError(c, err)
		return
	}
	rc, err := ss.Receipt(c.Request.Context(), st.tenant.ID, st.tenant.Schema, c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, rc)
}

func (s *Server) recordErasure(c *gin.Context, action string, rc privalytics.ErasureReceipt) {
	s.log.Info("customer data "+action+"d", slog.String("tenant", rc.Tenant), slog.String("receipt", rc.ID), slog.Int("rows", rc.Rows))
	// The receipt ID and counts only: the audit trail holds no personal data.
	_ = s.audit(c, "subject."+action, rc.ID, nil, map[string]string{"rows": strconv.Itoa(rc.Rows)})
	if s.hooks.Erased != nil {
		s.hooks.Erased(c.Request.Context(), action, rc)
	}
}

// setRetention changes the caller's tenant's retention period; the next
// retention pass purges what it no longer allows.
func (s *Server) setRetention(c *gin.Context) {
	k := callerOf(c).Key
	if k.TenantID == "" {
		s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "use the tenant's admin key"))
		return
	}
	var req RetentionRequest
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &req); err != nil {
		s.writeError(c, err)
		return
	}
	err := s.meta.SetRetention(c.Request.Context(), k.TenantID, req.RetentionDays)
	_ = s.audit(c, auditRetention, k.TenantID, err, map[string]string{"days": strconv.Itoa(req.RetentionDays)})
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.tenants.Delete(k.TenantID) // the cached tenant is stale now
	t, err := s.meta.Tenant(c.Request.Context(), k.TenantID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

// PurgeExpired purges, for every tenant with a retention period, the events
// older than it at now, and records each purge that hid rows. It goes on past
// a failing tenant and returns the purges done and the errors met.
func (s *Server) PurgeExpired(ctx context.Context, now time.Time) ([]privalytics.PurgeReceipt, error) {
	ss, err := s.subjectStore()
	if err != nil {
		return nil, err
	}
	tenants, err := s.meta.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	var out []privalytics.PurgeReceipt
	var errs []error
	for _, t := range tenants {
		cut, ok := t.RetentionCutoff(now)
		if !ok {
			continue
		}
		rc, err := ss.Purge(ctx, t.ID, t.Schema, cut)
		if err != nil {
			s.log.Error("retention purge failed; the next pass retries", slog.String("tenant", t.ID), slog.Any("err", err))
			errs = append(errs, err)
			continue
		}
		if rc.Rows == 0 {
			continue
		}
		s.log.Info("retention purge", slog.String("tenant", t.ID), slog.Time("before", rc.Before), slog.Int("rows", rc.Rows))
		if s.auditLog != nil {
			e := &privalytics.AuditEntry{Time: s.now().UTC(), TenantID: t.ID, Actor: "retention", Action: auditPurge, Target: t.ID, Outcome: privalytics.AuditOK,
				Details: map[string]string{"rows": strconv.Itoa(rc.Rows), "before": rc.Before.UTC().Format(time.RFC3339)}}
			if err := s.auditLog.Append(context.WithoutCancel(ctx), e); err != nil {
				s.log.Error("audit append failed", slog.String("action", auditPurge), slog.Any("err", err))
			}
		}
		if s.hooks.Purged != nil {
			s.hooks.Purged(ctx, rc)
		}
		out = append(out, rc)
	}
	if len(errs) > 0 {
		return out, privalytics.Errorf(privalytics.EINTERNAL, "retention purge failed for %d tenants; see the log", len(errs))
	}
	return out, nil
}

// RunRetention runs PurgeExpired (and retries pending compactions) now and
// then every interval until ctx is done.
// The caller owns the goroutine and waits for it.
func (s *Server) RunRetention(ctx context.Context, every time.Duration) {
	for {
		if _, err := s.PurgeExpired(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.log.Error("retention pass", slog.Any("err", err))
		}
		// A background compaction that failed is retried here, so erased and
		// purged rows leave the disk within one period even then.
		if ss, err := s.subjectStore(); err == nil {
			if err := ss.CompactDue(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("compaction retry", slog.Any("err", err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func (s *Server) encryptedStore() (privalytics.EncryptedStore, error) {
	es, ok := s.events.(privalytics.EncryptedStore)
	if !ok {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "the event store does not encrypt at rest")
	}
	return es, nil
}

// rotateDataKey gives the caller's tenant a new data key; ingest goes on, and
// files under the old key are re-encrypted in the background.
func (s *Server) rotateDataKey(c *gin.Context) {
	st, ok := s.callerTenant(c)
	if !ok {
		return
	}
	es, err := s.encryptedStore()
	if err != nil {
		s.writeError(c, err)
		return
	}
	err = es.RotateKey(c.Request.Context(), st.tenant.ID, st.tenant.Schema)
	_ = s.audit(c, auditKeyRotate, st.tenant.ID, err, nil)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.log.Info("tenant data key rotated", slog.String("tenant", st.tenant.ID))
	c.JSON(http.StatusOK, gin.H{"rotated": true})
}

// shredTenant crypto-shreds a tenant's events (operator key only): its data
// keys are destroyed, so no copy of its event files can be read again.
func (s *Server) shredTenant(c *gin.Context) {
	if !callerOf(c).operator() {
		s.deny(c, privalytics.Errorf(privalytics.EFORBIDDEN, "only the operator key shreds a tenant's events"))
		return
	}
	es, err := s.encryptedStore()
	if err != nil {
		s.writeError(c, err)
		return
	}
	t, err := s.meta.Tenant(c.Request.Context(), c.Param("tenant"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	err = es.Shred(c.Request.Context(), t.ID)
	_ = s.auditFor(c, t.ID, auditShred, t.ID, err, nil)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.log.Warn("tenant events crypto-shredded", slog.String("tenant", t.ID))
	c.Status(http.StatusNoContent)
}
