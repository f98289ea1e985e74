package api

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
)

// BudgetResponse is the tenant's budget and what the calling key may spend.
type BudgetResponse struct {
	privalytics.BudgetStatus
	Key privalytics.KeyBudget `json:"key"`
}

func (s *Server) budget(c *gin.Context) {
	k := callerOf(c).Key
	status, err := s.meta.Budget(c.Request.Context(), k.TenantID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	kb, err := s.meta.KeyBudget(c.Request.Context(), k.TenantID, k.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	present(&status)
	c.JSON(http.StatusOK, BudgetResponse{BudgetStatus: status, Key: kb})
}

// allocate sets a key's own share of the tenant's budget (admin). A zero share
// returns the key to the shared pool.
func (s *Server) allocate(c *gin.Context) {
	var share privalytics.Cost
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &share); err != nil {
		s.writeError(c, err)
		return
	}
	tenant, id := callerOf(c).Key.TenantID, c.Param("id")
	err := s.meta.Allocate(c.Request.Context(), tenant, id, share, callerOf(c).Key.ID)
	_ = s.audit(c, auditKeyBudget, id, err, map[string]string{"epsilon": fmtFloat(share.Epsilon), "delta": fmtFloat(share.Delta)})
	if err != nil {
		s.writeError(c, err)
		return
	}
	kb, err := s.meta.KeyBudget(c.Request.Context(), tenant, id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, kb)
}

// charges pages through the ledger, newest first: ?offset=0&limit=50 (max 500).
// An admin key sees every key's charges; any other key only its own, since
// another key's fingerprints and times say what it asked and when.
func (s *Server) charges(c *gin.Context) {
	offset, err1 := strconv.Atoi(c.DefaultQuery("offset", "0"))
	limit, err2 := strconv.Atoi(c.DefaultQuery("limit", "50"))
	if err1 != nil || err2 != nil || offset < 0 || limit < 1 || limit > 500 {
		s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "offset must be ≥ 0 and limit 1..500"))
		return
	}
	k, only := callerOf(c).Key, ""
	if k.Role != privalytics.RoleAdmin {
		only = k.ID
	}
	list, err := s.meta.Charges(c.Request.Context(), k.TenantID, only, offset, limit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"charges": list, "offset": offset, "limit": limit})
}

// grant raises the tenant's total budget (admin); the grant is recorded.
func (s *Server) grant(c *gin.Context) {
	var add privalytics.Cost
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &add); err != nil {
		s.writeError(c, err)
		return
	}
	k := callerOf(c).Key
	st, err := s.meta.Grant(c.Request.Context(), k.TenantID, add, k.ID)
	_ = s.audit(c, auditBudgetGrant, k.TenantID, err, map[string]string{"epsilon": fmtFloat(add.Epsilon), "delta": fmtFloat(add.Delta)})
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

// budgetChanges pages through the record of grants and allocations (admin).
func (s *Server) budgetChanges(c *gin.Context) {
	offset, err1 := strconv.Atoi(c.DefaultQuery("offset", "0"))
	limit, err2 := strconv.Atoi(c.DefaultQuery("limit", "50"))
	if err1 != nil || err2 != nil || offset < 0 || limit < 1 || limit > 500 {
		s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "offset must be ≥ 0 and limit 1..500"))
		return
	}
	list, err := s.meta.BudgetChanges(c.Request.Context(), callerOf(c).Key.TenantID, offset, limit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"changes": list, "offset": offset, "limit": limit})
}
