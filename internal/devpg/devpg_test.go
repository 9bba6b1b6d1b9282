package devpg

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func TestStartQueryStop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, err := Start(ctx, Options{Fast: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })

	if err := c.CreateDatabase(ctx, "demo", ""); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.URL("demo"))
	if err != nil {
		t.Fatal(err)
	}
	var db string
	var sum int
	if err := conn.QueryRow(ctx, "SELECT current_database(), 40 + 2").Scan(&db, &sum); err != nil {
		t.Fatal(err)
	}
	if db != "demo" || sum != 42 {
		t.Errorf("got database %q and sum %d, want demo and 42", db, sum)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" {
		t.Errorf("fsync = %q with Fast, want off", fsync)
	}
	// Left open on purpose: a fast shutdown must not wait for clients.
	_ = conn

	pid := c.server.cmd.Process.Pid
	tempDir := c.tempDir
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// The server and every backend were in one process group; none is left.
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d after Stop: kill 0 = %v, want ESRCH", pid, err)
	}
	if _, err := os.Stat(tempDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temp dir %s after Stop: stat = %v, want not exist", tempDir, err)
	}
	if _, err := pgx.Connect(ctx, c.URL("postgres")); err == nil {
		t.Error("connected after Stop")
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
}

// openTempDir is a temp dir that the postgres user can reach when the test
// runs as root, unlike t.TempDir(), whose parent is private.
func openTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "devpg-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReuseDir(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dataDir := filepath.Join(openTempDir(t), "cluster")

	c, err := Start(ctx, Options{Dir: dataDir, Fast: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err != nil {
		t.Fatalf("data dir given by the caller is gone after Stop: %v", err)
	}

	c2, err := Start(ctx, Options{Dir: dataDir, Fast: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Stop() })
	conn, err = pgx.Connect(ctx, c2.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "still here" {
		t.Errorf("row after restart = %q, want %q", v, "still here")
	}
}

func TestDirNotReachableByServerUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root hands the server to another user")
	}
	// t.TempDir()'s parent is 0700 root: the postgres user cannot enter it.
	dataDir := filepath.Join(t.TempDir(), "cluster")
	c, err := Start(t.Context(), Options{Dir: dataDir, Fast: true})
	if err == nil {
		_ = c.Stop()
		t.Fatal("Start succeeded in a directory the postgres user cannot reach")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "not reachable by user postgres") {
		t.Errorf("error does not say who cannot reach the dir: %v", err)
	}
}

func TestNotFound(t *testing.T) {
	// No Docker either: point testcontainers at a socket that does not
	// exist, and away from any ~/.testcontainers.properties.
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	empty := t.TempDir()

	_, err := Start(t.Context(), Options{BinDir: empty})
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("Start with an empty BinDir = %v, want a *NotFoundError", err)
	}
	t.Log(err)
	for _, want := range []string{"no PostgreSQL server binaries found", empty, "apt-get install postgresql", "SYNCER_PG_BIN", "Docker"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"15", "9.6", 1},
		{"9.6", "15", -1},
		{"16", "16", 0},
		{"9.6", "9.5", 1},
		{"10", "9.6", 1},
		{"beta", "9", -1},
	}
	for _, tt := range tests {
		got := compareVersions(tt.a, tt.b)
		if sign(got) != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func sign(n int) int {
	switch {
	case n > 0:
		return 1
	case n < 0:
		return -1
	}
	return 0
}
