package grafana_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncer-audit/syncer/internal/fakeapi"
	"github.com/syncer-audit/syncer/internal/model"
	"github.com/syncer-audit/syncer/internal/pgtest"
	"github.com/syncer-audit/syncer/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// sampleDB returns a fresh migrated database holding what a syncer that
// followed a tenant from start to end would have written: the generator's
// events (one a minute on average, every Vault type, API and dashboard
// actors, non-Vault types) in pages of 100 through the store, a sync run
// per page with some failed ones, a gap, and quarantine rows of each kind.
// The same start gives the same rows, ids included.
func sampleDB(t *testing.T, start, end time.Time) *pgxpool.Pool {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)

	gen := fakeapi.NewGenerator(fakeapi.GenConfig{Seed: 1, Start: start, Step: time.Minute})
	var all []model.Event
	for {
		ev := gen.Next()
		if ev.CreatedAt.After(end) {
			break
		}
		all = append(all, decode(t, ev.JSON))
	}
	if len(all) < 1000 {
		t.Fatalf("sample: only %d events between %s and %s", len(all), start, end)
	}

	var prev string
	write := func(evs []model.Event, gaps []model.Gap) {
		t.Helper()
		last := evs[len(evs)-1]
		page := model.Page{
			Stream: model.Stream{Name: "events", AfterID: last.ID, AfterTime: last.CreatedAt, EventTypes: model.KnownTypes()},
			Prev:   prev, Events: evs, Gaps: gaps,
		}
		if err := st.WritePage(ctx, page); err != nil {
			t.Fatal(err)
		}
		prev = last.ID
	}
	for i := 0; i < len(all); i += 100 {
		evs := all[i:min(i+100, len(all))]
		var gaps []model.Gap
		if i == 0 {
			// The first run started further back than WorkOS keeps events.
			gaps = []model.Gap{{From: start.Add(-48 * time.Hour), To: start, Reason: "--since is older than the API's retention window"}}
		}
		write(evs, gaps)
		for _, run := range sampleRuns(i/100, evs) {
			if err := st.RecordRun(ctx, run, 0); err != nil {
				t.Fatal(err)
			}
		}
	}

	// One event of each quarantine kind, a minute after the last one.
	at := all[len(all)-1].CreatedAt.Add(time.Minute).UTC().Format("2006-01-02T15:04:05.000Z")
	first := all[0]
	write([]model.Event{
		// projection: a Vault event without its actor_id.
		decode(t, []byte(`{"object":"event","id":"event_01SAMPLEQUARANTINE00000001","event":"vault.data.read","created_at":"`+at+
			`","data":{"actor_source":"api","actor_name":"API Key","kv_name":"stripe-api-key","key_id":"key_x"}}`)),
		// envelope: a created_at that is not a time.
		decode(t, []byte(`{"object":"event","id":"event_01SAMPLEQUARANTINE00000002","event":"vault.names.listed","created_at":"yesterday",`+
			`"data":{"actor_id":"key_x","actor_source":"api","actor_name":"API Key"}}`)),
		// conflict: the first event's id again, with other content.
		decode(t, []byte(`{"object":"event","id":"`+first.ID+`","event":"`+first.Type+`","created_at":"`+at+`","data":{}}`)),
		// and an ordinary event last, for the cursor.
		decode(t, gen.Next().JSON),
	}, nil)
	return st.Pool()
}

// sampleRuns are the sync runs that wrote page n: most succeed at once,
// some after retried 429s, and before every seventh one a run failed
// without writing anything.
func sampleRuns(n int, evs []model.Event) []store.Run {
	finished := evs[len(evs)-1].CreatedAt.Add(2 * time.Second)
	ok := store.Run{
		StartedAt:     finished.Add(-time.Duration(300+10*(n%5)) * time.Millisecond),
		FinishedAt:    finished,
		Events:        len(evs),
		Pages:         1,
		NewestEventAt: evs[len(evs)-1].CreatedAt,
		APIRequests:   1 + n%3,
		APIErrors:     n % 3,
	}
	if n%7 != 3 {
		return []store.Run{ok}
	}
	failed := store.Run{
		StartedAt:   finished.Add(-5 * time.Minute),
		FinishedAt:  finished.Add(-4 * time.Minute),
		APIRequests: 9,
		APIErrors:   9,
		Error:       fmt.Sprintf("fetch page after=%s: 503 Service Unavailable after 9 attempts", evs[0].ID),
	}
	return []store.Run{failed, ok}
}

func decode(t *testing.T, raw []byte) model.Event {
	t.Helper()
	ev, err := model.DecodeEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// readerConn returns a connection to db as a role made by `syncer
// grant-reader`, such as the grafana_reader of the provisioned data
// source: what the dashboards may read.
func readerConn(t *testing.T, db *pgxpool.Pool) *pgxpool.Conn {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, db.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	role := fmt.Sprintf("grafana_reader_%d", time.Now().UnixNano())
	if err := st.GrantReader(ctx, role, ""); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Roles belong to the whole server: drop it with its grants.
		ctx := context.Background()
		_, err1 := conn.Exec(ctx, `RESET ROLE`)
		_, err2 := conn.Exec(ctx, `DROP OWNED BY `+role)
		_, err3 := conn.Exec(ctx, `DROP ROLE `+role)
		conn.Release()
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	if _, err := conn.Exec(ctx, `SET ROLE `+role); err != nil {
		t.Fatal(err)
	}
	var user string
	var canWrite bool
	err = conn.QueryRow(ctx, `SELECT current_user, has_table_privilege('vault_events', 'INSERT')`).Scan(&user, &canWrite)
	if err != nil || user != role || canWrite {
		t.Fatalf("SET ROLE %s: user %s, can write %v, %v", role, user, canWrite, err)
	}
	return conn
}

// count runs a query that returns one number.
func count(t *testing.T, db *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
