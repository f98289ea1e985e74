package api

import (
	"bytes"
	"encoding/json"

	"github.com/gin-gonic/gin"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/learn"
	"github.com/privalytics/privalytics/learn/fairness"
	"github.com/privalytics/privalytics/learn/registry"
)

// The model and fairness-audit routes (issue 19, docs/learning.md): thin
// over learn/registry.

// convert copies between a wire body and its learn counterpart, which have
// the same JSON form field for field.
func convert(src, dst any) error {
	b, err := json.Marshal(src)
	if err != nil {
		return privalytics.Errorf(privalytics.EINTERNAL, "convert: %v", err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return privalytics.Errorf(privalytics.EINTERNAL, "convert: %v", err)
	}
	return nil
}

func wireModel(m *learn.Model) (wire.Model, error) {
	var w wire.Model
	err := convert(m, &w)
	return w, err
}

// uploadModel stores a model file as the next version of :name.
func (s *Server) uploadModel(c *gin.Context) (reply, error) {
	var in wire.Model
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &in); err != nil {
		return reply{}, err
	}
	b, err := json.Marshal(in)
	if err != nil {
		return reply{}, privalytics.Errorf(privalytics.EINTERNAL, "model: %v", err)
	}
	m, err := learn.ReadModel(bytes.NewReader(b))
	if err != nil {
		return reply{}, err
	}
	if err := s.models.Save(callerOf(c).Key.TenantID, c.Param("name"), m); err != nil {
		return reply{}, err
	}
	w, err := wireModel(m)
	if err != nil {
		return reply{}, err
	}
	return created(w), nil
}

func (s *Server) listModels(c *gin.Context) (reply, error) {
	all, err := s.models.Models(callerOf(c).Key.TenantID)
	if err != nil {
		return reply{}, err
	}
	out := wire.ModelList{Models: []wire.ModelSummary{}}
	for _, m := range all {
		out.Models = append(out.Models, wire.ModelSummary{Name: m.Name, Versions: m.Versions, Kind: m.Latest.Kind, Epsilon: m.Latest.Epsilon, Trained: m.Latest.Trained})
	}
	return ok(out), nil
}

func (s *Server) getModel(c *gin.Context) (reply, error) {
	v, err := registry.ParseVersion(c.Query("version"))
	if err != nil {
		return reply{}, err
	}
	m, err := s.models.Model(callerOf(c).Key.TenantID, c.Param("name"), v)
	if err != nil {
		return reply{}, err
	}
	w, err := wireModel(m)
	if err != nil {
		return reply{}, err
	}
	return ok(w), nil
}

// createFairnessAudit charges the audit's (ε, δ) once the request has passed
// every check that needs only public information (configuration, model,
// record count), then runs it; nothing is refunded after that, because the
// audit reads the records.
func (s *Server) createFairnessAudit(c *gin.Context) (reply, error) {
	tenant := callerOf(c).Key.TenantID
	var in wire.FairnessAuditRequest
	if err := decodeJSON(c, s.limits.MaxBodyBytes, &in); err != nil {
		return reply{}, err
	}
	req := &registry.AuditRequest{Model: in.Model, ModelVersion: in.ModelVersion, Records: make([]fairness.Record, len(in.Records))}
	if err := convert(in.Config, &req.Config); err != nil {
		return reply{}, err
	}
	for i, r := range in.Records {
		req.Records[i] = fairness.Record{Group: r.Group, Score: r.Score, Label: r.Label}
	}
	if err := s.models.Check(tenant, req); err != nil {
		return reply{}, err
	}
	ctx := c.Request.Context()
	st, err := s.tenantState(ctx, tenant)
	if err != nil {
		return reply{}, err
	}
	if st.tenant.Accounting == privalytics.AccountingZCDP || st.tenant.Period != "" {
		return reply{}, privalytics.Errorf(privalytics.EINVALID, "fairness audits are charged in (ε, δ) to a whole-lifetime budget; this tenant accounts in zCDP or per data period, which audits do not support yet")
	}
	charge := &privalytics.Charge{TenantID: tenant, KeyID: callerOf(c).Key.ID, Time: s.now().UTC(), Fingerprint: "fairness-audit:" + in.Model,
		Mechanisms: "gaussian histogram (fairness audit)", Cost: privalytics.Cost{Epsilon: in.Config.Epsilon, Delta: in.Config.Delta}}
	if _, err := s.meta.Charge(ctx, charge); err != nil {
		return reply{}, err
	}
	a, err := s.models.Run(tenant, req)
	if err != nil {
		s.log.Error("fairness audit failed after its charge", "charge", charge.ID, "err", err)
		return reply{}, err
	}
	var out wire.FairnessAudit
	if err := convert(a, &out); err != nil {
		return reply{}, err
	}
	return created(out), nil
}

func (s *Server) getFairnessAudit(c *gin.Context) (reply, error) {
	a, err := s.models.Get(callerOf(c).Key.TenantID, c.Param("id"))
	if err != nil {
		return reply{}, err
	}
	var out wire.FairnessAudit
	if err := convert(a, &out); err != nil {
		return reply{}, err
	}
	return ok(out), nil
}
