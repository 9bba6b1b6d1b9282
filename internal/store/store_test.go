package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncer-audit/syncer/internal/model"
	"github.com/syncer-audit/syncer/internal/pgtest"
	"github.com/syncer-audit/syncer/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	st, err := store.Open(context.Background(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, st.Pool()
}

// decode builds events from envelopes.
func decode(t *testing.T, raws ...string) []model.Event {
	t.Helper()
	evs := make([]model.Event, len(raws))
	for i, raw := range raws {
		ev, err := model.DecodeEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	return evs
}

// fixtures loads the model's golden inputs: every Vault type and every odd
// envelope the decoder knows about.
func fixtures(t *testing.T) []model.Event {
	t.Helper()
	files, err := filepath.Glob("../model/testdata/events/*.json")
	if err != nil || len(files) < 20 {
		t.Fatalf("fixtures: %v (%d files)", err, len(files))
	}
	var raws []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, strings.TrimRight(string(b), "\n"))
	}
	return decode(t, raws...)
}

func count(t *testing.T, db *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func page(prev, next string, evs []model.Event) model.Page {
	return model.Page{Stream: model.Stream{Name: "events", AfterID: next, EventTypes: model.VaultTypes()}, Prev: prev, Events: evs}
}

// cursor is the stored cursor of the main stream.
func cursor(t *testing.T, st *store.Store) string {
	t.Helper()
	streams, err := st.Streams(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		if s.Name == "events" {
			return s.AfterID
		}
	}
	return ""
}

func TestWritePageArchivesProjectsAndMovesTheCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, db := open(t)
	evs := fixtures(t)
	if err := st.WritePage(ctx, page("", "event_99", evs)); err != nil {
		t.Fatal(err)
	}
	withID := 0
	for _, ev := range evs {
		if ev.ID != "" {
			withID++
		}
	}
	if got := count(t, db, `SELECT count(*) FROM workos_events`); got != withID {
		t.Errorf("archived %d events; want every one with an id: %d", got, withID)
	}
	if got := count(t, db, `SELECT count(DISTINCT event_type) FROM vault_events`); got != 12 {
		t.Errorf("vault_events has %d types; want all 12", got)
	}
	// vault.dek.read's key_ids [dek_01, dek_02, dek_01] gives two key rows.
	if got := count(t, db, `SELECT count(*) FROM vault_event_keys WHERE event_id = 'event_01JQ3ZK0000000000000000009'`); got != 2 {
		t.Errorf("dek.read key rows = %d; want 2", got)
	}
	var keyIDs []string
	err := db.QueryRow(ctx, `SELECT key_ids FROM vault_access_log WHERE event_id = 'event_01JQ3ZK0000000000000000009'`).Scan(&keyIDs)
	if err != nil || !slices.Equal(keyIDs, []string{"dek_01", "dek_02"}) {
		t.Errorf("access log key_ids = %v, %v", keyIDs, err)
	}
	if got := count(t, db, `SELECT count(*) FROM vault_access_log WHERE key_ids = '{}'`); got == 0 {
		t.Error("events that touch no key should show an empty key_ids array")
	}
	// The byok events have no actor.
	if got := count(t, db, `SELECT count(*) FROM vault_events WHERE event_type LIKE 'vault.byok_key.%' AND actor_id IS NULL`); got != 2 {
		t.Errorf("byok events without actor = %d; want 2", got)
	}
	if cur := cursor(t, st); cur != "event_99" {
		t.Errorf("cursor = %q; want event_99", cur)
	}
	// Re-reading the same page (as after a crash between commit and the
	// next fetch) adds nothing.
	before := tableCounts(t, db)
	if err := st.WritePage(ctx, page("event_99", "event_99", evs)); err != nil {
		t.Fatal(err)
	}
	if after := tableCounts(t, db); after != before {
		t.Errorf("re-reading a page changed the tables: %s -> %s", before, after)
	}
}

