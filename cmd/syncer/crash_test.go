package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncer-audit/syncer/internal/fakeapi"
	"github.com/syncer-audit/syncer/internal/model"
)

// beMain makes the test binary act as the syncer command when a test runs
// it as a child process, so that a crash test can SIGKILL a real process
// without building a second binary.
const beMain = "SYNCER_TEST_BE_MAIN"

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// expected is what the audit tables must hold for a stream: the rows the
// projection makes of it.
type expected struct {
	ids                              []string
	vault, keys, quarantined, actors int
}

func expect(t *testing.T, evs []fakeapi.Event) expected {
	t.Helper()
	var e expected
	decoded := make([]model.Event, 0, len(evs))
	for _, fe := range evs {
		ev, err := model.DecodeEvent(fe.JSON)
		if err != nil {
			t.Fatal(err)
		}
		decoded = append(decoded, ev)
		e.ids = append(e.ids, fe.ID)
	}
	rows := model.Project(decoded)
	e.vault, e.keys, e.quarantined = len(rows.Vault), len(rows.Keys), len(rows.Quarantine)
	actors := map[string]bool{}
	for _, a := range rows.Actors {
		actors[a.ID] = true
	}
	e.actors = len(actors)
	return e
}

// archivedIDs lists the ids in workos_events, in order.
func archivedIDs(t *testing.T, db string) []string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), `SELECT id FROM workos_events ORDER BY id`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// checkExact compares the database with the stream: every event once, every
// projection present, nothing more.
func checkExact(t *testing.T, db string, want expected) {
	t.Helper()
	ids := archivedIDs(t, db)
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if !slices.Equal(ids, want.ids) {
		missing, extra := 0, 0
		for _, id := range want.ids {
			if _, ok := slices.BinarySearch(ids, id); !ok {
				missing++
			}
		}
		for _, id := range ids {
			if _, ok := slices.BinarySearch(want.ids, id); !ok {
				extra++
			}
		}
		t.Errorf("archive holds %d events, the source %d: %d lost, %d extra", len(ids), len(want.ids), missing, extra)
	}
	for _, c := range []struct {
		table string
		want  int
	}{{"vault_events", want.vault}, {"vault_event_keys", want.keys}, {"vault_actors", want.actors}, {"event_quarantine", want.quarantined}} {
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM `+c.table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != c.want {
			t.Errorf("%s has %d rows; the projection of the source has %d", c.table, n, c.want)
		}
	}
}

// TestCrashAnywhereLosesNothing SIGKILLs a real syncer process at random
// moments while it drains a stream, restarting it each time, and then
// checks the database against the source. After every kill the archive must
// be exactly the prefix of the stream up to the stored cursor: pages and
// cursor commit together. CI scale: 5,000 events, 5 kills; full scale:
// SYNCER_CRASH_EVENTS=50000 SYNCER_CRASH_KILLS=20 (make crash-test).
func TestCrashAnywhereLosesNothing(t *testing.T) {
	t.Parallel()
	n, kills := envInt(t, "SYNCER_CRASH_EVENTS", 5000), envInt(t, "SYNCER_CRASH_KILLS", 5)
	w := newWorld(t, n)
	want := expect(t, w.evs)
	// Pages of 40ms or more, so that the drain outlasts the kills and each
	// one lands somewhere in the pipeline: fetching, decoding, writing.
	w.api.Inject(fakeapi.Fault{Delay: 40 * time.Millisecond, Repeat: 1 << 30})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	child := func() *exec.Cmd {
		// Restarts alternate at random between windows drained at once
		// and a single cursor, which must be able to take over each other.
		workers := []string{"1", "8"}[rng.IntN(2)]
		cmd := exec.Command(self, "sync", "--events", "all", "--backfill-workers", workers)
		cmd.Env = append(os.Environ(), beMain+"=1")
		for k, v := range w.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		return cmd
	}
	conn, err := pgx.Connect(context.Background(), w.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	done, killed := false, 0
	for killed < kills && !done {
		cmd := child()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited: // finished before its kill
			if err != nil {
				t.Fatalf("syncer exited with %v before it was killed", err)
			}
			done = true
		case <-time.After(time.Duration(30+rng.IntN(400)) * time.Millisecond):
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			killed++
		}
		// The archive is exactly what the stored cursors cover: for each
		// stream, its events up to its cursor. Pages and cursors commit
		// together, so nothing more and nothing less.
		archived, err := committedExactly(conn, w.evs)
		if err != nil {
			t.Fatalf("after kill %d: %v", killed+1, err)
		}
		t.Logf("kill %d: %d of %d events committed", killed, archived, n)
	}
	out, err := child().CombinedOutput()
	if err != nil {
		t.Fatalf("final sync: %v\n%s", err, out)
	}
	checkExact(t, w.db, want)
	t.Logf("%d kills survived over %d events; final database equals the source", killed, n)
}

// TestDatabaseConnectionsKilledWhileRunning terminates the daemon's database
// connections (its lock's and its writers') several times while it drains a
// stream; it must reconnect, take its lock again and lose nothing.
func TestDatabaseConnectionsKilledWhileRunning(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 6000)
	want := expect(t, w.evs)
	w.api.Inject(fakeapi.Fault{Delay: 20 * time.Millisecond, Repeat: 60}) // slow it down enough to hit it mid-way
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := w.syncerCtx(ctx, "run", "--listen", "off", "--events", "all", "--interval", "1s")
		done <- err
	}()
	conn, err := pgx.Connect(context.Background(), w.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	terminated := 0
	for terminated < 3 {
		waitFor(t, func() bool { return w.count(`SELECT count(*) FROM workos_events`) >= 1000*(terminated+1) })
		var n int
		err := conn.QueryRow(context.Background(), `
			SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = 'syncer' AND datname = current_database()`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		terminated++
		t.Logf("terminated %d syncer connections", n)
	}
	waitFor(t, func() bool { return w.count(`SELECT count(*) FROM workos_events`) == len(w.evs) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	checkExact(t, w.db, want)
}

// committedExactly checks that the archive holds exactly the events the
// stored cursors cover, and returns how many that is. A stream covers the
// events up to its cursor, within its range if it has one (the fake's
// range_start is inclusive, range_end exclusive).
func committedExactly(conn *pgx.Conn, evs []fakeapi.Event) (int, error) {
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT coalesce(after_id, ''), range_start, range_end FROM sync_cursors`)
	if err != nil {
		return 0, nil // killed before the migrations: no tables yet
	}
	type cover struct {
		after      string
		start, end *time.Time
	}
	var covers []cover
	var c cover
	if _, err := pgx.ForEachRow(rows, []any{&c.after, &c.start, &c.end}, func() error {
		covers = append(covers, c)
		return nil
	}); err != nil {
		return 0, err
	}
	want := map[string]bool{}
	for _, e := range evs {
		for _, c := range covers {
			bounded := c.end != nil
			if e.ID <= c.after && (!bounded || (!e.CreatedAt.Before(*c.start) && e.CreatedAt.Before(*c.end))) {
				want[e.ID] = true
			}
		}
	}
	rows, _ = conn.Query(ctx, `SELECT id FROM workos_events`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	extra := 0
	for _, id := range ids {
		if !want[id] {
			extra++
		}
	}
	if extra > 0 || len(ids)-extra != len(want) {
		return len(ids), fmt.Errorf("%d events archived, %d of them beyond the cursors; the cursors cover %d", len(ids), extra, len(want))
	}
	return len(ids), nil
}

func init() {
	if os.Getenv(beMain) == "1" {
		main()
		os.Exit(0)
	}
}
