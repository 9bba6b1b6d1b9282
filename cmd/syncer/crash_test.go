package main

import (
	"context"
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

// checkExact compares the database with the stream: every event once, every
// projection present, nothing more.
func checkExact(t *testing.T, db string, want expected) {
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
	child := func() *exec.Cmd {
		cmd := exec.Command(self, "sync", "--events", "all")
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
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
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
		// The archive is exactly the stream's prefix up to the cursor.
		var cursor *string
		var archived, beyond int
		err := conn.QueryRow(context.Background(), `
			SELECT c.after_id, (SELECT count(*) FROM workos_events),
			       (SELECT count(*) FROM workos_events WHERE id > coalesce(c.after_id, ''))
			FROM (SELECT (SELECT after_id FROM sync_cursors WHERE stream = 'events') AS after_id) c`).Scan(&cursor, &archived, &beyond)
		if err != nil {
			continue // killed before the migrations: no tables yet
		}
		prefix := 0
		if cursor != nil {
			i, found := slices.BinarySearch(want.ids, *cursor)
			if !found {
				t.Fatalf("the cursor %s is not an id of the stream", *cursor)
			}
			prefix = i + 1
		}
		if archived != prefix || beyond != 0 {
			t.Fatalf("after kill %d: %d events archived, %d beyond the cursor; want exactly the %d up to it", killed, archived, beyond, prefix)
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

func init() {
	if os.Getenv(beMain) == "1" {
		main()
		os.Exit(0)
	}
}