func tableCounts(t *testing.T, db *pgxpool.Pool) string {
	t.Helper()
	var out []string
	for _, table := range []string{"workos_events", "vault_events", "vault_event_keys", "vault_actors", "event_quarantine"} {
		out = append(out, fmt.Sprintf("%s=%d", table, count(t, db, `SELECT count(*) FROM `+table)))
	}
	return strings.Join(out, " ")
}

func TestBadInputIsKeptFlaggedAndQuarantined(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, db := open(t)
	if err := st.WritePage(ctx, page("", "event_99", fixtures(t))); err != nil {
		t.Fatal(err)
	}
	// NUL and invalid UTF-8: stored with U+FFFD, flagged, original kept.
	var name, kv string
	var original []byte
	err := db.QueryRow(ctx, `SELECT v.actor_name, v.kv_name, w.original FROM vault_events v JOIN workos_events w ON w.id = v.event_id
		WHERE v.event_id = 'event_01JQ3ZK0000000000000000019' AND w.sanitized`).Scan(&name, &kv, &original)
	if err != nil || name != "Eve\uFFFDil" || kv != "a\uFFFDb" || !strings.Contains(string(original), `Eve\u0000il`) {
		t.Errorf("NUL event: name %q kv %q original %q err %v", name, kv, original, err)
	}
	err = db.QueryRow(ctx, `SELECT w.original FROM workos_events w WHERE id = 'event_01JQ3ZK0000000000000000020' AND sanitized`).Scan(&original)
	if err != nil || !strings.Contains(string(original), "bad \xff\xfe utf8") {
		t.Errorf("invalid UTF-8 event: original %q, %v", original, err)
	}
	// Each unprojectable event: archived, and quarantined with its reason.
	for id, reason := range map[string]string{
		"event_01JQ3ZK0000000000000000015": "missing data.actor_id",
		"event_01JQ3ZK0000000000000000016": "data.key_ids: want array, got string",
		"event_01JQ3ZK0000000000000000017": "data.actor_name: want string, got number",
		"event_01JQ3ZK0000000000000000018": "data.key_context: want object",
		"event_01JQ3ZK0000000000000000022": `created_at: unrecognised timestamp "yesterday"`,
	} {
		if got := count(t, db, `SELECT count(*) FROM event_quarantine q JOIN workos_events w ON w.id = q.event_id
			WHERE q.event_id = $1 AND q.reason = $2`, id, reason); got != 1 {
			t.Errorf("%s: want it archived and quarantined for %q", id, reason)
		}
		if got := count(t, db, `SELECT count(*) FROM vault_events WHERE event_id = $1`, id); got != 0 {
			t.Errorf("%s is in vault_events; want it only in quarantine", id)
		}
	}
	// Envelopes with no id cannot be archived; their bytes are kept.
	if got := count(t, db, `SELECT count(*) FROM event_quarantine WHERE event_id IS NULL AND kind = 'envelope' AND length(raw) > 0`); got != 2 {
		t.Errorf("id-less envelopes quarantined = %d; want 2 (missing_id, not_an_object)", got)
	}
	// JSON PostgreSQL refuses (a number beyond numeric's range): the event
	// is archived without it, its bytes kept, the reason quarantined.
	err = db.QueryRow(ctx, `SELECT w.original FROM workos_events w JOIN event_quarantine q ON q.event_id = w.id
		WHERE w.id = 'event_01JQ3ZK0000000000000000027' AND w.sanitized AND w.data IS NULL AND w.context IS NULL
		AND q.reason LIKE 'data: PostgreSQL refuses it: %' AND q.reason LIKE '%context: PostgreSQL refuses it%'`).Scan(&original)
	if err != nil || !strings.Contains(string(original), "1e1000000") {
		t.Errorf("out-of-range number: original %q, %v", original, err)
	}
	// Keys that match a field only when case is ignored do not project.
	var actor string
	err = db.QueryRow(ctx, `SELECT actor_id, kv_name FROM vault_events WHERE event_id = 'event_01JQ3ZK0000000000000000026'`).Scan(&actor, &kv)
	if err != nil || actor != "user_real" || kv != "a" {
		t.Errorf("case-variant keys: actor %q kv %q, %v; want user_real, a", actor, kv, err)
	}
	// Unknown types and extra envelope fields are archived whole.
	var extra, context string
	err = db.QueryRow(ctx, `SELECT extra::text, context::text FROM workos_events WHERE event_type = 'directory_user.created'`).Scan(&extra, &context)
	if err != nil || extra != `{"environment_id": "environment_01"}` || context != `{"new_key": [1, 2]}` {
		t.Errorf("unknown type: extra %s context %s err %v", extra, context, err)
	}
	// Absent and null context are NULL; {} stays {}.
	if got := count(t, db, `SELECT count(*) FROM workos_events WHERE context = '{}'::jsonb`); got != 1 {
		t.Errorf("events with context {} = %d; want 1", got)
	}
}

func TestConflictingContentKeepsTheFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, db := open(t)
	first := `{"id":"event_01","event":"vault.data.read","created_at":"2026-01-01T00:00:00Z","data":{"actor_id":"user_1","kv_name":"a","key_id":"k1"}}`
	second := `{"id":"event_01","event":"vault.data.read","created_at":"2026-01-01T00:00:00Z","data":{"actor_id":"user_2","kv_name":"b","key_id":"k2"}}`
	if err := st.WritePage(ctx, page("", "event_01", decode(t, first))); err != nil {
		t.Fatal(err)
	}
	for range 2 { // seen twice, recorded once
		if err := st.WritePage(ctx, page("event_01", "event_01", decode(t, second))); err != nil {
			t.Fatal(err)
		}
	}
	var actor, kv string
	if err := db.QueryRow(ctx, `SELECT actor_id, kv_name FROM vault_events WHERE event_id = 'event_01'`).Scan(&actor, &kv); err != nil || actor != "user_1" || kv != "a" {
		t.Errorf("vault row = %s %s %v; want the first content", actor, kv, err)
	}
	if got := count(t, db, `SELECT count(*) FROM vault_event_keys WHERE event_id = 'event_01'`); got != 1 {
		t.Errorf("keys of event_01 = %d; want only the first content's", got)
	}
	if got := count(t, db, `SELECT count(*) FROM event_quarantine WHERE event_id = 'event_01' AND kind = 'conflict' AND raw = $1`, []byte(second)); got != 1 {
		t.Errorf("conflict rows = %d; want 1 holding the second content", got)
	}
	// The same id twice within one page, with other content.
	if err := st.WritePage(ctx, page("event_01", "event_02", decode(t,
		`{"id":"event_02","event":"user.created","created_at":"2026-01-01T00:00:01Z","data":{"n":1}}`,
		`{"id":"event_02","event":"user.created","created_at":"2026-01-01T00:00:01Z","data":{"n":2}}`))); err != nil {
		t.Fatal(err)
	}
	if got := count(t, db, `SELECT count(*) FROM workos_events WHERE id = 'event_02' AND data = '{"n":1}'`); got != 1 {
		t.Error("event_02 should keep its first content")
	}
	if got := count(t, db, `SELECT count(*) FROM event_quarantine WHERE event_id = 'event_02' AND kind = 'conflict'`); got != 1 {
		t.Errorf("in-page conflict rows = %d; want 1", got)
	}
}

func TestCursorAndRowsMoveTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, db := open(t)
	good := decode(t, `{"id":"event_01","event":"vault.data.read","created_at":"2026-01-01T00:00:00Z","data":{"actor_id":"user_1","kv_name":"a","key_id":"k1"}}`)
	if err := st.WritePage(ctx, page("", "event_01", good)); err != nil {
		t.Fatal(err)
	}
	// Make the last statements of the next page's transaction fail: the
	// events, actors and vault rows written before it must vanish with it,
	// and the cursor must stay.
	_, err := db.Exec(ctx, `
		CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.key_id = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER boom BEFORE INSERT ON vault_event_keys FOR EACH ROW EXECUTE FUNCTION boom();`)
	if err != nil {
		t.Fatal(err)
	}
	bad := decode(t,
		`{"id":"event_02","event":"user.created","created_at":"2026-01-01T00:00:01Z","data":{}}`,
		`{"id":"event_03","event":"vault.data.read","created_at":"2026-01-01T00:00:02Z","data":{"actor_id":"user_new","kv_name":"b","key_id":"boom"}}`)
	before := tableCounts(t, db)
	err = st.WritePage(ctx, page("event_01", "event_03", bad))
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("WritePage = %v; want the injected failure", err)
	}
	if after := tableCounts(t, db); after != before {
		t.Errorf("a failed page left rows behind: %s -> %s", before, after)
	}
	if cur := cursor(t, st); cur != "event_01" {
		t.Errorf("cursor = %q after a failed page; want event_01", cur)
	}
}

func TestCursorConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, db := open(t)
	evs := decode(t, `{"id":"event_01","event":"user.created","created_at":"2026-01-01T00:00:00Z","data":{}}`)
	if err := st.WritePage(ctx, page("", "event_01", evs)); err != nil {
		t.Fatal(err)
	}
	// A second writer that still believes the cursor is empty.
	late := decode(t, `{"id":"event_00","event":"user.created","created_at":"2025-12-31T00:00:00Z","data":{}}`)
	err := st.WritePage(ctx, page("", "event_00", late))
	if !errors.Is(err, store.ErrCursorConflict) {
		t.Fatalf("WritePage with a stale cursor = %v; want ErrCursorConflict", err)
	}
	if got := count(t, db, `SELECT count(*) FROM workos_events WHERE id = 'event_00'`); got != 0 {
		t.Error("a page refused for its cursor left its events behind")
	}
}

func TestActorsKeepTheLatestName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, db := open(t)
	listed := func(id, at, name string) string {
		return `{"id":"` + id + `","event":"vault.names.listed","created_at":"` + at + `","data":{"actor_id":"user_1","actor_source":"dashboard","actor_name":"` + name + `"}}`
	}
	steps := []struct{ prev, next, raw string }{
		{"", "event_2", listed("event_2", "2026-01-02T00:00:00Z", "Second")},
		{"event_2", "event_3", listed("event_3", "2026-01-03T00:00:00Z", "Third")},
		// an older event read late (a backfill) must not rename the actor
		{"event_3", "event_3", listed("event_1", "2026-01-01T00:00:00Z", "First")},
	}
	for _, s := range steps {
		if err := st.WritePage(ctx, page(s.prev, s.next, decode(t, s.raw))); err != nil {
			t.Fatal(err)
		}
	}
	var name string
	var first, last int
	err := db.QueryRow(ctx, `SELECT actor_name, extract(day FROM first_seen_at)::int, extract(day FROM last_seen_at)::int FROM vault_actors WHERE actor_id = 'user_1'`).Scan(&name, &first, &last)
	if err != nil || name != "Third" || first != 1 || last != 3 {
		t.Errorf("actor = %q seen %d..%d, %v; want Third seen 1..3", name, first, last, err)
	}
	if got := count(t, db, `SELECT count(*) FROM vault_events WHERE actor_name = 'First'`); got != 1 {
		t.Error("each vault row keeps the name recorded in its own event")
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, _ := open(t)
	empty, err := st.Status(ctx)
	if err != nil || empty.Archived != 0 || empty.NewestID != "" || len(empty.Cursors) != 0 {
		t.Fatalf("status of an empty database = %+v, %v", empty, err)
	}
	if err := st.WritePage(ctx, page("", "event_99", fixtures(t))); err != nil {
		t.Fatal(err)
	}
	s, err := st.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cursors) != 1 || s.Cursors[0].AfterID != "event_99" || len(s.VaultTypes) != 12 || s.Sanitized != 3 || s.NewestID == "" {
		t.Errorf("status = %+v", s)
	}
	rows, err := st.LatestAccess(ctx, 5)
	if err != nil || len(rows) != 5 || !rows[0].OccurredAt.Before(rows[4].OccurredAt) {
		t.Errorf("LatestAccess = %d rows, %v; want 5, oldest first", len(rows), err)
	}
}

