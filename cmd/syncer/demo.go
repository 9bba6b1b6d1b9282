package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncer-audit/syncer/internal/devpg"
	"github.com/syncer-audit/syncer/internal/fakeapi"
)

const demoSummary = `Try the syncer end to end and print an audit report.

With no DATABASE_URL it starts a throwaway PostgreSQL from the installed server
binaries (data in --pg-dir), or in Docker where an engine runs. With no
WORKOS_API_KEY it serves a fake Events API loaded with a generated stream of
Vault and other events. With both set, it syncs the real API into the real
database, exactly as "syncer sync" does, then prints the same report.` + "\n" + apiKeyHelp

func cmdDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCommand("demo", demoSummary, stdout)
	var s syncSettings
	s.register(c, false)
	var (
		n     int
		pgDir string
		rows  int
	)
	c.fs.IntVar(&n, "fake-events", 5000, "events the fake API serves (without WORKOS_API_KEY)")
	c.fs.StringVar(&pgDir, "pg-dir", ".syncer/pgdata", "data directory of the throwaway PostgreSQL (without DATABASE_URL)")
	c.fs.IntVar(&rows, "rows", 15, "rows of the access log to print")
	if err := c.parse(args, getenv); err != nil {
		return err
	}
	if n < 1 || n > 5_000_000 {
		return usageError("--fake-events %d: want 1 to 5000000", n)
	}
	if s.log.format == "auto" {
		s.log.format = "text"
	}
	levelGiven := getenv("SYNCER_LOG_LEVEL") != ""
	c.fs.Visit(func(f *flag.Flag) { levelGiven = levelGiven || f.Name == "log-level" })
	if !levelGiven {
		s.log.level.Level = slog.LevelWarn // the report says what happened
	}
	logger, err := s.log.logger(stderr)
	if err != nil {
		return err
	}

	if s.databaseURL != "" && getenv("WORKOS_API_KEY") == "" {
		// The fake API's made-up events must never land in a database
		// that may hold, or come to hold, a real audit trail.
		return usageError("demo: DATABASE_URL is set but WORKOS_API_KEY is not: the fake API's made-up events would be written " +
			"into that database. Unset DATABASE_URL to use a throwaway database, or set WORKOS_API_KEY to sync the real API")
	}
	if s.databaseURL == "" {
		cluster, err := devpg.Start(ctx, devpg.Options{Dir: pgDir, Logger: logger})
		if errors.Is(err, devpg.ErrUnreachable) {
			// As root the server runs as "postgres", which cannot reach a
			// checkout under a private directory; a temporary one it can.
			fmt.Fprintf(stdout, "note: %v\nnote: using a temporary data directory instead\n", err)
			pgDir = "(temporary)"
			cluster, err = devpg.Start(ctx, devpg.Options{Logger: logger})
		}
		if err != nil {
			return fmt.Errorf("start a throwaway PostgreSQL: %w", err)
		}
		defer cluster.Stop()
		if err := recreateDatabase(ctx, cluster.URL("postgres"), "syncer_demo"); err != nil {
			return err
		}
		s.databaseURL = cluster.URL("syncer_demo")
		fmt.Fprintf(stdout, "database: throwaway PostgreSQL, data in %s, database syncer_demo (recreated)\n", pgDir)
	} else {
		fmt.Fprintln(stdout, "database: DATABASE_URL")
	}

	apiKey := getenv("WORKOS_API_KEY")
	if apiKey == "" {
		apiKey = "sk_test_demo_" + randomHex(8)
		url, vault, stop, err := serveFake(ctx, apiKey, n, logger)
		if err != nil {
			return err
		}
		defer stop()
		s.baseURL = url
		fmt.Fprintf(stdout, "events api: fake WorkOS Events API at %s serving %d generated events, %d of them Vault events\n", url, n, vault)
	} else {
		fmt.Fprintf(stdout, "events api: %s (WORKOS_API_KEY)\n", s.baseURL)
	}

	st, err := openStore(ctx, s.databaseURL, !s.noMigrate, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := newPoller(&s, apiKey, st, logger, pollerHooks{})
	if err != nil {
		return err
	}
	first, err := p.Sync(ctx)
	if err != nil {
		return exitCodeFor(err)
	}
	second, err := p.Sync(ctx)
	if err != nil {
		return exitCodeFor(err)
	}
	fmt.Fprintf(stdout, "sync: %d events in %d pages in %s; a second sync found %d new events\n\n",
		first.Events, first.Pages, first.Duration.Round(time.Millisecond), second.Events)
	return printReport(ctx, stdout, st, rows)
}

// serveFake starts the fake API on a loopback port with n generated events
// spread over the last 20 days.
func serveFake(ctx context.Context, apiKey string, n int, logger *slog.Logger) (url string, vault int, stop func(), err error) {
	step := 20 * 24 * time.Hour / time.Duration(n)
	gen := fakeapi.NewGenerator(fakeapi.GenConfig{Seed: 1, Start: time.Now().Add(-20 * 24 * time.Hour).Truncate(time.Second), Step: step})
	srv := fakeapi.New(fakeapi.Config{APIKey: apiKey, Generator: gen, Logger: logger})
	evs := gen.Take(n)
	srv.Append(evs...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, nil, fmt.Errorf("serve the fake API: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln) //nolint:errcheck // ends with Shutdown
	return "http://" + ln.Addr().String(), fakeapi.VaultCount(evs), func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx) //nolint:errcheck
	}, nil
}

func recreateDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to the throwaway PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ident := pgx.Identifier{name}.Sanitize()
	for _, sql := range []string{"DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)", "CREATE DATABASE " + ident} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("recreate database %s: %w", name, err)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed: " + err.Error()))
	}
	return hex.EncodeToString(b)
}

func cmdDevDB(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCommand("devdb", `Start a throwaway PostgreSQL from the installed server binaries (or Docker),
print its DATABASE_URL, and keep it running until Ctrl-C or SIGTERM. For trying
"syncer sync" against "syncer fakeapi" without a database of your own.`, stdout)
	var dir string
	c.fs.StringVar(&dir, "pg-dir", "", "data directory to keep between runs (default: a temporary one, removed at exit)")
	if err := c.parse(args, getenv); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cluster, err := devpg.Start(ctx, devpg.Options{Dir: dir, Logger: logger})
	if err != nil {
		return fmt.Errorf("start a throwaway PostgreSQL: %w", err)
	}
	defer cluster.Stop()
	fmt.Fprintf(stdout, "DATABASE_URL=%s\n", cluster.URL("postgres"))
	<-ctx.Done()
	return nil
}
