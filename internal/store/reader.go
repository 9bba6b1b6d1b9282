package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// readable are the tables and views a dashboard or an analyst reads.
var readable = []string{
	"workos_events", "vault_events", "vault_event_keys", "vault_actors", "vault_access_log",
	"event_quarantine", "sync_cursors", "sync_gaps", "sync_runs",
	"vault_key_access", "vault_dashboard_reads", "vault_off_hours_access", "vault_first_access",
}

// GrantReader makes role a read-only user of the audit trail: SELECT on
// the audit tables and views, nothing else. The role is created if it does
// not exist, with LOGIN and password when password is not empty, NOLOGIN
// otherwise (for granting to other roles). Running it again is harmless
// and sets the password anew.
func (s *Store) GrantReader(ctx context.Context, role, password string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("grant reader: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return fmt.Errorf("grant reader: %w", err)
	}
	// Utility statements take no bind parameters: let the server quote.
	var create string
	switch {
	case password != "" && !exists:
		err = tx.QueryRow(ctx, `SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)`, role, password).Scan(&create)
	case password != "":
		err = tx.QueryRow(ctx, `SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)`, role, password).Scan(&create)
	case !exists:
		err = tx.QueryRow(ctx, `SELECT format('CREATE ROLE %I NOLOGIN', $1::text)`, role).Scan(&create)
	}
	if err != nil {
		return fmt.Errorf("grant reader: %w", err)
	}
	ident := pgx.Identifier{role}.Sanitize()
	stmts := []string{create,
		`GRANT CONNECT ON DATABASE ` + pgx.Identifier{s.pool.Config().ConnConfig.Database}.Sanitize() + ` TO ` + ident,
		`GRANT USAGE ON SCHEMA public TO ` + ident,
	}
	for _, t := range readable {
		stmts = append(stmts, `GRANT SELECT ON `+pgx.Identifier{t}.Sanitize()+` TO `+ident)
	}
	for _, stmt := range stmts {
		if stmt == "" {
			continue
		}
		if _, err := tx.Exec(ctx, stmt); err != nil {
			// The statement may hold the password: name the role only.
			return fmt.Errorf("grant reader %s: %w", role, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("grant reader: commit: %w", err)
	}
	return nil
}
