package store

import (
	"context"
	"fmt"
	"time"
)

// Run is one sync pass, as sync_runs records it.
type Run struct {
	StartedAt, FinishedAt time.Time
	Events, Pages         int
	NewestEventAt         time.Time // zero when the run wrote nothing
	APIRequests           int
	APIErrors             int
	Quarantined           int
	Error                 string // empty when the run succeeded
}

// RecordRun stores one sync pass for the sync-health dashboard. Rows older
// than keep are deleted on the way (0 keeps everything).
func (s *Store) RecordRun(ctx context.Context, r Run, keep time.Duration) error {
	var errText *string
	if r.Error != "" {
		errText = &r.Error
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO sync_runs (started_at, finished_at, events, pages, newest_event_at, api_requests, api_errors, quarantined, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.StartedAt, r.FinishedAt, r.Events, r.Pages, timestamptz(r.NewestEventAt), r.APIRequests, r.APIErrors, r.Quarantined, errText)
	if err != nil {
		return fmt.Errorf("record sync run: %w", err)
	}
	if keep > 0 {
		if _, err := s.pool.Exec(ctx, `DELETE FROM sync_runs WHERE finished_at < $1`, r.FinishedAt.Add(-keep)); err != nil {
			return fmt.Errorf("prune sync runs: %w", err)
		}
	}
	return nil
}
