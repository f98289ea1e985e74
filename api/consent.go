package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
)

// ConsentRecord is one consent decision as sent to POST /v1/consents: one JSON
// object, a JSON array of them, or NDJSON (one per line).
type ConsentRecord struct {
	CustomerID string     `json:"customer_id"`      // as the business knows the customer; stored only as the keyed hash
	Purpose    string     `json:"purpose"`          // one of the tenant's purposes
	Granted    *bool      `json:"granted"`          // true: given; false: withdrawn
	Time       *time.Time `json:"time,omitempty"`   // when the customer decided; default now
	Source     string     `json:"source,omitempty"` // where it was collected ("web-form", "pos", "import"); default "api"
}

// ConsentsRecorded is the answer of POST /v1/consents.
type ConsentsRecorded struct {
	Recorded int   `json:"recorded"`
	Version  int64 `json:"version"` // the tenant's consent version after this batch; queries after it see it
}

// maxConsentClockSkew is how far in the future a consent time may lie.
const maxConsentClockSkew = 5 * time.Minute

// recordConsents stores a batch of consent decisions, all or nothing: a bad
// record rejects the batch, naming its line and field. Queries made after the
// answer see the new decisions.
func (s *Server) recordConsents(c *gin.Context) {
	if err := requireContentType(c, "application/json", "application/x-ndjson", "application/jsonl"); err != nil {
		s.writeError(c, err)
		return
	}
	st, err := s.tenantState(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	body, err := readBody(c, s.limits.MaxBodyBytes, s.limits.MaxDecodedBytes)
	if err != nil {
		s.writeError(c, err)
		return
	}
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	recs, err := decodeConsents(body.Bytes(), mt == "application/json", s.limits.Ingest.MaxRows)
	releaseBody(body)
	if err != nil {
		s.writeError(c, err)
		return
	}
	now := s.now().UTC()
	maxID := 128
	for _, col := range st.tenant.Schema.Columns {
		if col.Name == st.tenant.Schema.Subject && col.MaxLength > 0 {
			maxID = col.MaxLength
		}
	}
	cs := make([]privalytics.Consent, len(recs))
	granted, purposes := 0, map[string]bool{}
	for i, r := range recs {
		line := r.line
		switch {
		case r.CustomerID == "":
			err = consentError(line, "customer_id", "is missing or empty; name the customer as your systems know them")
		case len(r.CustomerID) > maxID:
			err = consentError(line, "customer_id", fmt.Sprintf("is %d bytes, longer than the %d allowed", len(r.CustomerID), maxID))
		case !slices.Contains(st.tenant.Purposes, r.Purpose):
			err = consentError(line, "purpose", fmt.Sprintf("%q is not a purpose of this tenant; declared: %s", r.Purpose, strings.Join(st.tenant.Purposes, ", ")))
		case r.Granted == nil:
			err = consentError(line, "granted", "is missing; send true (given) or false (withdrawn)")
		case r.Time != nil && r.Time.After(now.Add(maxConsentClockSkew)):
			err = consentError(line, "time", "lies in the future; send when the customer decided")
		case len(r.Source) > 64:
			err = consentError(line, "source", "is longer than 64 bytes")
		}
		if err != nil {
			s.writeError(c, err)
			return
		}
		at := now
		if r.Time != nil {
			at = r.Time.UTC()
		}
		src := r.Source
		if src == "" {
			src = "api"
		}
		cs[i] = privalytics.Consent{Subject: st.pseudo.Subject([]byte(r.CustomerID)), Purpose: r.Purpose, Granted: *r.Granted, Time: at, Source: src, RecordedAt: now}
		purposes[r.Purpose] = true
		if *r.Granted {
			granted++
		}
	}
	version, err := s.meta.RecordConsents(c.Request.Context(), st.tenant.ID, cs)
	names := make([]string, 0, len(purposes))
	for p := range purposes {
		names = append(names, p)
	}
	sort.Strings(names)
	_ = s.audit(c, auditConsent, strings.Join(names, ","), err, map[string]string{
		"records": strconv.Itoa(len(cs)), "granted": strconv.Itoa(granted), "withdrawn": strconv.Itoa(len(cs) - granted), "version": strconv.FormatInt(version, 10)})
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, ConsentsRecorded{Recorded: len(cs), Version: version})
}

