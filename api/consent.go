package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

// ConsentRecord and ConsentsRecorded are the bodies of POST /v1/consents
// (one JSON object, a JSON array of them, or NDJSON), defined once in api/wire.
type (
	ConsentRecord    = wire.ConsentRecord
	ConsentsRecorded = wire.ConsentsRecorded
)

// maxConsentClockSkew is how far in the future a consent time may lie.
const maxConsentClockSkew = 5 * time.Minute

// recordConsents stores a batch of consent decisions, all or nothing: a bad
// record rejects the batch, naming its line and field. Queries made after the
// answer see the new decisions.
func (s *Server) recordConsents(c *gin.Context) (reply, error) {
	if err := requireContentType(c, "application/json", "application/x-ndjson", "application/jsonl"); err != nil {
		return reply{}, err
	}
	st, err := s.tenantState(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		return reply{}, err
	}
	body, err := readBody(c, s.limits.MaxBodyBytes, s.limits.MaxDecodedBytes)
	if err != nil {
		return reply{}, err
	}
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	recs, err := decodeConsents(body.Bytes(), mt == "application/json", s.limits.Ingest.MaxRows)
	releaseBody(body)
	if err != nil {
		return reply{}, err
	}
	cs, err := consentsOf(st, recs, s.now().UTC())
	if err != nil {
		return reply{}, err
	}
	version, err := s.meta.RecordConsents(c.Request.Context(), st.tenant.ID, cs)
	purposes, details := consentAudit(cs, version)
	_ = s.audit(c, auditConsent, purposes, err, details)
	return ok(wire.ConsentsRecorded{Recorded: len(cs), Version: version}), err
}

// consentsOf checks each record against the tenant (its purposes, the
// customer identifier's length) and turns it into a stored decision under the
// customer's pseudonym; the first bad record fails the batch.
func consentsOf(st *tenantState, recs []lineRecord, now time.Time) ([]privalytics.Consent, error) {
	maxID := 128
	for _, col := range st.tenant.Schema.Columns {
		if col.Name == st.tenant.Schema.Subject && col.MaxLength > 0 {
			maxID = col.MaxLength
		}
	}
	cs := make([]privalytics.Consent, len(recs))
	for i, r := range recs {
		if err := checkConsent(r, st.tenant.Purposes, maxID, now); err != nil {
			return nil, err
		}
		at, src := now, r.Source
		if r.Time != nil {
			at = r.Time.UTC()
		}
		if src == "" {
			src = "api"
		}
		cs[i] = privalytics.Consent{Subject: st.pseudo.Subject([]byte(r.CustomerID)), Purpose: r.Purpose, Granted: *r.Granted, Time: at, Source: src, RecordedAt: now}
	}
	return cs, nil
}

// checkConsent says what is wrong with one record, naming its line and field.
func checkConsent(r lineRecord, purposes []string, maxID int, now time.Time) error {
	switch {
	case r.CustomerID == "":
		return consentError(r.line, "customer_id", "is missing or empty; name the customer as your systems know them")
	case len(r.CustomerID) > maxID:
		return consentError(r.line, "customer_id", fmt.Sprintf("is %d bytes, longer than the %d allowed", len(r.CustomerID), maxID))
	case !slices.Contains(purposes, r.Purpose):
		return consentError(r.line, "purpose", fmt.Sprintf("%q is not a purpose of this tenant; declared: %s", r.Purpose, strings.Join(purposes, ", ")))
	case r.Granted == nil:
		return consentError(r.line, "granted", "is missing; send true (given) or false (withdrawn)")
	case r.Time != nil && r.Time.After(now.Add(maxConsentClockSkew)):
		return consentError(r.line, "time", "lies in the future; send when the customer decided")
	case len(r.Source) > 64:
		return consentError(r.line, "source", "is longer than 64 bytes")
	}
	return nil
}

