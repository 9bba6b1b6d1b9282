package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncer-audit/syncer/internal/fakeapi"
	"github.com/syncer-audit/syncer/internal/model"
	"github.com/syncer-audit/syncer/internal/pgtest"
	"github.com/syncer-audit/syncer/internal/store"
	"github.com/syncer-audit/syncer/internal/webhook"
	"github.com/syncer-audit/syncer/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const fakeKey = "sk_test_e2e_secret_value"

// world is a fake Events API and a fresh database, and the environment
// that points syncer at them.
type world struct {
	t   *testing.T
	api *fakeapi.Server
	gen *fakeapi.Generator
	evs []fakeapi.Event
	db  string
	env map[string]string
	// fakeURL is the fake API's address.
	fakeURL string
}

func newWorld(t *testing.T, n int) *world {
	t.Helper()
	gen := fakeapi.NewGenerator(fakeapi.GenConfig{Seed: 7, Start: time.Now().Add(-10 * 24 * time.Hour).Truncate(time.Millisecond), Step: time.Minute})
	api := fakeapi.New(fakeapi.Config{APIKey: fakeKey, Generator: gen})
	evs := gen.Take(n)
	api.Append(evs...)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	w := &world{t: t, api: api, gen: gen, evs: evs, db: pgtest.URL(t), fakeURL: srv.URL}
	w.env = map[string]string{
		"DATABASE_URL":      w.db,
		"WORKOS_API_KEY":    fakeKey,
		"WORKOS_BASE_URL":   srv.URL,
		"SYNCER_SINCE":      "30d",
		"SYNCER_LOG_FORMAT": "json",
	}
	return w
}

// syncer runs the command line as main does and returns its output.
func (w *world) syncer(args ...string) (stdout, stderr string, err error) {
	return w.syncerCtx(context.Background(), args...)
}

func (w *world) syncerCtx(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	err = run(ctx, args, func(k string) string { return w.env[k] }, &out, &errb)
	if strings.Contains(out.String()+errb.String(), fakeKey) || (err != nil && strings.Contains(err.Error(), fakeKey)) {
		w.t.Errorf("the API key appears in the output of syncer %v", args)
	}
	return out.String(), errb.String(), err
}

func (w *world) conn() *pgx.Conn {
	w.t.Helper()
	conn, err := pgx.Connect(context.Background(), w.db)
	if err != nil {
		w.t.Fatal(err)
	}
	return conn
}