func consentError(line int, field, reason string) error {
	return privalytics.Errorf(privalytics.EINVALID, "consent on line %d: %s %s; nothing of this batch was recorded", line, field, reason).
		With("line", line).With("field", field).With("reason", reason)
}

type lineRecord struct {
	ConsentRecord
	line int
}

// decodeConsents reads one object or an array (asJSON), or NDJSON, with
// unknown fields rejected and at most maxRows records.
func decodeConsents(body []byte, asJSON bool, maxRows int) ([]lineRecord, error) {
	var out []lineRecord
	decode := func(raw []byte, line int) error {
		var r ConsentRecord
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return privalytics.Errorf(privalytics.EINVALID, "consent on line %d: %s; nothing of this batch was recorded", line, privalytics.ErrorMessage(jsonError(err))).With("line", line)
		}
		if dec.More() {
			return privalytics.Errorf(privalytics.EINVALID, "consent on line %d: one JSON object per line", line).With("line", line)
		}
		if len(out) == maxRows {
			return privalytics.Errorf(privalytics.ETOOLARGE, "more than %d consent records in one request; send smaller batches", maxRows)
		}
		out = append(out, lineRecord{ConsentRecord: r, line: line})
		return nil
	}
	trimmed := bytes.TrimSpace(body)
	if asJSON && len(trimmed) > 0 && trimmed[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return nil, jsonError(err)
		}
		for i, raw := range raws {
			if err := decode(raw, i+1); err != nil {
				return nil, err
			}
		}
	} else if asJSON {
		if err := decode(trimmed, 1); err != nil {
			return nil, err
		}
	} else {
		for i, raw := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(raw)) == 0 {
				continue
			}
			if err := decode(raw, i+1); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "no consent records in the body")
	}
	return out, nil
}

// PurposeConsent is a customer's standing for one purpose.
type PurposeConsent struct {
	Policy  string `json:"policy"`  // opt-in or opt-out: what applies without a record
	Granted bool   `json:"granted"` // whether queries for this purpose see the customer now
}

// ConsentStatus is the answer of GET /v1/consents/{customer_id}.
type ConsentStatus struct {
	Purposes map[string]PurposeConsent `json:"purposes"`
	History  []privalytics.Consent     `json:"history"` // oldest first
}

// consentStatus shows one customer's consent per purpose and its full history
// (admin). The identifier is hashed as at ingest and never logged.
func (s *Server) consentStatus(c *gin.Context) {
	st, err := s.tenantState(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	id := c.Param("customer_id")
	if id == "" {
		s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "name the customer: GET /v1/consents/{customer_id}"))
		return
	}
	hist, err := s.meta.ConsentHistory(c.Request.Context(), st.tenant.ID, st.pseudo.Subject([]byte(id)))
	_ = s.audit(c, auditConsentRead, "", err, map[string]string{"records": strconv.Itoa(len(hist))})
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := ConsentStatus{Purposes: map[string]PurposeConsent{}, History: hist}
	for _, p := range st.tenant.Purposes {
		pol := st.tenant.ConsentPolicy(p)
		pc := PurposeConsent{Policy: pol, Granted: pol == privalytics.OptOut}
		var best *privalytics.Consent
		for i := range hist {
			h := &hist[i]
			if h.Purpose == p && (best == nil || !h.Time.Before(best.Time)) {
				best = h
			}
		}
		if best != nil {
			pc.Granted = best.Granted
		}
		out.Purposes[p] = pc
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}
