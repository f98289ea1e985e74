package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/privalytics/privalytics"
)

// RecordConsents appends the records and bumps the tenant's consent version in
// one transaction.
func (s *DB) RecordConsents(ctx context.Context, tenantID string, cs []privalytics.Consent) (int64, error) {
	var version int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE tenants SET consent_version = consent_version + 1 WHERE id = ? RETURNING consent_version`, tenantID).Scan(&version)
		if err == sql.ErrNoRows {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
		} else if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO consents (tenant_id, subject, purpose, granted, time, source, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, c := range cs {
			if _, err := stmt.ExecContext(ctx, tenantID, int64(c.Subject), c.Purpose, c.Granted, ts(c.Time), c.Source, ts(c.RecordedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	if privalytics.ErrorCode(err) == privalytics.ENOTFOUND {
		return 0, err
	} else if err != nil {
		return 0, fmt.Errorf("sqlite: record consents: %w", err)
	}
	return version, nil
}

// ConsentHistory lists one customer's records, oldest first.
func (s *DB) ConsentHistory(ctx context.Context, tenantID string, subject uint64) ([]privalytics.Consent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, subject, purpose, granted, time, source, recorded_at FROM consents WHERE tenant_id = ? AND subject = ? ORDER BY seq`, tenantID, int64(subject))
	if err != nil {
		return nil, fmt.Errorf("sqlite: consent history: %w", err)
	}
	defer rows.Close()
	out := []privalytics.Consent{}
	for rows.Next() {
		var (
			c        privalytics.Consent
			subj     int64
			at, recd string
		)
		if err := rows.Scan(&c.Seq, &subj, &c.Purpose, &c.Granted, &at, &c.Source, &recd); err != nil {
			return nil, fmt.Errorf("sqlite: consent history: %w", err)
		}
		c.Subject = uint64(subj)
		if c.Time, err = parseTS(at); err != nil {
			return nil, err
		}
		if c.RecordedAt, err = parseTS(recd); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ConsentDecisions folds the purpose's records in (time, seq) order, so the
// newest decision of each customer wins; the version is read in the same
// transaction, so it matches the decisions.
func (s *DB) ConsentDecisions(ctx context.Context, tenantID, purpose string) (map[uint64]bool, int64, error) {
	out := map[uint64]bool{}
	var version int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT consent_version FROM tenants WHERE id = ?`, tenantID).Scan(&version); err == sql.ErrNoRows {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
		} else if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT subject, granted FROM consents WHERE tenant_id = ? AND purpose = ? ORDER BY time, seq`, tenantID, purpose)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				subj    int64
				granted bool
			)
			if err := rows.Scan(&subj, &granted); err != nil {
				return err
			}
			out[uint64(subj)] = granted
		}
		return rows.Err()
	})
	if privalytics.ErrorCode(err) == privalytics.ENOTFOUND {
		return nil, 0, err
	} else if err != nil {
		return nil, 0, fmt.Errorf("sqlite: consent decisions: %w", err)
	}
	return out, version, nil
}

// ConsentVersion returns the tenant's consent version.
func (s *DB) ConsentVersion(ctx context.Context, tenantID string) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT consent_version FROM tenants WHERE id = ?`, tenantID).Scan(&v)
	if err == sql.ErrNoRows {
		return 0, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	} else if err != nil {
		return 0, fmt.Errorf("sqlite: consent version: %w", err)
	}
	return v, nil
}

// SetPrivacy replaces the tenant's privacy policy and bumps its consent version.
func (s *DB) SetPrivacy(ctx context.Context, tenantID string, p privalytics.PrivacyPolicy) (int64, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("sqlite: set privacy: %w", err)
	}
	var version int64
	err = s.db.QueryRowContext(ctx, `UPDATE tenants SET privacy = ?, consent_version = consent_version + 1 WHERE id = ? RETURNING consent_version`, string(raw), tenantID).Scan(&version)
	if err == sql.ErrNoRows {
		return 0, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	} else if err != nil {
		return 0, fmt.Errorf("sqlite: set privacy: %w", err)
	}
	return version, nil
}