func (w *world) count(sql string, args ...any) int {
	w.t.Helper()
	conn := w.conn()
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func vaultIn(evs []fakeapi.Event) int {
	n := 0
	for _, e := range evs {
		if model.IsVaultType(e.Type) {
			n++
		}
	}
	return n
}

func TestSyncAllTypesEndToEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1234)
	out, logs, err := w.syncer("sync", "--events", "all")
	if err != nil {
		t.Fatalf("sync: %v\n%s", err, logs)
	}
	if !strings.Contains(out, "caught up: 1234 events in ") {
		t.Errorf("sync printed %q", out)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 1234 {
		t.Errorf("archived %d events; want 1234", got)
	}
	vault := vaultIn(w.evs)
	if got := w.count(`SELECT count(*) FROM vault_events`); got != vault || vault == 0 {
		t.Errorf("vault_events has %d rows; the stream has %d Vault events", got, vault)
	}
	if got := w.count(`SELECT count(*) FROM event_quarantine`); got != 0 {
		t.Errorf("%d events quarantined from a clean stream", got)
	}
	if got := w.count(`SELECT count(*) FROM sync_gaps`); got != 0 {
		t.Errorf("%d gaps recorded for a stream well inside the retention window and the default --since", got)
	}
	if got := w.count(`SELECT count(DISTINCT event_type) FROM vault_events`); got != 12 {
		t.Errorf("vault_events covers %d types; want 12", got)
	}
	if got := w.count(`SELECT count(*) FROM vault_access_log WHERE cardinality(key_ids) > 1`); got == 0 {
		t.Error("no multi-key vault.dek.read in the access log")
	}
	if got := w.count(`SELECT count(*) FROM sync_cursors WHERE stream = 'events' AND after_id = $1`, w.evs[len(w.evs)-1].ID); got != 1 {
		t.Error("the main cursor is not the id of the last event")
	}
	// Every event is archived with the content the API served.
	for _, i := range []int{0, 617, 1233} {
		e := w.evs[i]
		if got := w.count(`SELECT count(*) FROM workos_events WHERE id = $1 AND event_type = $2 AND created_at = $3`, e.ID, e.Type, e.CreatedAt); got != 1 {
			t.Errorf("event %d (%s) not archived as served", i, e.ID)
		}
	}

	// A second run adds nothing.
	out, _, err = w.syncer("sync", "--events", "all")
	if err != nil || !strings.Contains(out, "caught up: 0 events in 0 pages") {
		t.Errorf("second sync: %q, %v", out, err)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 1234 {
		t.Errorf("after a second run %d events; want 1234", got)
	}

	// Events that arrive later are picked up by the next run.
	more := w.gen.Take(150)
	w.api.Append(more...)
	_, logs, err = w.syncer("sync", "--events", "all")
	if err != nil {
		t.Fatalf("third sync: %v\n%s", err, logs)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 1384 {
		t.Errorf("after new events %d archived; want 1384", got)
	}
	if got := w.count(`SELECT count(*) FROM vault_events`); got != vault+vaultIn(more) {
		t.Errorf("vault_events = %d; want %d", got, vault+vaultIn(more))
	}

	// One log line per page, none per event.
	if n := strings.Count(logs, `"msg":"page written"`); n != 2 {
		t.Errorf("third sync logged %d page lines for 150 events; want 2", n)
	}
}

func TestSyncDefaultsToVaultTypes(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 500)
	if _, logs, err := w.syncer("sync"); err != nil {
		t.Fatalf("sync: %v\n%s", err, logs)
	}
	vault := vaultIn(w.evs)
	if got := w.count(`SELECT count(*) FROM workos_events`); got != vault || vault == 500 {
		t.Errorf("archived %d events; want only the %d Vault ones of 500", got, vault)
	}
	if got := w.count(`SELECT count(*) FROM vault_events`); got != vault {
		t.Errorf("vault_events = %d; want %d", got, vault)
	}
}

func TestSyncSurvivesRateLimitsAndServerErrors(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 450)
	w.api.Inject(
		fakeapi.Fault{Status: 429, RetryAfter: "1"},
		fakeapi.Fault{Status: 503},
		fakeapi.Fault{Status: 500},
		fakeapi.Fault{Truncate: true},
		fakeapi.Fault{Status: 502},
		fakeapi.Fault{Reset: true},
	)
	if _, logs, err := w.syncer("sync", "--events", "all"); err != nil {
		t.Fatalf("sync: %v\n%s", err, logs)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 450 {
		t.Errorf("archived %d events; want 450", got)
	}
	if got := w.api.Stats().ByStatus[429]; got != 1 {
		t.Errorf("the fake answered 429 %d times; want the injected once", got)
	}
}

func TestSyncStopsOnABadKey(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 10)
	w.env["WORKOS_API_KEY"] = "sk_test_wrong_key_value"
	_, _, err := w.syncer("sync")
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "request id req_") {
		t.Fatalf("err = %v; want the 401 with its request id", err)
	}
	if strings.Contains(err.Error(), "sk_test_wrong_key_value") {
		t.Error("the error shows the API key")
	}
	if got := w.api.Stats().ByStatus[401]; got != 1 {
		t.Errorf("%d requests answered 401; want 1: no retry", got)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 0 {
		t.Errorf("%d events stored", got)
	}
}