// snapshot dumps the projected tables as text, in a stable order.
func snapshot(t *testing.T, db *pgxpool.Pool) string {
	t.Helper()
	var out string
	for _, q := range []string{
		`SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', event_id, event_type, occurred_at, actor_id, actor_source, actor_name, kv_name, key_id, key_name, key_context, verified), E'\n' ORDER BY event_id), '') FROM vault_events`,
		`SELECT coalesce(string_agg(event_id || '|' || key_id, E'\n' ORDER BY event_id, key_id), '') FROM vault_event_keys`,
		`SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s', actor_id, actor_source, actor_name, first_seen_at, last_seen_at), E'\n' ORDER BY actor_id), '') FROM vault_actors`,
		`SELECT coalesce(string_agg(format('%s|%s|%s', event_id, kind, reason), E'\n' ORDER BY event_id, kind, reason), '') FROM event_quarantine`,
	} {
		var s string
		if err := db.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatal(err)
		}
		out += s + "\n--\n"
	}
	return out
}

func TestReprocessRebuildsTheVaultTablesFromTheArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, db := open(t)
	if err := st.WritePage(ctx, page("", "event_99", fixtures(t))); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, db)
	// Damage the projection the way a bug in an old version might have.
	_, err := db.Exec(ctx, `
		DELETE FROM vault_event_keys WHERE key_id = 'dek_02';
		UPDATE vault_events SET actor_name = 'wrong' WHERE event_type = 'vault.data.read';
		UPDATE vault_actors SET actor_name = 'wrong';
		DELETE FROM event_quarantine WHERE kind = 'projection' AND reason LIKE 'missing%';`)
	if err != nil {
		t.Fatal(err)
	}
	if snapshot(t, db) == want {
		t.Fatal("the damage did not change the tables")
	}
	for i := range 2 {
		res, err := st.Reprocess(ctx, 3) // small chunks: actors span several
		if err != nil {
			t.Fatal(err)
		}
		if got := snapshot(t, db); got != want {
			t.Errorf("run %d: reprocessed tables differ from the original projection:\n got %s\nwant %s", i+1, got, want)
		}
		if res.Projected != count(t, db, `SELECT count(*) FROM vault_events`) || res.Quarantined == 0 {
			t.Errorf("run %d: result %+v", i+1, res)
		}
	}
}

func TestMigrationsResumeAfterAnInterruptedRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	down := func() {
		m, err := store.NewMigrator(url)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Down(1); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		tables bool // whether the interrupted migration had committed
	}{{"killed before the migration committed", false}, {"killed after it committed", true}} {
		down()
		if tc.tables {
			if err := store.MigrateUp(ctx, url); err != nil {
				t.Fatal(err)
			}
		}
		// What golang-migrate leaves when killed mid-way: version 1, dirty.
		if _, err := db.Exec(ctx, `UPDATE schema_migrations SET version = 1, dirty = true`); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, `SELECT count(*) FROM schema_migrations`); n != 1 {
			if _, err := db.Exec(ctx, `INSERT INTO schema_migrations VALUES (1, true)`); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.MigrateUp(ctx, url); err != nil {
			t.Fatalf("%s: MigrateUp: %v", tc.name, err)
		}
		if n := count(t, db, `SELECT count(*) FROM schema_migrations WHERE version >= 2 AND NOT dirty`); n != 1 {
			t.Errorf("%s: the version is not clean after MigrateUp", tc.name)
		}
		if n := count(t, db, `SELECT count(*) FROM information_schema.views WHERE table_name = 'vault_access_log'`); n != 1 {
			t.Errorf("%s: the schema is incomplete", tc.name)
		}
	}
}

// TestEveryMigrationRunsTwice holds the rule that lets an interrupted
// migration be run again.
func TestEveryMigrationRunsTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, db := open(t)
	files, err := filepath.Glob("../../migrations/*.up.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	for _, f := range files {
		sql, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, string(sql)); err != nil { // already applied once by the template
			t.Errorf("%s does not run twice: %v", filepath.Base(f), err)
		}
	}
}
