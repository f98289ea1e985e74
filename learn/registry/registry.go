// Package registry is the server's service for issue 19's models and bias
// audits: each tenant's released models, stored and versioned, and the
// fairness audits run against them, stored with their plain-language report.
// The API's handlers are thin over it.
//
// Layout under Dir (one directory per tenant):
//
//	<tenant>/models/<name>/v<N>.json   a released model, written once
//	<tenant>/audits/<id>.json          an audit: its figures and its report
//
// A model is post-processing of DP releases and holds no customer data; an
// audit stores only its released (noisy) figures, never the records.
package registry

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/learn"
	"github.com/privalytics/privalytics/learn/fairness"
)

// Service stores models and runs audits.
type Service struct {
	Dir        string
	Mechanisms dp.Mechanisms
	Now        func() time.Time
}

var (
	tenantName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	auditID    = regexp.MustCompile(`^fa_[0-9a-f]{16}$`)
)

func (s *Service) tenantDir(tenant string) (string, error) {
	if s == nil || s.Dir == "" {
		return "", privalytics.Errorf(privalytics.EUNAVAILABLE, "models: this server runs without a models directory; start it with a --data-dir")
	}
	if !tenantName.MatchString(tenant) || strings.Contains(tenant, "..") {
		return "", privalytics.Errorf(privalytics.EINVALID, "models: tenant %q cannot name a directory", tenant)
	}
	return filepath.Join(s.Dir, tenant), nil
}

// Save stores m as the next version of name for tenant (m.Name and
// m.Version are set).
func (s *Service) Save(tenant, name string, m *learn.Model) error {
	d, err := s.tenantDir(tenant)
	if err != nil {
		return err
	}
	return learn.SaveModel(filepath.Join(d, "models"), name, m)
}

// Model returns version v of name (0: the latest).
func (s *Service) Model(tenant, name string, v int) (*learn.Model, error) {
	d, err := s.tenantDir(tenant)
	if err != nil {
		return nil, err
	}
	return learn.LoadModel(filepath.Join(d, "models"), name, v)
}

// Summary is one model name and its latest version.
type Summary struct {
	Name     string
	Versions int
	Latest   *learn.Model
}

// Models lists a tenant's models by name.
func (s *Service) Models(tenant string) ([]Summary, error) {
	d, err := s.tenantDir(tenant)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(d, "models"))
	if errors.Is(err, fs.ErrNotExist) {
		return []Summary{}, nil
	}
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "models: %v", err)
	}
	out := []Summary{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		m, err := s.Model(tenant, e.Name(), 0)
		if err != nil {
			return nil, err
		}
		out = append(out, Summary{Name: e.Name(), Versions: m.Version, Latest: m})
	}
	return out, nil
}

// Audit is a stored audit.
type Audit struct {
	ID           string           `json:"id"`
	Model        string           `json:"model,omitempty"`
	ModelVersion int              `json:"model_version,omitempty"`
	Created      time.Time        `json:"created"`
	Report       *fairness.Report `json:"report"`
	// Markdown is Report.Markdown(): the plain-language report, rendered
	// once from the same figures.
	Markdown string `json:"markdown"`
}

// AuditRequest is an audit's public configuration, the optional model the
// predictions came from, and the per-customer predictions.
type AuditRequest struct {
	Model        string
	ModelVersion int
	Config       fairness.Config
	Records      []fairness.Record
}

// Check decides from public information alone (the configuration, the
// model's existence, the number of records) whether Run will refuse, so that
// the caller charges only an audit that will run.
func (s *Service) Check(tenant string, r *AuditRequest) error {
	if _, err := s.tenantDir(tenant); err != nil {
		return err
	}
	if err := r.Config.Validate(); err != nil {
		return err
	}
	if _, err := learn.NewAccountant(r.Config.Epsilon, r.Config.Delta); err != nil {
		return err
	}
	if len(r.Records) == 0 {
		return privalytics.Errorf(privalytics.EINVALID, "audit: send at least one record (group, score, label)")
	}
	for i, rec := range r.Records {
		if !(rec.Score >= 0 && rec.Score <= 1) {
			return privalytics.Errorf(privalytics.EINVALID, "audit: record %d: score must be in [0, 1], got %g", i, rec.Score)
		}
	}
	if r.Model != "" {
		m, err := s.Model(tenant, r.Model, r.ModelVersion)
		if err != nil {
			return err
		}
		if m.Kind != learn.KindLogistic {
			return privalytics.Errorf(privalytics.EINVALID, "audit: model %q is a %s model; audits take a classifier's scores in [0, 1]", r.Model, m.Kind)
		}
		r.ModelVersion = m.Version
	}
	return nil
}

// Run audits the records (call Check first, then charge the audit's ε, δ)
// and stores the result.
func (s *Service) Run(tenant string, r *AuditRequest) (*Audit, error) {
	d, err := s.tenantDir(tenant)
	if err != nil {
		return nil, err
	}
	rep, err := fairness.Audit(r.Records, r.Config, s.Mechanisms)
	if err != nil {
		return nil, err
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "audit: id: %v", err)
	}
	a := &Audit{ID: "fa_" + hex.EncodeToString(b[:]), Model: r.Model, ModelVersion: r.ModelVersion, Created: s.now(), Report: rep, Markdown: rep.Markdown()}
	dir := filepath.Join(d, "audits")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "audit: %v", err)
	}
	body, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "audit: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, a.ID+".json"), body, 0o600); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "audit: %v", err)
	}
	return a, nil
}

// Get returns a stored audit.
func (s *Service) Get(tenant, id string) (*Audit, error) {
	d, err := s.tenantDir(tenant)
	if err != nil {
		return nil, err
	}
	if !auditID.MatchString(id) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "audit %q: no such audit (ids look like fa_0123456789abcdef)", id)
	}
	b, err := os.ReadFile(filepath.Join(d, "audits", id+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "audit %q: no such audit", id)
	}
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "audit: %v", err)
	}
	var a Audit
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "audit %s is damaged: %v", id, err)
	}
	return &a, nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// ParseVersion reads a ?version= value: empty is 0 (the latest).
func ParseVersion(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, privalytics.Errorf(privalytics.EINVALID, "version must be a positive integer, got %q", v)
	}
	return n, nil
}