func TestSyncNamesARejectedType(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 10)
	_, _, err := w.syncer("sync", "--events", "vault.data.read,vault.data.exploded,vault.dek.read")
	var ec exitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != exitRejected {
		t.Fatalf("err = %v; want exit code %d", err, exitRejected)
	}
	if !strings.Contains(err.Error(), "vault.data.exploded") || strings.Contains(err.Error(), "rejects event types in the filter: vault.data.read") {
		t.Errorf("err = %v; want it to name vault.data.exploded only", err)
	}
}

func TestRunDaemonPicksUpNewEventsAndStopsCleanly(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := w.syncerCtx(ctx, "run", "--listen", "off", "--events", "all", "--interval", "1s")
		done <- err
	}()
	waitFor(t, func() bool { return w.count(`SELECT count(*) FROM workos_events`) == 300 })
	w.api.Append(w.gen.Take(40)...)
	waitFor(t, func() bool { return w.count(`SELECT count(*) FROM workos_events`) == 340 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after SIGTERM: %v; want nil (exit 0)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after its context was cancelled")
	}
}

// waitFor polls cond until it holds; the daemon runs in real time against
// a real database, so there is no clock to advance instead.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		<-tick.C
	}
}

func TestStatusAndMigrate(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 200)
	if _, _, err := w.syncer("sync"); err != nil {
		t.Fatal(err)
	}
	out, _, err := w.syncer("status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cursor:        events = " + lastVault(w.evs).ID, "vault.dek.read", "quarantined:   none", "total"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	ups, _ := fs.Glob(migrations.FS, "*.up.sql")
	latest := len(ups)
	out, _, err = w.syncer("migrate", "version")
	if err != nil || !strings.HasPrefix(out, fmt.Sprintf("schema version %d\n", latest)) {
		t.Errorf("migrate version: %q, %v; want %d", out, err, latest)
	}
	if out, _, err = w.syncer("migrate", "down", fmt.Sprint(latest)); err != nil || !strings.HasPrefix(out, "schema version 0") {
		t.Errorf("migrate down %d: %q, %v", latest, out, err)
	}
	if out, _, err = w.syncer("migrate", "up"); err != nil || !strings.HasPrefix(out, fmt.Sprintf("schema version %d\n", latest)) {
		t.Errorf("migrate up: %q, %v", out, err)
	}
}

