package pgtest_test

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/syncer-audit/syncer/internal/devpg"
	"github.com/syncer-audit/syncer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestParallelTestsGetTheirOwnMigratedDatabase(t *testing.T) {
	var (
		mu   sync.Mutex
		urls []string
	)
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"first", "second"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				u := pgtest.URL(t)
				mu.Lock()
				urls = append(urls, u)
				mu.Unlock()

				conn, err := pgx.Connect(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				// The migrations ran: their tables are there, and empty.
				var rows int
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM workos_events").Scan(&rows); err != nil {
					t.Fatalf("migrated table: %v", err)
				}
				if rows != 0 {
					t.Errorf("a fresh database has %d events, want 0", rows)
				}
				// What one test writes, the other does not see.
				if _, err := conn.Exec(ctx, "INSERT INTO workos_events (id) VALUES ($1)", name); err != nil {
					t.Fatal(err)
				}
				var ids []string
				r, err := conn.Query(ctx, "SELECT id FROM workos_events")
				if err != nil {
					t.Fatal(err)
				}
				if ids, err = pgx.CollectRows(r, pgx.RowTo[string]); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids, []string{name}) {
					t.Errorf("events = %v, want only this test's [%s]", ids, name)
				}
			})
		}
	})

	if len(urls) != 2 || urls[0] == urls[1] {
		t.Fatalf("databases = %v, want two different ones", urls)
	}
	// Each test's database was dropped when it ended.
	for _, u := range urls {
		conn, err := pgx.Connect(t.Context(), u)
		if err == nil {
			conn.Close(t.Context())
			t.Errorf("%s still exists after its test ended", u)
			continue
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
			t.Errorf("connect to %s after its test: %v, want database does not exist", u, err)
		}
	}
}

// runSelf runs this test binary's TestParallelTestsGetTheirOwnMigratedDatabase
// with env added, as a stand-in for a separate `go test` run.
func runSelf(t *testing.T, env ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestParallelTestsGetTheirOwnMigratedDatabase$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestExistingServerIsLeftClean(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, err := devpg.Start(ctx, devpg.Options{Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })

	out, err := runSelf(t, pgtest.EnvURL+"="+c.URL("postgres"))
	if err != nil {
		t.Fatalf("tests against %s: %v\n%s", pgtest.EnvURL, err, out)
	}

	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	r, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')")
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("databases left on the server after the tests: %v", left)
	}
}

func TestNoServerFailsInsteadOfSkipping(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback: nothing listens there.
	out, err := runSelf(t, pgtest.EnvURL+"=postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatalf("tests passed without a server:\n%s", out)
	}
	if !strings.Contains(out, "--- FAIL") || !strings.Contains(out, "pgtest: ") || strings.Contains(out, "--- SKIP") {
		t.Errorf("want the tests to fail with pgtest's reason, got:\n%s", out)
	}
}
