// Package pgtest gives each test its own real PostgreSQL database, already
// migrated, the way pgtestdb does: the migrations run once per test binary
// into a template database, and each test gets a clone of it, which takes
// milliseconds. Tests can then run in parallel without seeing each other's
// rows.
//
// The server is a throwaway devpg cluster started on first use, or the one
// named by SYNCER_TEST_DATABASE_URL (PostgreSQL 13 or later; the user must
// be allowed to create databases). There the template and the test
// databases are dropped when the tests finish, unless the test binary dies
// first.
//
// Without Main the throwaway server still dies with the test binary (devpg
// ties it to its parent), but its temporary directory is left behind.
//
// A test that asks for a database and cannot have one fails: it never skips,
// so a machine without PostgreSQL cannot pass the suite by testing nothing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncer-audit/syncer/internal/devpg"
	"github.com/syncer-audit/syncer/internal/store"
)

// EnvURL names the variable that points the tests at an existing server
// instead of a throwaway one, e.g. a CI service container.
const EnvURL = "SYNCER_TEST_DATABASE_URL"

// setupTimeout covers starting a server and running the migrations.
const setupTimeout = 2 * time.Minute

// One server per test binary, shared by every test in it.
var (
	setupOnce sync.Once
	shared    *server
	setupErr  error

	// PostgreSQL refuses to clone a template while another clone of it is
	// under way ("source database is being accessed by other users").
	cloneMu sync.Mutex
	seq     atomic.Int64
)

// Main runs the tests and then stops the server if one was started. Use it
// as the package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if err := shared.close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// URL returns the connection URL of a new database for this test, cloned
// from the migrated template, and drops it when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	setupOnce.Do(func() { shared, setupErr = setup() })
	if setupErr != nil {
		t.Fatalf("pgtest: no test database: %v", setupErr)
	}

	name := databaseName(t.Name(), shared.token, seq.Add(1))
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() +
		" TEMPLATE " + pgx.Identifier{shared.template}.Sanitize()
	cloneMu.Lock()
	_, err := shared.admin.Exec(t.Context(), create)
	cloneMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: clone %s: %v", shared.template, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE: connections the test left open must not keep it alive.
		if _, err := shared.admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
		}
	})
	return shared.url(name)
}

type server struct {
	cluster  *devpg.Cluster // nil when the server is EnvURL's
	base     *url.URL       // to the maintenance database
	admin    *pgxpool.Pool  // creates and drops the databases
	token    string         // tells this binary's databases from others' on a shared server
	template string         // "" until created
}

func setup() (_ *server, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	s := &server{token: token}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.close())
		}
	}()

	raw := os.Getenv(EnvURL)
	if raw != "" {
		defer func() {
			if err != nil {
				err = fmt.Errorf("server of %s: %w", EnvURL, err)
			}
		}()
	} else {
		if s.cluster, err = devpg.Start(ctx, devpg.Options{Fast: true}); err != nil {
			return nil, err
		}
		raw = s.cluster.URL("postgres")
	}
	if s.base, err = url.Parse(raw); err != nil || (s.base.Scheme != "postgres" && s.base.Scheme != "postgresql") {
		// Not echoed: it may hold a password.
		return nil, fmt.Errorf("%s is not a postgres:// URL", EnvURL)
	}
	if s.admin, err = pgxpool.New(ctx, raw); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}

	name := "syncer_template_" + token
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create template database: %w", err)
	}
	s.template = name
	if err := store.MigrateUp(ctx, s.url(name)); err != nil {
		return nil, fmt.Errorf("migrate template database: %w", err)
	}
	// No one connects to the template from now on, so clones never find
	// it busy; a session the migrator left behind is ended.
	if _, err := s.admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return nil, fmt.Errorf("mark template database: %w", err)
	}
	if _, err := s.admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name); err != nil {
		return nil, fmt.Errorf("disconnect template database: %w", err)
	}
	return s, nil
}

// url is the connection URL of database on this server, with the base
// URL's user, password and parameters.
func (s *server) url(database string) string {
	u := *s.base
	u.Path = "/" + database
	u.RawPath = ""
	return u.String()
}

// close drops the template from a server that outlives us and stops the
// one we started.
func (s *server) close() error {
	var errs []error
	if s.admin != nil {
		if s.template != "" && s.cluster == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			ident := pgx.Identifier{s.template}.Sanitize()
			// A template database cannot be dropped as such.
			if _, err := s.admin.Exec(ctx, "ALTER DATABASE "+ident+" WITH IS_TEMPLATE false"); err != nil {
				errs = append(errs, fmt.Errorf("unmark template database: %w", err))
			} else if _, err := s.admin.Exec(ctx, "DROP DATABASE "+ident+" WITH (FORCE)"); err != nil {
				errs = append(errs, fmt.Errorf("drop template database: %w", err))
			}
			cancel()
		}
		s.admin.Close()
	}
	if s.cluster != nil {
		errs = append(errs, s.cluster.Stop())
	}
	return errors.Join(errs...)
}

func randomToken() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random database name: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// maxNamePart keeps database names under PostgreSQL's 63-byte limit, which
// would otherwise truncate them and make two tests' names collide.
const maxNamePart = 32

// databaseName makes a database name a person can trace back to the test,
// e.g. "t_testcursor_resume_1a2b3c4d_7".
func databaseName(testName, token string, n int64) string {
	var b strings.Builder
	underscore := true // no leading underscore
	for _, r := range strings.ToLower(testName) {
		if b.Len() == maxNamePart {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			underscore = false
		} else if !underscore {
			b.WriteByte('_')
			underscore = true
		}
	}
	part := strings.TrimRight(b.String(), "_")
	return fmt.Sprintf("t_%s_%s_%d", part, token, n)
}
