package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/privalytics/privalytics"
)

// RecordConsents appends the records and bumps the tenant's consent version in
// one transaction; the version's row lock orders concurrent recorders, so the
// version a reader sees always covers every record committed before it.
func (db *DB) RecordConsents(ctx context.Context, tenantID string, cs []privalytics.Consent) (int64, error) {
	var version int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE tenants SET consent_version = consent_version + 1 WHERE id = $1 RETURNING consent_version`, tenantID).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
		} else if err != nil {
			return err
		}
		rows := make([][]any, len(cs))
		for i, c := range cs {
			rows[i] = []any{tenantID, int64(c.Subject), c.Purpose, c.Granted, c.Time, c.Source, c.RecordedAt}
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"consents"}, []string{"tenant_id", "subject", "purpose", "granted", "time", "source", "recorded_at"}, pgx.CopyFromRows(rows))
		return err
	})
	if privalytics.ErrorCode(err) == privalytics.ENOTFOUND {
		return 0, err
	} else if err != nil {
		return 0, fmt.Errorf("postgres: record consents: %w", err)
	}
	return version, nil
}

// ConsentHistory lists one customer's records, oldest first.
func (db *DB) ConsentHistory(ctx context.Context, tenantID string, subject uint64) ([]privalytics.Consent, error) {
	rows, err := db.pool.Query(ctx, `SELECT seq, subject, purpose, granted, time, source, recorded_at FROM consents WHERE tenant_id = $1 AND subject = $2 ORDER BY seq`, tenantID, int64(subject))
	if err != nil {
		return nil, fmt.Errorf("postgres: consent history: %w", err)
	}
	defer rows.Close()
	out := []privalytics.Consent{}
	for rows.Next() {
		var (
			c    privalytics.Consent
			subj int64
		)
		if err := rows.Scan(&c.Seq, &subj, &c.Purpose, &c.Granted, &c.Time, &c.Source, &c.RecordedAt); err != nil {
			return nil, fmt.Errorf("postgres: consent history: %w", err)
		}
		c.Subject, c.Time, c.RecordedAt = uint64(subj), c.Time.UTC(), c.RecordedAt.UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// ConsentDecisions folds the purpose's records in (time, seq) order in one
// REPEATABLE READ transaction, so the version matches the decisions.
func (db *DB) ConsentDecisions(ctx context.Context, tenantID, purpose string) (map[uint64]bool, int64, error) {
	out := map[uint64]bool{}
	var version int64
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT consent_version FROM tenants WHERE id = $1`, tenantID).Scan(&version); errors.Is(err, pgx.ErrNoRows) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
		} else if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT subject, granted FROM consents WHERE tenant_id = $1 AND purpose = $2 ORDER BY time, seq`, tenantID, purpose)
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
		return nil, 0, fmt.Errorf("postgres: consent decisions: %w", err)
	}
	return out, version, nil
}

// ConsentVersion returns the tenant's consent version.
func (db *DB) ConsentVersion(ctx context.Context, tenantID string) (int64, error) {
	var v int64
	err := db.pool.QueryRow(ctx, `SELECT consent_version FROM tenants WHERE id = $1`, tenantID).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	} else if err != nil {
		return 0, fmt.Errorf("postgres: consent version: %w", err)
	}
	return v, nil
}

// SetPrivacy replaces the tenant's privacy policy and bumps its consent version.
func (db *DB) SetPrivacy(ctx context.Context, tenantID string, p privalytics.PrivacyPolicy) (int64, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("postgres: set privacy: %w", err)
	}
	var version int64
	err = db.pool.QueryRow(ctx, `UPDATE tenants SET privacy = $1, consent_version = consent_version + 1 WHERE id = $2 RETURNING consent_version`, raw, tenantID).Scan(&version)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	} else if err != nil {
		return 0, fmt.Errorf("postgres: set privacy: %w", err)
	}
	return version, nil
}
