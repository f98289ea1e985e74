package api

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/he"
)

// The processor role (serve --role processor): a data owner uploads an
// encrypted table with its evaluation keys, runs jobs on it and downloads the
// encrypted results. The datasets, jobs, their goroutines and limits live in
// he.Datasets (he/processor.go); these handlers only decode, call it and
// encode (README, "Encrypted analytics").

// HELimits bound the processor's memory and CPU (he.Limits).
type HELimits = he.Limits

// DefaultHELimits are the documented defaults (processor off).
func DefaultHELimits() HELimits { return he.DefaultLimits() }

// Close stops the server's background work: HE jobs in flight are cancelled
// and their goroutines waited for (or ctx ends). The binary calls it on
// shutdown, after the HTTP server has drained.
func (s *Server) Close(ctx context.Context) error { return s.he.Close(ctx) }

func (s *Server) heRoutes(v1 *gin.RouterGroup) {
	heRoles := s.require(privalytics.RoleProcessor, privalytics.RoleAdmin)
	hg := v1.Group("/he", heRoles, s.heEnabled) // roles first: every denial is audited, on any server
	hg.POST("/datasets", s.handle(s.createHEDataset))
	hg.GET("/datasets/:dataset", s.handle(s.getHEDataset))
	hg.DELETE("/datasets/:dataset", s.handle(s.deleteHEDataset))
	hg.POST("/datasets/:dataset/jobs", s.handle(s.createHEJob))
	hg.GET("/datasets/:dataset/jobs/:job", s.handle(s.getHEJob))
	hg.GET("/datasets/:dataset/jobs/:job/result", s.getHEJobResult)
}

func (s *Server) heEnabled(c *gin.Context) {
	if !s.he.Limits().Enabled {
		s.writeError(c, privalytics.Errorf(privalytics.ENOTFOUND, "this server is not a processor; encrypted datasets go to a server started with --role processor"))
		return
	}
	c.Next()
}

func heTenant(c *gin.Context) string { return callerOf(c).Key.TenantID }

// createHEDataset streams a multipart body (part "keys", then part "table")
// into the processor; 201 with the dataset.
func (s *Server) createHEDataset(c *gin.Context) (reply, error) {
	info, err := s.he.Upload(c.Request.Context(), heTenant(c), c.GetHeader("Content-Type"), c.Request.Body, c.Request.ContentLength)
	if err != nil {
		return reply{}, err
	}
	s.log.Info("he dataset stored", slog.String("request_id", requestID(c)), slog.String("tenant", info.Tenant), slog.String("dataset", info.ID),
		slog.String("preset", info.Preset), slog.Int64("rows", info.Rows), slog.Int64("bytes", info.Bytes))
	return created(wireDataset(info)), nil
}

func (s *Server) getHEDataset(c *gin.Context) (reply, error) {
	info, err := s.he.Dataset(heTenant(c), c.Param("dataset"))
	if err != nil {
		return reply{}, err
	}
	return ok(wireDataset(info)), nil
}

func (s *Server) deleteHEDataset(c *gin.Context) (reply, error) {
	if err := s.he.Delete(heTenant(c), c.Param("dataset")); err != nil {
		return reply{}, err
	}
	return noContent(), nil
}

// createHEJob queues a job the processor has checked against the keys and the
// header (wrap-around, overflow, operations the keys allow); 202 with its ID.
func (s *Server) createHEJob(c *gin.Context) (reply, error) {
	var spec wire.HEJobSpec
	if err := decodeJSON(c, s.limits.MaxQueryBytes, &spec); err != nil {
		return reply{}, err
	}
	job := he.Job{Op: he.Op(spec.Op), Column: spec.Column, Group: spec.Group, Columns: spec.Columns, Target: spec.Target}
	info, err := s.he.Submit(heTenant(c), c.Param("dataset"), job)
	if err != nil {
		return reply{}, err
	}
	return accepted(wireJob(info)), nil
}

func (s *Server) getHEJob(c *gin.Context) (reply, error) {
	info, err := s.he.Job(heTenant(c), c.Param("dataset"), c.Param("job"))
	if err != nil {
		return reply{}, err
	}
	return ok(wireJob(info)), nil
}

// getHEJobResult sends the encrypted result (he/FORMAT.md, "Result"): bytes,
// not JSON. A job not done yet gets 409 with Retry-After; a failed job its error.
func (s *Server) getHEJobResult(c *gin.Context) {
	b, err := s.he.Result(heTenant(c), c.Param("dataset"), c.Param("job"))
	if err != nil {
		if privalytics.ErrorCode(err) == privalytics.ECONFLICT {
			c.Header("Retry-After", "1")
		}
		s.writeError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "application/octet-stream", b)
}

func wireDataset(d he.DatasetInfo) wire.HEDataset {
	out := wire.HEDataset{ID: d.ID, Preset: d.Preset, Rows: d.Rows, Bytes: d.Bytes, Created: d.Created,
		Columns: make([]wire.HEColumn, len(d.Columns)), Ops: make([]string, len(d.Ops))}
	for i, c := range d.Columns {
		out.Columns[i] = wire.HEColumn{Name: c.Name, Kind: string(c.Kind), Min: c.Min, Max: c.Max, Group: c.Group, Category: c.Category}
	}
	for i, op := range d.Ops {
		out.Ops[i] = string(op)
	}
	return out
}

func wireJob(j he.JobInfo) wire.HEJob {
	out := wire.HEJob{ID: j.ID, Dataset: j.Dataset, Status: j.Status, ResultBytes: j.ResultBytes, Created: j.Created,
		Job: wire.HEJobSpec{Op: string(j.Job.Op), Column: j.Job.Column, Group: j.Job.Group, Columns: j.Job.Columns, Target: j.Job.Target}}
	if j.Err != nil {
		out.Error = privalytics.ErrorMessage(j.Err)
	}
	if !j.Finished.IsZero() {
		f := j.Finished
		out.Finished = &f
	}
	return out
}