// consentAudit is the audit entry's target (the purposes, sorted) and its
// details: counts only, never a customer.
func consentAudit(cs []privalytics.Consent, version int64) (string, map[string]string) {
	granted, seen := 0, map[string]bool{}
	for _, c := range cs {
		seen[c.Purpose] = true
		if c.Granted {
			granted++
		}
	}
	names := make([]string, 0, len(seen))
	for p := range seen {
		names = append(names, p)
	}
	sort.Strings(names)
	return strings.Join(names, ","), map[string]string{"records": strconv.Itoa(len(cs)), "granted": strconv.Itoa(granted),
		"withdrawn": strconv.Itoa(len(cs) - granted), "version": strconv.FormatInt(version, 10)}
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
	raws, err := consentLines(body, asJSON)
	if err != nil {
		return nil, err
	}
	if len(raws) > maxRows {
		return nil, privalytics.Errorf(privalytics.ETOOLARGE, "more than %d consent records in one request; send smaller batches", maxRows)
	}
	out := make([]lineRecord, 0, len(raws))
	for _, raw := range raws {
		var r ConsentRecord
		dec := json.NewDecoder(bytes.NewReader(raw.text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "consent on line %d: %s; nothing of this batch was recorded", raw.line, privalytics.ErrorMessage(jsonError(err))).With("line", raw.line)
		}
		if dec.More() {
			return nil, privalytics.Errorf(privalytics.EINVALID, "consent on line %d: one JSON object per line", raw.line).With("line", raw.line)
		}
		out = append(out, lineRecord{ConsentRecord: r, line: raw.line})
	}
	if len(out) == 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "no consent records in the body")
	}
	return out, nil
}

// rawLine is one record's JSON text and the line (or array position, from 1)
// an error names.
type rawLine struct {
	text []byte
	line int
}

// consentLines splits a body into its records: the elements of a JSON array,
// one JSON object, or the non-blank lines of NDJSON.
func consentLines(body []byte, asJSON bool) ([]rawLine, error) {
	trimmed := bytes.TrimSpace(body)
	var out []rawLine
	switch {
	case asJSON && len(trimmed) > 0 && trimmed[0] == '[':
		var raws []json.RawMessage
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return nil, jsonError(err)
		}
		for i, raw := range raws {
			out = append(out, rawLine{raw, i + 1})
		}
	case asJSON:
		out = append(out, rawLine{trimmed, 1})
	default:
		for i, raw := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(raw)) > 0 {
				out = append(out, rawLine{raw, i + 1})
			}
		}
	}
	return out, nil
}

// PurposeConsent and ConsentStatus are the answer of GET
// /v1/consents/{customer_id}, defined once in api/wire.
type (
	PurposeConsent = wire.PurposeConsent
	ConsentStatus  = wire.ConsentStatus
)

// consentStatus shows one customer's consent per purpose and its full history
// (admin). The identifier is hashed as at ingest and never logged.
func (s *Server) consentStatus(c *gin.Context) (reply, error) {
	st, err := s.tenantState(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		return reply{}, err
	}
	id := c.Param("customer_id")
	if id == "" {
		return reply{}, privalytics.Errorf(privalytics.EINVALID, "name the customer: GET /v1/consents/{customer_id}")
	}
	hist, err := s.meta.ConsentHistory(c.Request.Context(), st.tenant.ID, st.pseudo.Subject([]byte(id)))
	_ = s.audit(c, auditConsentRead, "", err, map[string]string{"records": strconv.Itoa(len(hist))})
	if err != nil {
		return reply{}, err
	}
	c.Header("Cache-Control", "no-store")
	return ok(consentStatusOf(st.tenant, hist)), nil
}

// consentStatusOf is each purpose's standing — the latest decision, else the
// purpose's policy — and the history, oldest first.
func consentStatusOf(t *privalytics.Tenant, hist []privalytics.Consent) wire.ConsentStatus {
	out := wire.ConsentStatus{Purposes: map[string]wire.PurposeConsent{}, History: make([]wire.Consent, len(hist))}
	for i, h := range hist {
		out.History[i] = wire.Consent{Seq: h.Seq, Purpose: h.Purpose, Granted: h.Granted, Time: h.Time, Source: h.Source, RecordedAt: h.RecordedAt}
	}
	for _, p := range t.Purposes {
		pol := t.ConsentPolicy(p)
		pc := wire.PurposeConsent{Policy: pol, Granted: pol == privalytics.OptOut}
		var best *privalytics.Consent
		for i := range hist {
			if h := &hist[i]; h.Purpose == p && (best == nil || !h.Time.Before(best.Time)) {
				best = h
			}
		}
		if best != nil {
			pc.Granted = best.Granted
		}
		out.Purposes[p] = pc
	}
	return out
}
