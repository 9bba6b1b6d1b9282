package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
	pool    *pgxpool.Pool
	observe func(WriteStats)
}

// WriteStats describes one committed page, for metrics.
type WriteStats struct {
	Duration time.Duration // of the transaction, retries included
	// Fresh counts the events archived for the first time, by type.
	Fresh map[string]int
	// Quarantined counts the quarantine rows the page produced, by kind
	// (rows already recorded by an earlier read are counted again).
	Quarantined map[string]int
}

// Observe makes f see every committed page. Set it before writing.
func (s *Store) Observe(f func(WriteStats)) { s.observe = f }

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

// Streams returns every stream's stored state, the main one and any
// backfills, by name.
func (s *Store) Streams(ctx context.Context) ([]model.Stream, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT stream, coalesce(after_id, ''), after_created_at, event_types, range_start, range_end, done
		FROM sync_cursors ORDER BY stream`)
	if err != nil {
		return nil, fmt.Errorf("read streams: %w", err)
	}
	var (
		st                  model.Stream
		afterAt, start, end pgtype.Timestamptz
	)
	var out []model.Stream
	_, err = pgx.ForEachRow(rows, []any{&st.Name, &st.AfterID, &afterAt, &st.EventTypes, &start, &end, &st.Done}, func() error {
		st.AfterTime, st.RangeStart, st.RangeEnd = afterAt.Time, start.Time, end.Time
		out = append(out, st)
		st = model.Stream{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read streams: %w", err)
	}
	return out, nil
}

// WritePage archives the page's events, projects the new ones into the
// audit tables, records its gaps and moves the stream's cursor from
// page.Prev, all in one transaction: after a crash at any instant, either
// all of it is there or none. Events already archived are left as they are
// (the first content wins); one that comes back with other content is
// quarantined as a conflict. If the stored cursor is no longer page.Prev,
// nothing is written and the error wraps ErrCursorConflict.
//
// An event whose JSON PostgreSQL refuses although it is valid JSON (a
// number beyond numeric's range, say) fails the whole page; the page is
// then written again with that event's JSON left out, its original bytes
// kept, and the reason quarantined, so one event cannot wedge the stream.
func (s *Store) WritePage(ctx context.Context, page model.Page) error {
	start := time.Now()
	stats, err := s.writeTx(ctx, page)
	// Concurrent writers (backfill windows) may meet on an event both read
	// at a window's edge: a deadlock or serialization failure is retried.
	for try := 1; try <= 3 && isRetryable(err); try++ {
		stats, err = s.writeTx(ctx, page)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		if n := s.isolateRejected(ctx, page.Events); n > 0 {
			stats, err = s.writeTx(ctx, page)
		}
	}
	if err != nil {
		return fmt.Errorf("write page after %q: %w", page.Prev, err)
	}
	if s.observe != nil {
		stats.Duration = time.Since(start)
		s.observe(stats)
	}
	return nil
}

func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

func (s *Store) writeTx(ctx context.Context, page model.Page) (WriteStats, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return WriteStats{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	stats, err := writePage(ctx, tx, page)
	if err != nil {
		return stats, err
	}
	if err := tx.Commit(ctx); err != nil {
		return stats, fmt.Errorf("commit: %w", err)
	}
	return stats, nil
}

// isolateRejected asks PostgreSQL, event by event, which JSON it refuses,
// and strips that JSON from the event (the bytes stay in Raw, which is
// stored as the original). It returns how many events it changed.
func (s *Store) isolateRejected(ctx context.Context, events []model.Event) int {
	changed := 0
	for i := range events {
		ev := &events[i]
		for _, part := range []struct {
			name string
			v    *json.RawMessage
		}{{"data", &ev.Data}, {"context", &ev.Context}, {"extra fields", &ev.Extra}} {
			if len(*part.v) == 0 {
				continue
			}
			var ok bool
			err := s.pool.QueryRow(ctx, `SELECT $1::text::jsonb IS NOT NULL`, string(*part.v)).Scan(&ok)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				*part.v = nil
				ev.Sanitized = true
				reason := fmt.Sprintf("%s: PostgreSQL refuses it: %s", part.name, pgErr.Message)
				ev.Problem = strings.Trim(ev.Problem+"; "+reason, "; ")
				changed++
			}
		}
	}
	return changed
}

func writePage(ctx context.Context, tx pgx.Tx, page model.Page) (WriteStats, error) {
	stats := WriteStats{Fresh: map[string]int{}, Quarantined: map[string]int{}}
	var (
		fresh      []model.Event
		quarantine []model.Quarantined
	)
	// An id repeated within the page goes in a later round, so that it
	// meets its first occurrence the way a repeat across pages does.
	rounds, noID := splitRounds(page.Events)
	for _, ev := range noID {
		quarantine = append(quarantine, model.NewQuarantined(ev, model.QuarantineEnvelope, ev.Problem))
	}
	for _, round := range rounds {
		f, conflicts, err := archiveEvents(ctx, tx, round)
		if err != nil {
			return stats, err
		}
		fresh = append(fresh, f...)
		quarantine = append(quarantine, conflicts...)
	}
	rows := model.Project(fresh)
	rows.Quarantine = append(rows.Quarantine, quarantine...)
	for _, ev := range fresh {
		stats.Fresh[ev.Type]++
	}
	for _, q := range rows.Quarantine {
		stats.Quarantined[q.Kind]++
	}

	b := &pgx.Batch{}
	// This commit does not wait for its WAL flush. If PostgreSQL itself
	// crashes, the last pages (a fraction of a second) are lost whole,
	// their cursor move with them, and the next run reads them again from
	// the API: nothing is lost or doubled, because rows and cursor share
	// the transaction. A flush per page would bound a sync to the disk's
	// fsync rate. SET LOCAL, not a connection setting: poolers such as
	// PgBouncer refuse unknown startup parameters.
	b.Queue(`SET LOCAL synchronous_commit = off`)
	queueActors(b, rows.Actors)
	queueVault(b, rows.Vault)
	queueKeys(b, rows.Keys)
	queueQuarantine(b, rows.Quarantine)
	queueGaps(b, page.Stream.Name, page.Gaps)
	st := page.Stream
	cursor := b.Queue(`
		INSERT INTO sync_cursors AS c (stream, after_id, after_created_at, event_types, range_start, range_end, done, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now())
		ON CONFLICT (stream) DO UPDATE
		SET after_id = excluded.after_id, after_created_at = excluded.after_created_at,
		    event_types = excluded.event_types, range_start = excluded.range_start,
		    range_end = excluded.range_end, done = excluded.done, updated_at = now()
		WHERE c.after_id IS NOT DISTINCT FROM $8`,
		st.Name, nullIfEmpty(st.AfterID), timestamptz(st.AfterTime), st.EventTypes,
		timestamptz(st.RangeStart), timestamptz(st.RangeEnd), st.Done, nullIfEmpty(page.Prev))
	var moved bool
	cursor.Exec(func(tag pgconn.CommandTag) error {
		moved = tag.RowsAffected() == 1
		return nil
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return stats, err
	}
	if !moved {
		return stats, ErrCursorConflict
	}
	return stats, nil
}

// splitRounds puts the events with an id in rounds in which no id repeats,
// keeping page order, and returns apart those without an id, which can only
// be quarantined.
func splitRounds(events []model.Event) (rounds [][]model.Event, noID []model.Event) {
	seen := make(map[string]int, len(events))
	for _, ev := range events {
		if ev.ID == "" {
			noID = append(noID, ev)
			continue
		}
		r := seen[ev.ID]
		seen[ev.ID] = r + 1
		if r == len(rounds) {
			rounds = append(rounds, make([]model.Event, 0, len(events)))
		}
		rounds[r] = append(rounds[r], ev)
	}
	return rounds, noID
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
		WHERE (w.event_type, w.created_at, w.data, w.context, w.extra)
		      IS DISTINCT FROM (i.event_type, i.created_at, i.data, i.context, i.extra)`,
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
			conflicts = append(conflicts, model.NewQuarantined(ev, model.QuarantineConflict, "id seen again with other content; the first is kept"))
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
	// One order for every writer, so that concurrent pages lock the
	// actors' rows in the same order and cannot deadlock on them.
	actors = slices.SortedFunc(slices.Values(actors), func(a, b model.ActorSeen) int { return strings.Compare(a.ID, b.ID) })
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
			actor_source  = CASE WHEN excluded.last_seen_at >= a.last_seen_at THEN coalesce(excluded.actor_source, a.actor_source) ELSE a.actor_source END,
			actor_name    = CASE WHEN excluded.last_seen_at >= a.last_seen_at THEN coalesce(excluded.actor_name, a.actor_name) ELSE a.actor_name END,
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

func queueGaps(b *pgx.Batch, stream string, gaps []model.Gap) {
	for _, g := range gaps {
		b.Queue(`INSERT INTO sync_gaps (stream, gap_from, gap_to, reason) VALUES ($1, $2, $3, $4)`,
			stream, g.From, g.To, g.Reason)
	}
}

func timestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
