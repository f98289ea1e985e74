package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"

	"github.com/privalytics/privalytics"
)

// consentBatch is how many records one INSERT carries: large batches (an
// import of a consent platform's export) go in few round trips, and a batch's
// 7 parameters per row stay far below either database's limit.
const consentBatch = 500

// RecordConsents appends the records and bumps the tenant's consent version in
// one transaction; the version's row lock orders concurrent recorders, so the
// version a reader sees always covers every record committed before it.
func (s *Store) RecordConsents(ctx context.Context, tenantID string, cs []privalytics.Consent) (int64, error) {
	var version int64
	err := s.tx(ctx, nil, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, s.q(`UPDATE tenants SET consent_version = consent_version + 1 WHERE id = ? RETURNING consent_version`), tenantID).Scan(&version)
		if noRows(err) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
		} else if err != nil {
			return err
		}
		for len(cs) > 0 {
			n := min(len(cs), consentBatch)
			rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?), ", n), ", ")
			args := make([]any, 0, 7*n)
			for _, c := range cs[:n] {
				args = append(args, tenantID, int64(c.Subject), c.Purpose, c.Granted, s.d.Time(c.Time), c.Source, s.d.Time(c.RecordedAt))
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO consents (tenant_id, subject, purpose, granted, time, source, recorded_at) VALUES `+rows), args...); err != nil {
				return err
			}
			cs = cs[n:]
		}
		return nil
	})
	if err != nil {
		return 0, s.fail("record consents", err)
	}
	return version, nil
}

// ConsentHistory lists one customer's records, oldest first.
func (s *Store) ConsentHistory(ctx context.Context, tenantID string, subject uint64) ([]privalytics.Consent, error) {
	out, err := list(ctx, s.db, s.q(`SELECT seq, subject, purpose, granted, time, source, recorded_at FROM consents WHERE tenant_id = ? AND subject = ? ORDER BY seq`), []any{tenantID, int64(subject)},
		func(r interface{ Scan(...any) error }) (privalytics.Consent, error) {
			var c privalytics.Consent
			var subj int64
			err := r.Scan(&c.Seq, &subj, &c.Purpose, &c.Granted, timeOf(&c.Time), &c.Source, timeOf(&c.RecordedAt))
			c.Subject = uint64(subj)
			return c, err
		})
	return out, s.fail("consent history", err)
}

// ConsentDecisions folds the purpose's records in (time, seq) order, so the
// newest decision of each customer wins; the version is read in the same
// transaction, so it matches the decisions.
func (s *Store) ConsentDecisions(ctx context.Context, tenantID, purpose string) (map[uint64]bool, int64, error) {
	out := map[uint64]bool{}
	var version int64
	err := s.tx(ctx, s.d.ReadTx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, s.q(`SELECT consent_version FROM tenants WHERE id = ?`), tenantID).Scan(&version); noRows(err) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
		} else if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, s.q(`SELECT subject, granted FROM consents WHERE tenant_id = ? AND purpose = ? ORDER BY time, seq`), tenantID, purpose)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var subj int64
			var granted bool
			if err := rows.Scan(&subj, &granted); err != nil {
				return err
			}
			out[uint64(subj)] = granted
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, s.fail("consent decisions", err)
	}
	return out, version, nil
}

// ConsentVersion returns the tenant's consent version.
func (s *Store) ConsentVersion(ctx context.Context, tenantID string) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT consent_version FROM tenants WHERE id = ?`), tenantID).Scan(&v)
	if noRows(err) {
		return 0, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	}
	return v, s.fail("consent version", err)
}

// SetPrivacy replaces the tenant's privacy policy and bumps its consent version.
func (s *Store) SetPrivacy(ctx context.Context, tenantID string, p privalytics.PrivacyPolicy) (int64, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return 0, s.fail("set privacy", err)
	}
	var version int64
	err = s.db.QueryRowContext(ctx, s.q(`UPDATE tenants SET privacy = ?, consent_version = consent_version + 1 WHERE id = ? RETURNING consent_version`), string(raw), tenantID).Scan(&version)
	if noRows(err) {
		return 0, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	}
	return version, s.fail("set privacy", err)
}
