package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncer-audit/syncer/internal/model"
)

// ErrCursorConflict means the stored cursor moved while a page was being
// written: another writer is following the same stream. The page was rolled
// back; nothing was written.
var ErrCursorConflict = errors.New("cursor moved under us: another syncer writes this stream")

// Store writes events and cursors to PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database. It does not migrate; see MigrateUp.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "syncer"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes every connection.
func (s *Store) Close() { s.pool.Close() }

// Pool exposes the connection pool for read-only reports and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Cursor returns the stored cursor of stream: "" when the stream has none
// yet.
func (s *Store) Cursor(ctx context.Context, stream string) (string, error) {
	var after *string
	err := s.pool.QueryRow(ctx, `SELECT after_id FROM sync_cursors WHERE stream = $1`, stream).Scan(&after)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && after == nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read cursor %s: %w", stream, err)
	}
	return *after, nil
}

// WritePage archives the page's events, projects the new ones into the
// audit tables, and moves the cursor from page.Prev to page.Next, all in
// one transaction: after a crash at any instant, either all of it is there
// or none. Events already archived are left as they are (the first content
// wins); one that comes back with other content is quarantined as a
// conflict. If the stored cursor is no longer page.Prev, nothing is
// written and the error wraps ErrCursorConflict.
func (s *Store) WritePage(ctx context.Context, page model.Page) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("write page after %q: begin: %w", page.Prev, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := writePage(ctx, tx, page); err != nil {
		return fmt.Errorf("write page after %q: %w", page.Prev, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("write page after %q: commit: %w", page.Prev, err)
	}
	return nil
}

func writePage(ctx context.Context, tx pgx.Tx, page model.Page) error {
	archive, quarantine := splitArchivable(page.Events)
	fresh, conflicts, err := archiveEvents(ctx, tx, archive)
	if err != nil {
		return err
	}
	quarantine = append(quarantine, conflicts...)
	rows := model.Project(fresh)
	rows.Quarantine = append(rows.Quarantine, quarantine...)

	b := &pgx.Batch{}
	queueActors(b, rows.Actors)
	queueVault(b, rows.Vault)
	queueKeys(b, rows.Keys)
	queueQuarantine(b, rows.Quarantine)
	cursor := b.Queue(`
		INSERT INTO sync_cursors (stream, after_id, event_types, updated_at)
		VALUES ($1, $2, $3, now())
		ON CONFLICT (stream) DO UPDATE
		SET after_id = excluded.after_id, event_types = excluded.event_types, updated_at = now()
		WHERE sync_cursors.after_id IS NOT DISTINCT FROM $4`,
		page.Stream, nullIfEmpty(page.Next), page.EventTypes, nullIfEmpty(page.Prev))
	var moved bool
	cursor.Exec(func(tag pgconn.CommandTag) error {
		moved = tag.RowsAffected() == 1
		return nil
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	if !moved {
		return ErrCursorConflict
	}
	return nil
}

// splitArchivable separates the events that can be archived (they have an
// id) from those that can only be quarantined, and drops repeats of an id
// within the page, quarantining a repeat whose content differs.
func splitArchivable(events []model.Event) (archive []model.Event, quarantine []model.Quarantined) {
	seen := make(map[string]int, len(events))
	archive = make([]model.Event, 0, len(events))
	for _, ev := range events {
		if ev.ID == "" {
			quarantine = append(quarantine, model.NewQuarantined(ev, model.QuarantineEnvelope, ev.Problem))
			continue
		}
		if i, dup := seen[ev.ID]; dup {
			if !bytes.Equal(archive[i].Raw, ev.Raw) {
				quarantine = append(quarantine, model.NewQuarantined(ev, model.QuarantineConflict, "id repeated within a page with other content"))
			}
			continue
		}
		seen[ev.ID] = len(archive)
		archive = append(archive, ev)
	}
	return archive, quarantine
}

// archiveEvents inserts the events into workos_events and returns the ones
// that were new, and conflict rows for those already stored with other
// content. One statement, whatever the number of events.
func archiveEvents(ctx context.Context, tx pgx.Tx, events []model.Event) (fresh []model.Event, conflicts []model.Quarantined, err error) {
	if len(events) == 0 {
		return nil, nil, nil
	}
	n := len(events)
	var (
		ids, types, data, contexts, extras = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		created                            = make([]pgtype.Timestamptz, n)
		sanitized                          = make([]bool, n)
		originals                          = make([][]byte, n)
	)
	byID := make(map[string]int, n)
	for i, ev := range events {
		byID[ev.ID] = i
		ids[i], types[i] = ev.ID, ev.Type
		data[i], contexts[i], extras[i] = string(ev.Data), string(ev.Context), string(ev.Extra)
		created[i] = pgtype.Timestamptz{Time: ev.CreatedAt, Valid: !ev.CreatedAt.IsZero()}
		sanitized[i] = ev.Sanitized
		if ev.Sanitized {
			originals[i] = ev.Raw
		}
	}
	rows, err := tx.Query(ctx, `
		WITH input AS (
			SELECT id, nullif(event_type, '') AS event_type, created_at,
			       nullif(data, '')::jsonb AS data, nullif(context, '')::jsonb AS context,
			       nullif(extra, '')::jsonb AS extra, sanitized, original
			FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::bytea[])
			     AS t(id, event_type, created_at, data, context, extra, sanitized, original)
		), inserted AS (
			INSERT INTO workos_events (id, event_type, created_at, data, context, extra, sanitized, original)
			SELECT * FROM input
			ON CONFLICT (id) DO NOTHING
			RETURNING id
		)
		SELECT id, true FROM inserted
		UNION ALL
		SELECT i.id, false
		FROM input i JOIN workos_events w ON w.id = i.id
		WHERE (w.event_type, w.created_at, w.data, w.context)
		      IS DISTINCT FROM (i.event_type, i.created_at, i.data, i.context)`,
		ids, types, created, data, contexts, extras, sanitized, originals)
	if err != nil {
		return nil, nil, fmt.Errorf("archive events: %w", err)
	}
	var (
		id    string
		isNew bool
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &isNew}, func() error {
		ev := events[byID[id]]
		if isNew {
			fresh = append(fresh, ev)
		} else {
			conflicts = append(conflicts, model.NewQuarantined(ev, model.QuarantineConflict, "id already archived with other content"))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("archive events: %w", err)
	}
	// RETURNING gives no order; keep the page's.
	slices.SortFunc(fresh, func(a, b model.Event) int { return byID[a.ID] - byID[b.ID] })
	return fresh, conflicts, nil
}

func queueActors(b *pgx.Batch, actors []model.ActorSeen) {
	if len(actors) == 0 {
		return
	}
	n := len(actors)
	ids, sources, names := make([]string, n), make([]string, n), make([]string, n)
	first, last := make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	for i, a := range actors {
		ids[i], sources[i], names[i] = a.ID, a.Source, a.Name
		first[i] = pgtype.Timestamptz{Time: a.FirstSeen, Valid: true}
		last[i] = pgtype.Timestamptz{Time: a.LastSeen, Valid: true}
	}
	// The newest event names the actor; an older page read late does not
	// rename it back.
	b.Queue(`
		INSERT INTO vault_actors AS a (actor_id, actor_source, actor_name, first_seen_at, last_seen_at)
		SELECT id, nullif(source, ''), nullif(name, ''), first_seen, last_seen
		FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
		     AS t(id, source, name, first_seen, last_seen)
		ON CONFLICT (actor_id) DO UPDATE SET
			actor_source  = CASE WHEN excluded.last_seen_at >= a.last_seen_at THEN excluded.actor_source ELSE a.actor_source END,
			actor_name    = CASE WHEN excluded.last_seen_at >= a.last_seen_at THEN excluded.actor_name ELSE a.actor_name END,
			first_seen_at = least(a.first_seen_at, excluded.first_seen_at),
			last_seen_at  = greatest(a.last_seen_at, excluded.last_seen_at)`,
		ids, sources, names, first, last)
}

func queueVault(b *pgx.Batch, recs []model.VaultRecord) {
	if len(recs) == 0 {
		return
	}
	n := len(recs)
	var (
		ids, types, actorIDs, sources, names = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		kvNames, keyIDs, keyNames, contexts  = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		orgs, providers                      = make([]string, n), make([]string, n)
		occurred                             = make([]pgtype.Timestamptz, n)
		verified                             = make([]pgtype.Bool, n)
	)
	for i, r := range recs {
		ids[i], types[i] = r.EventID, r.EventType
		occurred[i] = pgtype.Timestamptz{Time: r.OccurredAt, Valid: true}
		actorIDs[i], sources[i], names[i] = r.Actor.ID, r.Source, r.Name
		kvNames[i], keyIDs[i], keyNames[i], contexts[i] = r.KVName, r.KeyID, r.KeyName, string(r.KeyContext)
		orgs[i], providers[i] = r.OrganizationID, r.KeyProvider
		if r.Verified != nil {
			verified[i] = pgtype.Bool{Bool: *r.Verified, Valid: true}
		}
	}
	b.Queue(`
		INSERT INTO vault_events (event_id, event_type, occurred_at, actor_id, actor_source, actor_name,
		                          kv_name, key_id, key_name, key_context, organization_id, key_provider, verified)
		SELECT id, type, occurred, nullif(actor, ''), nullif(source, ''), nullif(name, ''),
		       nullif(kv, ''), nullif(key_id, ''), nullif(key_name, ''), nullif(ctx, '')::jsonb,
		       nullif(org, ''), nullif(provider, ''), verified
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
		            $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bool[])
		     AS t(id, type, occurred, actor, source, name, kv, key_id, key_name, ctx, org, provider, verified)
		ON CONFLICT (event_id) DO NOTHING`,
		ids, types, occurred, actorIDs, sources, names, kvNames, keyIDs, keyNames, contexts, orgs, providers, verified)
}

func queueKeys(b *pgx.Batch, keys []model.EventKey) {
	if len(keys) == 0 {
		return
	}
	events, ids := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		events[i], ids[i] = k.EventID, k.KeyID
	}
	b.Queue(`
		INSERT INTO vault_event_keys (event_id, key_id)
		SELECT * FROM unnest($1::text[], $2::text[])
		ON CONFLICT DO NOTHING`, events, ids)
}

func queueQuarantine(b *pgx.Batch, q []model.Quarantined) {
	if len(q) == 0 {
		return
	}
	n := len(q)
	fps, ids, types, kinds, reasons := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	raws := make([][]byte, n)
	for i, r := range q {
		fps[i], ids[i], types[i], kinds[i], reasons[i], raws[i] = r.Fingerprint, r.EventID, r.EventType, r.Kind, r.Reason, r.Raw
	}
	b.Queue(`
		INSERT INTO event_quarantine (fingerprint, event_id, event_type, kind, reason, raw)
		SELECT fp, nullif(id, ''), nullif(type, ''), kind, reason, raw
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[])
		     AS t(fp, id, type, kind, reason, raw)
		ON CONFLICT (fingerprint) DO NOTHING`,
		fps, ids, types, kinds, reasons, raws)
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