func lastVault(evs []fakeapi.Event) fakeapi.Event {
	for i := len(evs) - 1; i >= 0; i-- {
		if model.IsVaultType(evs[i].Type) {
			return evs[i]
		}
	}
	return fakeapi.Event{}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"sync"}, map[string]string{"WORKOS_API_KEY": "k"}, "no database"},
		{[]string{"sync"}, map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x"}, "no API key"},
		{[]string{"sync", "--since", "last tuesday"}, nil, "since"},
		{[]string{"sync", "--events", ","}, nil, "no event type"},
		{[]string{"run", "--interval", "1ms"}, map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x", "WORKOS_API_KEY": "k"}, "--interval"},
		{[]string{"sync"}, map[string]string{"SYNCER_SINCE": "soon"}, "SYNCER_SINCE"},
		{[]string{"bogus"}, nil, "unknown command"},
		{[]string{"sync", "now", "--events", "user.created"}, nil, `unexpected argument "now"`},
		{[]string{"status", "extra"}, nil, "unexpected argument"},
		{[]string{"sync", "--since", "2099-01-01"}, nil, "in the future"},
		{[]string{"sync", "--since", "200000d"}, nil, "0 to 36500"},
		{[]string{"sync", "--request-timeout", "5"}, nil, "want a duration such as 30s"},
		{[]string{"sync"}, map[string]string{"SYNCER_NO_MIGRATE": "yes"}, "SYNCER_NO_MIGRATE: parse error: want true or false"},
		{[]string{"sync", "--request-timeout", "0s"}, map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x", "WORKOS_API_KEY": "k"}, "--request-timeout"},
		{[]string{"migrate", "sideways"}, map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x"}, "want up, down"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out, &errb)
		var ec exitCoder
		if !errors.As(err, &ec) || ec.ExitCode() != exitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("syncer %v: err %v; want a usage error mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestHelpExplainsEverySettingAndHidesValues(t *testing.T) {
	t.Parallel()
	secret := "postgres://u:hunter2-password@db/x"
	for _, cmd := range []string{"sync", "run", "status", "migrate", "demo", "fakeapi"} {
		var out, errb bytes.Buffer
		err := run(context.Background(), []string{cmd, "--help"}, func(k string) string {
			if k == "DATABASE_URL" {
				return secret
			}
			return ""
		}, &out, &errb)
		help := out.String() + errb.String()
		if err != nil || !strings.Contains(help, "usage: syncer "+cmd) {
			t.Errorf("%s --help: %v\n%s", cmd, err, help)
		}
		if strings.Contains(help, "hunter2") {
			t.Errorf("%s --help shows the value of DATABASE_URL", cmd)
		}
		if cmd == "sync" {
			for _, env := range []string{"DATABASE_URL", "WORKOS_API_KEY", "WORKOS_BASE_URL", "SYNCER_EVENTS", "SYNCER_SINCE", "SYNCER_NO_MIGRATE"} {
				if !strings.Contains(help, env) {
					t.Errorf("sync --help does not mention %s", env)
				}
			}
		}
	}
}

func TestAddingTypesToTheFilterBackfillsThem(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 600)
	if _, logs, err := w.syncer("sync"); err != nil { // the Vault default
		t.Fatalf("sync: %v\n%s", err, logs)
	}
	vault := vaultIn(w.evs)
	if got := w.count(`SELECT count(*) FROM workos_events`); got != vault {
		t.Fatalf("first sync archived %d; want the %d Vault events", got, vault)
	}
	more := w.gen.Take(100)
	w.api.Append(more...)
	_, logs, err := w.syncer("sync", "--events", "all")
	if err != nil {
		t.Fatalf("sync --events all: %v\n%s", err, logs)
	}
	if !strings.Contains(logs, "backfilling them for the period already synced") {
		t.Errorf("the backfill was not announced:\n%s", logs)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 700 {
		t.Errorf("after widening the filter %d events archived; want all 700", got)
	}
	if got := w.count(`SELECT count(*) FROM sync_cursors WHERE stream LIKE 'backfill-%' AND done`); got != 1 {
		t.Errorf("%d finished backfill streams; want 1", got)
	}
	if _, _, err := w.syncer("sync", "--events", "all"); err != nil {
		t.Fatal(err)
	}
	if got := w.count(`SELECT count(*) FROM sync_cursors WHERE stream NOT LIKE 'window-%'`); got != 2 {
		t.Errorf("%d streams after a third sync; want the main one and the finished backfill", got)
	}
}

func TestSignalDuringAPageWriteCommitsIt(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 100)
	ctx := context.Background()
	if _, _, err := w.syncer("migrate", "up"); err != nil {
		t.Fatal(err)
	}
	// Hold the archive table so that the page's transaction blocks in the
	// middle, then send the "signal" while it waits.
	blocker, err := pgx.Connect(ctx, w.db)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close(ctx)
	tx, err := blocker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE workos_events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	sigctx, signal := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := w.syncerCtx(sigctx, "sync", "--events", "all", "--no-migrate")
		done <- err
	}()
	waitFor(t, func() bool {
		return w.count(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'syncer' AND wait_event_type = 'Lock'`) > 0
	})
	signal()
	tx.Rollback(ctx) // release the table
	if err := <-done; err != nil {
		t.Fatalf("sync interrupted mid-page: %v; want exit 0", err)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 100 {
		t.Errorf("%d events committed; want the whole page in flight (100)", got)
	}
	if got := w.count(`SELECT count(*) FROM sync_cursors WHERE after_id = $1`, w.evs[99].ID); got != 1 {
		t.Error("the cursor did not move with the page")
	}
}

func TestDemoRefusesToWriteFakeEventsIntoARealDatabase(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"demo"}, func(k string) string {
		if k == "DATABASE_URL" {
			return "postgres://127.0.0.1:1/audit"
		}
		return ""
	}, &out, &errb)
	var ec exitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != exitUsage || !strings.Contains(err.Error(), "made-up events") {
		t.Errorf("demo with DATABASE_URL and no API key: %v; want a refusal", err)
	}
}

func TestOneWriterAtATime(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300)
	ctx := context.Background()
	if _, _, err := w.syncer("migrate", "up"); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, w.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	held, err := st.Lock(ctx, store.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A second sync while another holds the lock exits 0 and writes nothing.
	out, _, err := w.syncer("sync", "--events", "all")
	if err != nil || !strings.Contains(out, "another syncer is writing to this database") {
		t.Errorf("sync while locked: %q, %v; want exit 0 saying another syncer holds the lock", out, err)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 0 {
		t.Errorf("a locked-out sync wrote %d events", got)
	}
	// With --wait it waits, and works once the lock is free.
	done := make(chan error, 1)
	go func() {
		_, _, err := w.syncer("sync", "--events", "all", "--wait")
		done <- err
	}()
	waitFor(t, func() bool {
		return w.count(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'syncer' AND query LIKE '%pg_try_advisory_lock%'`) > 1
	})
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 0 {
		t.Errorf("sync --wait wrote %d events while the lock was held", got)
	}
	held.Release()
	if err := <-done; err != nil {
		t.Fatalf("sync --wait: %v", err)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 300 {
		t.Errorf("after the lock was released %d events; want 300", got)
	}
}

func TestAStandbyTakesOverWhenTheActiveDaemonStops(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 200)
	if _, _, err := w.syncer("migrate", "up"); err != nil {
		t.Fatal(err)
	}
	type replica struct {
		stop context.CancelFunc
		done chan error
		logs *syncBuffer
	}
	start := func() replica {
		ctx, cancel := context.WithCancel(context.Background())
		r := replica{stop: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
		go func() {
			r.done <- run(ctx, []string{"run", "--listen", "off", "--events", "all", "--interval", "1s", "--no-migrate"},
				func(k string) string { return w.env[k] }, io.Discard, r.logs)
		}()
		return r
	}
	active := start()
	waitFor(t, func() bool { return w.count(`SELECT count(*) FROM workos_events`) == 200 })
	standby := start()
	waitFor(t, func() bool { return strings.Contains(standby.logs.String(), "standby") })

	active.stop() // the active replica dies
	if err := <-active.done; err != nil {
		t.Fatalf("active replica: %v", err)
	}
	took := time.Now()
	w.api.Append(w.gen.Take(50)...)
	waitFor(t, func() bool { return w.count(`SELECT count(*) FROM workos_events`) == 250 })
	if d := time.Since(took); d > 30*time.Second {
		t.Errorf("the standby took %s to take over; want under 30s", d)
	}
	if !strings.Contains(standby.logs.String(), "active: holding the writer lock") {
		t.Errorf("standby logs do not show the takeover:\n%s", standby.logs.String())
	}
	standby.stop()
	if err := <-standby.done; err != nil {
		t.Errorf("standby replica: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a goroutine writes logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDaemonServesMetricsHealthAndWebhooks(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 250)
	const secret = "whsec_daemon_test_secret"
	w.env["WORKOS_WEBHOOK_SECRET"] = secret
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs syncBuffer
	go func() {
		done <- run(ctx, []string{"run", "--listen", addr, "--events", "all", "--interval", "1h"},
			func(k string) string { return w.env[k] }, io.Discard, &logs)
	}()
	get := func(path string) (int, string) {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	waitFor(t, func() bool { return w.count(`SELECT count(*) FROM sync_runs WHERE error IS NULL`) > 0 })
	waitFor(t, func() bool { return w.count(`SELECT count(*) FROM workos_events`) == 250 })
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	code, body := get("/readyz")
	if code != 200 || !strings.Contains(body, `"role":"active"`) || !strings.Contains(body, `"database":"ok"`) {
		t.Errorf("/readyz = %d %s", code, body)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`syncer_store_events_written_total{event_type="vault.dek.read"}`,
		`syncer_store_pages_written_total `,
		`syncer_api_requests_total{status_class="2xx"}`,
		`syncer_store_tx_duration_seconds_count `,
		`syncer_poller_seconds_since_last_success`,
		`syncer_archive_newest_event_age_seconds`,
		`syncer_store_quarantined_total{kind="projection"} 0`,
		`go_goroutines`, `process_resident_memory_bytes`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, fakeKey) || strings.Contains(metrics, secret) {
		t.Error("/metrics shows a secret")
	}

	// The interval is an hour: only the webhook can bring new events in.
	w.api.Append(w.gen.Take(30)...)
	post := func(sig string) int {
		body := `{"id":"event_x","event":"vault.data.read"}`
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/workos", strings.NewReader(body))
		req.Header.Set("WorkOS-Signature", sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post(fmt.Sprintf("t=%d, v1=%s", time.Now().UnixMilli(), strings.Repeat("00", 32))); code != http.StatusUnauthorized {
		t.Errorf("a bad signature got %d; want 401", code)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 250 {
		t.Fatalf("a refused webhook triggered a sync: %d events", got)
	}
	sent := time.Now()
	if code := post(webhook.Sign([]byte(secret), []byte(`{"id":"event_x","event":"vault.data.read"}`), time.Now())); code != http.StatusAccepted {
		t.Errorf("a signed webhook got %d; want 202", code)
	}
	waitFor(t, func() bool { return w.count(`SELECT count(*) FROM workos_events`) == 280 })
	if d := time.Since(sent); d > 5*time.Second {
		t.Errorf("events landed %s after the webhook; want within seconds", d)
	}
	_, metrics = get("/metrics")
	for _, want := range []string{`syncer_webhook_requests_total{result="accepted"} 1`, `syncer_webhook_requests_total{result="bad_signature"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if got := w.count(`SELECT count(*) FROM workos_events WHERE id = 'event_x'`); got != 0 {
		t.Error("the webhook's payload was stored; it must only trigger a poll")
	}
	if got := w.count(`SELECT count(*) FROM sync_runs WHERE error IS NULL`); got < 2 {
		t.Errorf("%d sync runs recorded; want one per poll", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("the logs show the webhook secret")
	}
}

// A typo in --events fails the run that made it and leaves nothing
// behind: the next runs, with a good filter, work.
func TestARejectedFilterIsNotStored(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300)
	if _, _, err := w.syncer("sync"); err != nil {
		t.Fatal(err)
	}
	streams := w.count(`SELECT count(*) FROM sync_cursors`)
	_, _, err := w.syncer("sync", "--events", "vault.nope")
	var ec exitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != exitRejected || !strings.Contains(err.Error(), "vault.nope") {
		t.Fatalf("sync --events vault.nope: %v; want exit %d naming it", err, exitRejected)
	}
	if got := w.count(`SELECT count(*) FROM sync_cursors`); got != streams {
		t.Errorf("a rejected filter changed the streams: %d -> %d", streams, got)
	}
	if got := w.count(`SELECT count(*) FROM sync_cursors WHERE 'vault.nope' = ANY(event_types)`); got != 0 {
		t.Error("the rejected type was stored")
	}
	before := w.api.Stats().Requests
	if out, _, err := w.syncer("sync"); err != nil || !strings.Contains(out, "caught up: 0 events") {
		t.Errorf("sync with the default filter after the typo: %q, %v", out, err)
	}
	if n := w.api.Stats().Requests - before; n > 2 {
		t.Errorf("%d requests for a sync with nothing new; want no re-fetch", n)
	}
	if _, _, err := w.syncer("sync", "--events", "all"); err != nil {
		t.Errorf("sync --events all after the typo: %v", err)
	}
	if got := w.count(`SELECT count(*) FROM workos_events`); got != 300 {
		t.Errorf("%d events; want all 300", got)
	}
}
