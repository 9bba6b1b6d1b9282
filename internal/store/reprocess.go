package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/syncer-audit/syncer/internal/model"
)

// ReprocessResult counts what Reprocess rebuilt.
type ReprocessResult struct {
	Events      int // Vault events read from the archive
	Projected   int // rows now in vault_events
	Quarantined int // projection problems now in event_quarantine
}

// Reprocess rebuilds the Vault tables (vault_events, vault_event_keys,
// vault_actors) and the projection quarantine from the raw archive, with
// the projection of this binary: after an upgrade that understands more,
// events quarantined before may now project. It runs in one transaction,
// so readers see the old tables or the new ones, and running it again
// gives the same tables. Hold the writer lock while it runs.
func (s *Store) Reprocess(ctx context.Context, chunk int) (ReprocessResult, error) {
	var res ReprocessResult
	if chunk <= 0 {
		chunk = 1000
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("reprocess: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	_, err = tx.Exec(ctx, `
		TRUNCATE vault_event_keys, vault_events, vault_actors;
		DELETE FROM event_quarantine WHERE kind = 'projection';`)
	if err != nil {
		return res, fmt.Errorf("reprocess: clear the Vault tables: %w", err)
	}
	after := ""
	for {
		events, err := readVaultArchive(ctx, tx, after, chunk)
		if err != nil {
			return res, err
		}
		if len(events) == 0 {
			break
		}
		after = events[len(events)-1].ID
		res.Events += len(events)
		rows := model.Project(events)
		res.Projected += len(rows.Vault)
		res.Quarantined += len(rows.Quarantine)
		b := &pgx.Batch{}
		queueActors(b, rows.Actors)
		queueVault(b, rows.Vault)
		queueKeys(b, rows.Keys)
		queueQuarantine(b, rows.Quarantine)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return res, fmt.Errorf("reprocess: write after %s: %w", after, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("reprocess: commit: %w", err)
	}
	return res, nil
}

// readVaultArchive reads the next chunk of archived Vault events, in id
// order, as events again. Events whose envelope was invalid (no type or
// time, JSON PostgreSQL refused) stay in the quarantine where they are and
// are not read, as the write path does not project them either.
func readVaultArchive(ctx context.Context, tx pgx.Tx, after string, chunk int) ([]model.Event, error) {
	rows, err := tx.Query(ctx, `
		SELECT id, event_type, created_at, data, context, extra, original
		FROM workos_events w
		WHERE event_type = ANY($1) AND id > $2
		  AND NOT EXISTS (SELECT FROM event_quarantine q WHERE q.event_id = w.id AND q.kind = 'envelope')
		ORDER BY id LIMIT $3`, model.VaultTypes(), after, chunk)
	if err != nil {
		return nil, fmt.Errorf("reprocess: read the archive after %q: %w", after, err)
	}
	var (
		events               []model.Event
		ev                   model.Event
		created              pgtype.Timestamptz
		data, context, extra []byte
		original             []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&ev.ID, &ev.Type, &created, &data, &context, &extra, &original}, func() error {
		ev.CreatedAt = created.Time
		ev.Data, ev.Context, ev.Extra = clone(data), clone(context), clone(extra)
		ev.Raw = clone(original)
		if ev.Raw == nil {
			ev.Raw = envelope(ev)
		}
		events = append(events, ev)
		ev = model.Event{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reprocess: read the archive after %q: %w", after, err)
	}
	return events, nil
}

func clone(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	return append(json.RawMessage(nil), b...)
}

// envelope rebuilds an event's JSON from its archived columns, for the raw
// bytes of a quarantine row.
func envelope(ev model.Event) []byte {
	m := map[string]any{"object": "event", "id": ev.ID, "event": ev.Type, "created_at": ev.CreatedAt}
	if ev.Data != nil {
		m["data"] = ev.Data
	}
	if ev.Context != nil {
		m["context"] = ev.Context
	}
	var extra map[string]json.RawMessage
	if json.Unmarshal(ev.Extra, &extra) == nil {
		for k, v := range extra {
			if _, taken := m[k]; !taken {
				m[k] = v
			}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return []byte(`{}`)
	}
	return b
}
