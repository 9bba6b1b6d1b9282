package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Status is what an operator asks first: where each stream stands, how
// fresh the archive is, and what it holds.
type Status struct {
	Cursors []CursorStatus
	// Newest is the newest archived event; zero ID when the archive is
	// empty.
	NewestID   string
	NewestAt   time.Time
	Archived   int64
	Quarantine []Count // by kind
	Sanitized  int64
	VaultTypes []Count // vault_events by event type
	ByType     []Count // workos_events by event type
	Gaps       []GapStatus
}

// GapStatus is one row of sync_gaps.
type GapStatus struct {
	Stream     string
	From, To   time.Time
	Reason     string
	RecordedAt time.Time
}

// CursorStatus is one row of sync_cursors.
type CursorStatus struct {
	Stream     string
	AfterID    string
	EventTypes []string
	UpdatedAt  time.Time
	RangeEnd   *time.Time // set for a backfill
	Done       bool
}

// Count is a labelled number.
type Count struct {
	Label string
	N     int64
}

// Status reads the state of the archive.
func (s *Store) Status(ctx context.Context) (Status, error) {
	var st Status
	rows, err := s.pool.Query(ctx, `SELECT stream, coalesce(after_id, ''), event_types, updated_at, range_end, done FROM sync_cursors ORDER BY stream`)
	if err != nil {
		return st, fmt.Errorf("status: cursors: %w", err)
	}
	st.Cursors, err = pgx.CollectRows(rows, pgx.RowToStructByPos[CursorStatus])
	if err != nil {
		return st, fmt.Errorf("status: cursors: %w", err)
	}
	err = s.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE sanitized) FROM workos_events`).Scan(&st.Archived, &st.Sanitized)
	if err != nil {
		return st, fmt.Errorf("status: archive: %w", err)
	}
	if st.NewestID, st.NewestAt, err = s.Newest(ctx); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT stream, gap_from, gap_to, reason, recorded_at FROM sync_gaps ORDER BY gap_from`)
	if err != nil {
		return st, fmt.Errorf("status: gaps: %w", err)
	}
	st.Gaps, err = pgx.CollectRows(rows, pgx.RowToStructByPos[GapStatus])
	if err != nil {
		return st, fmt.Errorf("status: gaps: %w", err)
	}
	for _, q := range []struct {
		dst *[]Count
		sql string
	}{
		{&st.VaultTypes, `SELECT event_type, count(*) FROM vault_events GROUP BY 1 ORDER BY 1`},
		{&st.ByType, `SELECT coalesce(event_type, '(none)'), count(*) FROM workos_events GROUP BY 1 ORDER BY 1`},
		{&st.Quarantine, `SELECT kind, count(*) FROM event_quarantine GROUP BY 1 ORDER BY 1`},
	} {
		rows, err := s.pool.Query(ctx, q.sql)
		if err != nil {
			return st, fmt.Errorf("status: %w", err)
		}
		*q.dst, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Count])
		if err != nil {
			return st, fmt.Errorf("status: %w", err)
		}
	}
	return st, nil
}

// Newest returns the newest archived event by id (the newest the cursor
// has passed) and its time; "" when the archive is empty. One index
// probe, unlike Status, which counts the whole archive.
func (s *Store) Newest(ctx context.Context) (id string, at time.Time, err error) {
	var createdAt *time.Time
	err = s.pool.QueryRow(ctx, `SELECT id, created_at FROM workos_events ORDER BY id DESC LIMIT 1`).Scan(&id, &createdAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("newest event: %w", err)
	}
	if createdAt != nil {
		at = *createdAt
	}
	return id, at, nil
}

// AccessRow is one row of the vault_access_log view.
type AccessRow struct {
	OccurredAt  time.Time
	EventID     string
	EventType   string
	ActorID     *string
	ActorSource *string
	ActorName   *string
	KVName      *string
	KeyIDs      []string
	KeyName     *string
	KeyContext  json.RawMessage
	OrgID       *string
	KeyProvider *string
}

// LatestAccess returns the newest n rows of vault_access_log, newest last.
func (s *Store) LatestAccess(ctx context.Context, n int) ([]AccessRow, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT * FROM (
			SELECT occurred_at, event_id, event_type, actor_id, actor_source, actor_name,
			       kv_name, key_ids, key_name, key_context, organization_id, key_provider
			FROM vault_access_log ORDER BY occurred_at DESC, event_id DESC LIMIT $1
		) newest ORDER BY occurred_at, event_id`, n)
	if err != nil {
		return nil, fmt.Errorf("latest access: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[AccessRow])
	if err != nil {
		return nil, fmt.Errorf("latest access: %w", err)
	}
	return out, nil
}
