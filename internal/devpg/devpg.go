package devpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
)

// readyTimeout bounds how long Start waits for a started server to accept
// connections, on top of whatever deadline the caller's ctx carries.
const readyTimeout = 30 * time.Second

// Options says where the cluster lives and how it runs. The zero value is a
// fresh cluster in a temporary directory on a free port.
type Options struct {
	// Dir is the data directory. Empty means a new temporary directory that
	// Stop removes. A directory that already holds a cluster (PG_VERSION
	// exists) is reused as it is, so a demo can keep its data between runs.
	Dir string
	// BinDir is the directory holding initdb and postgres. Empty means
	// search $SYNCER_PG_BIN, then PATH, then /usr/lib/postgresql/*/bin
	// (highest version first).
	BinDir string
	// Port is the TCP port on 127.0.0.1. Zero picks a free one.
	Port int
	// Fast trades durability for speed (fsync, synchronous_commit and
	// full_page_writes off). Only for data nobody minds losing: tests.
	Fast bool
	// Logger receives start and stop events and, at debug level, the
	// server's own log. Nil discards them.
	Logger *slog.Logger
}

// Cluster is a running PostgreSQL server started by Start. Its only user is
// "postgres", who needs no password.
type Cluster struct {
	host   string
	port   int
	logger *slog.Logger

	// A local server process; nil when running in a container.
	server *serverProcess
	// tempDir holds the socket and, when Options.Dir was empty, the data
	// directory. Stop removes it.
	tempDir string

	// A Docker container; nil when running a local server.
	container testcontainers.Container

	stopOnce sync.Once
	stopErr  error
}

// Start starts a server and returns once it accepts connections. The caller
// must call Stop, also when the cluster is no longer wanted because of an
// error elsewhere, or the server keeps running until this process exits.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("devpg: Options.Port %d is not a TCP port", opts.Port)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	binDir, looked := findBinDir(opts.BinDir)
	if binDir != "" {
		c, err := startLocal(ctx, opts, binDir, logger)
		if err != nil {
			return nil, fmt.Errorf("devpg: %w", err)
		}
		return c, nil
	}

	if dockerErr := dockerReachable(ctx); dockerErr != nil {
		return nil, &NotFoundError{Looked: looked, Docker: dockerErr}
	}
	c, err := startContainer(ctx, opts, logger)
	if err != nil {
		return nil, fmt.Errorf("devpg: %w", err)
	}
	return c, nil
}

// NotFoundError means there was no way to run PostgreSQL here: no server
// binaries and no Docker engine. Its message tells a person what to install.
type NotFoundError struct {
	// Looked lists the places searched for initdb and postgres.
	Looked []string
	// Docker is why the Docker engine could not be used.
	Docker error
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("devpg: no PostgreSQL server binaries found (looked in %s) and no Docker engine reachable (%v); "+
		"install them (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; macOS: brew install postgresql), "+
		"or set SYNCER_PG_BIN to the directory that holds initdb and postgres, or start a Docker engine",
		strings.Join(e.Looked, ", "), strings.ReplaceAll(fmt.Sprint(e.Docker), "\n", "; "))
}

func (e *NotFoundError) Unwrap() error { return e.Docker }

// URL is the connection string for database on this cluster, in the form
// pgx and golang-migrate both accept.
func (c *Cluster) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort(c.host, strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates database name, cloned from template when it is not
// empty. PostgreSQL refuses to clone a template that has open connections,
// or to run two clones of one template at once; callers that clone in
// parallel must take turns.
func (c *Cluster) CreateDatabase(ctx context.Context, name, template string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (a fast shutdown: sessions are disconnected,
// nothing is lost that was committed), waits for it to exit, and removes the
// temporary directory if Start made one. Calling it again returns the
// first result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		if c.server != nil {
			errs = append(errs, c.server.stop())
		}
		if c.container != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := c.container.Terminate(ctx); err != nil {
				errs = append(errs, fmt.Errorf("terminate container: %w", err))
			}
			cancel()
		}
		if c.tempDir != "" {
			if err := removeAll(c.tempDir); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			c.stopErr = fmt.Errorf("devpg: stop: %w", err)
		}
		c.logger.Info("postgres stopped", "port", c.port)
	})
	return c.stopErr
}

// waitReady polls until the server accepts a connection that passes check
// (nil: any connection will do). exited, when not nil, is closed if the
// server process dies, which ends the wait at once.
func waitReady(ctx context.Context, dsn string, exited <-chan struct{}, check func(context.Context, *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := tryConnect(ctx, dsn, check)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("server exited before accepting connections")
		case <-ctx.Done():
			return fmt.Errorf("server did not accept connections: %w (last attempt: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func tryConnect(ctx context.Context, dsn string, check func(context.Context, *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if check != nil {
		return check(ctx, conn)
	}
	return nil
}
