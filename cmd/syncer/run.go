package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
	"github.com/syncer-audit/syncer/internal/poller"
	"github.com/syncer-audit/syncer/internal/store"
	"github.com/syncer-audit/syncer/internal/webhook"
)

const topUsage = `syncer copies the WorkOS Events API into a PostgreSQL audit trail.

usage: syncer <command> [flags]

commands:
  sync      one pass: fetch every new event, store it, exit (for cron)
  run       the same as a daemon, polling every --interval
  status    where the cursor stands, how fresh the archive is, what it holds
  migrate   up | down [N] | version: manage the database schema
  reprocess rebuild the Vault tables from the raw archive
  grant-reader ROLE  make ROLE a read-only user of the audit tables
  demo      try it: a throwaway database and a fake API, then an audit report
  fakeapi   serve the fake Events API (for demos, tests and benchmarks)
  devdb     start a throwaway PostgreSQL and print its URL, until Ctrl-C
  version   print the version

Exit codes: 0 done (or stopped by a signal after committing), 1 failed,
2 a setting is wrong, 3 the API rejects event types you asked for.

"syncer <command> --help" explains every setting of a command.
`

// run is the whole program; main only wires the process to it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return usageError("no command given")
	}
	var err error
	switch args[0] {
	case "sync":
		err = cmdSync(ctx, args[1:], getenv, stdout, stderr, false)
	case "run":
		err = cmdSync(ctx, args[1:], getenv, stdout, stderr, true)
	case "status":
		err = cmdStatus(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		err = cmdMigrate(ctx, args[1:], getenv, stdout, stderr)
	case "grant-reader":
		err = cmdGrantReader(ctx, args[1:], getenv, stdout, stderr)
	case "reprocess":
		err = cmdReprocess(ctx, args[1:], getenv, stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], getenv, stdout, stderr)
	case "fakeapi":
		err = cmdFakeAPI(ctx, args[1:], getenv, stdout, stderr)
	case "devdb":
		err = cmdDevDB(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "syncer", version())
		return nil
	case "help", "-h", "--help", "-help":
		if len(args) > 1 && args[1] != "help" {
			return run(ctx, []string{args[1], "--help"}, getenv, stdout, stderr)
		}
		fmt.Fprint(stdout, topUsage)
		return nil
	default:
		fmt.Fprint(stderr, topUsage)
		return usageError("unknown command %q", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// syncSettings are the settings of sync, run and demo.
type syncSettings struct {
	databaseURL string
	baseURL     string
	events      eventList
	since       since
	noMigrate   bool
	interval    time.Duration
	timeout     time.Duration
	attempts    int
	wait        bool
	listen      string
	workers     int
	rateLimit   int
	log         logSettings
}

func (s *syncSettings) register(c *command, daemon bool) {
	c.fs.StringVar(&s.databaseURL, "database-url", "", "PostgreSQL connection URL, e.g. postgres://user@host/db?sslmode=verify-full")
	c.env("database-url", "DATABASE_URL")
	c.fs.StringVar(&s.baseURL, "base-url", "https://api.workos.com", "WorkOS API base URL")
	c.env("base-url", "WORKOS_BASE_URL")
	c.fs.Var(&s.events, "events", "event types to fetch, a comma list; \"all\" for every type this binary knows\n(default: the 12 Vault types)")
	c.env("events", "SYNCER_EVENTS")
	c.fs.Var(&s.since, "since", "where the first run starts, when there is no cursor yet:\nan RFC 3339 time, a date or an age such as 72h (default 30d)")
	c.env("since", "SYNCER_SINCE")
	c.fs.BoolVar(&s.noMigrate, "no-migrate", false, "do not apply pending database migrations at start")
	c.env("no-migrate", "SYNCER_NO_MIGRATE")
	c.fs.DurationVar(&s.timeout, "request-timeout", 30*time.Second, "time limit of one API request, body included")
	c.env("request-timeout", "SYNCER_REQUEST_TIMEOUT")
	c.fs.IntVar(&s.workers, "backfill-workers", 8, "windows of a first run (and backfills of added types) fetched at once,\neach with its own stored cursor; 1 reads with a single cursor")
	c.env("backfill-workers", "SYNCER_BACKFILL_WORKERS")
	c.fs.IntVar(&s.rateLimit, "rate-limit", 6000, "API requests per minute at most, retries included (WorkOS allows 6000\nper key, shared with your other calls)")
	c.env("rate-limit", "SYNCER_RATE_LIMIT")
	c.fs.IntVar(&s.attempts, "max-attempts", 8, "attempts at one API request before the sync fails (retries back off\nfrom 0.5s to 30s, or as Retry-After says)")
	c.env("max-attempts", "SYNCER_MAX_ATTEMPTS")
	if daemon {
		c.fs.DurationVar(&s.interval, "interval", 30*time.Second, "time between polls once caught up")
		c.env("interval", "SYNCER_INTERVAL")
		c.fs.StringVar(&s.listen, "listen", ":9090", "address of /metrics, /healthz, /readyz and POST /webhooks/workos\n(\"off\" serves nothing)")
		c.env("listen", "SYNCER_LISTEN")
	} else {
		c.fs.BoolVar(&s.wait, "wait", false, "if another syncer is writing to the database, wait for it instead of exiting 0")
		c.env("wait", "SYNCER_WAIT")
	}
	s.log.register(c)
}

const apiKeyHelp = `
The API key is read only from the environment, WORKOS_API_KEY, never from a
flag: command lines are visible to every user of the machine.`

const webhookHelp = `
With WORKOS_WEBHOOK_SECRET set (environment only), POST /webhooks/workos
verifies WorkOS's signature and wakes the poller: new events land within
seconds instead of an interval. The payload itself is never stored; the
ordered Events API stays the only source of rows.`

func cmdSync(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, daemon bool) error {
	name, summary := "sync", "One pass: fetch every event newer than the cursor, store each page with the\ncursor in one transaction, and exit 0 once caught up."
	if daemon {
		name, summary = "run", "Run as a daemon: sync, then again every --interval, until SIGINT or SIGTERM,\nwhich finish the page being written and exit 0."
	}
	help := summary + "\n" + apiKeyHelp
	if daemon {
		help += "\n" + webhookHelp
	}
	c := newCommand(name, help, stdout)
	var s syncSettings
	s.register(c, daemon)
	if err := c.parse(args, getenv); err != nil {
		return err
	}
	if daemon && s.interval < time.Second {
		return usageError("--interval %s: want at least 1s", s.interval)
	}
	if s.workers < 1 || s.workers > 64 || s.rateLimit < 1 {
		return usageError("--backfill-workers %d, --rate-limit %d: want 1 to 64 workers and at least 1 request a minute", s.workers, s.rateLimit)
	}
	if s.attempts < 1 || s.timeout <= 0 {
		return usageError("--max-attempts %d, --request-timeout %s: want at least 1 and more than 0", s.attempts, s.timeout)
	}
	logger, err := s.log.logger(stderr)
	if err != nil {
		return err
	}
	if s.databaseURL == "" {
		return usageError("no database: set DATABASE_URL or --database-url (\"syncer demo\" runs without one)")
	}
	apiKey := getenv("WORKOS_API_KEY")
	if apiKey == "" {
		return usageError("no API key: set WORKOS_API_KEY (\"syncer demo\" runs without one)")
	}
	st, err := openStore(ctx, s.databaseURL, !s.noMigrate, logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil // a signal during start-up: nothing was written
		}
		return err
	}
	defer st.Close()
	tel := newTelemetry()
	st.Observe(tel.observeWrite)
	hooks := pollerHooks{observe: tel.observeAttempt, onSync: tel.recorder(st, logger)}
	if daemon {
		p, err := newPoller(&s, apiKey, st, logger, hooks)
		if err != nil {
			return err
		}
		return runDaemon(ctx, st, p, &s, tel, getenv("WORKOS_WEBHOOK_SECRET"), logger)
	}
	prog := newProgress(stderr, logger)
	defer prog.end()
	hooks.onPage = prog.page
	p, err := newPoller(&s, apiKey, st, logger, hooks)
	if err != nil {
		return err
	}
	lock, err := st.Lock(ctx, store.LockOptions{Wait: s.wait, Waiting: func() {
		logger.Info("another syncer holds the writer lock; waiting for it (--wait)")
	}})
	switch {
	case errors.Is(err, store.ErrLocked):
		fmt.Fprintln(stdout, "another syncer is writing to this database; nothing to do (--wait waits for it)")
		return nil
	case err != nil && ctx.Err() != nil:
		return nil
	case err != nil:
		return err
	}
	defer lock.Release()
	lctx, cancel := whileHeld(ctx, lock)
	defer cancel()
	res, err := p.Sync(lctx)
	if err != nil {
		if ctx.Err() != nil {
			logger.Info("interrupted; every page written so far is committed", "pages", res.Pages, "cursor", res.Cursor)
			return nil
		}
		if lctx.Err() != nil {
			return fmt.Errorf("lost the writer lock (the database connection failed) after %d pages; run again to continue: %w", res.Pages, err)
		}
		return exitCodeFor(err)
	}
	fmt.Fprintf(stdout, "caught up: %d events in %d pages in %s; cursor %s\n",
		res.Events, res.Pages, res.Duration.Round(time.Millisecond), orNone(res.Cursor))
	for _, g := range res.Gaps {
		fmt.Fprintf(stdout, "GAP: events from %s to %s may be lost: %s\n", g.From.UTC().Format(time.RFC3339), g.To.UTC().Format(time.RFC3339), g.Reason)
	}
	return nil
}

// whileHeld is ctx, cancelled also when the lock is lost.
func whileHeld(ctx context.Context, lock *store.Lock) (context.Context, context.CancelFunc) {
	lctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-lock.Lost():
			cancel()
		case <-lctx.Done():
		}
	}()
	return lctx, cancel
}

// runDaemon is "syncer run": the active replica holds the writer lock and
// polls; a standby waits for the lock and takes over within seconds of the
// active one dying. Losing the database loses the lock; it is taken again
// once the database is back.
func runDaemon(ctx context.Context, st *store.Store, p *poller.Poller, s *syncSettings, tel *telemetry, webhookSecret string, logger *slog.Logger) error {
	filter := s.events.String()
	if filter == "" {
		filter = "vault (default)"
	}
	logger.Info("syncer running", "interval", s.interval.String(), "events", filter)
	wake := make(chan struct{}, 1)
	if s.listen != "off" {
		ln, err := net.Listen("tcp", s.listen)
		if err != nil {
			return usageError("--listen %s: %v", s.listen, err)
		}
		var hook http.Handler
		if webhookSecret != "" {
			for _, r := range []string{webhook.Accepted, webhook.BadSignature, webhook.Stale, webhook.Malformed} {
				tel.webhooks.WithLabelValues(r)
			}
			hook = &webhook.Handler{
				Secret:  []byte(webhookSecret),
				Observe: func(r string) { tel.webhooks.WithLabelValues(r).Inc() },
				Wake: func() {
					select { // a wake already pending covers this one
					case wake <- struct{}{}:
					default:
					}
				},
				Logger: logger,
			}
		}
		tel.seedNewest(ctx, st)
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			if err := tel.serve(sctx, ln, st, s.interval, hook, logger); err != nil {
				logger.Error("http server stopped", "error", err)
			}
		}()
	}
	failures := 0
	for {
		lock, err := st.Lock(ctx, store.LockOptions{Wait: true, Waiting: func() {
			logger.Info("standby: another syncer holds the writer lock; taking over when it stops")
		}})
		if ctx.Err() != nil {
			logger.Info("stopped by signal; every page written is committed")
			return nil
		}
		if err != nil {
			failures++
			wait := min(s.interval, time.Second<<min(failures-1, 10))
			logger.Error("cannot take the writer lock; will retry", "error", err, "retry_in", wait.String())
			if sleepCtx(ctx, wait) != nil {
				return nil
			}
			continue
		}
		failures = 0
		logger.Info("active: holding the writer lock")
		tel.setActive(true)
		lctx, cancel := whileHeld(ctx, lock)
		err = p.Run(lctx, s.interval, wake)
		cancel()
		lock.Release()
		tel.setActive(false)
		if ctx.Err() != nil {
			logger.Info("stopped by signal; every page written is committed")
			return nil
		}
		if err != nil {
			return exitCodeFor(err)
		}
		logger.Warn("lost the writer lock: the database connection failed; taking it again")
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func exitCodeFor(err error) error {
	if errors.Is(err, poller.ErrRejectedTypes) {
		return &codedError{code: exitRejected, err: err}
	}
	return err
}

// pollerHooks are the observers the commands attach.
type pollerHooks struct {
	observe func(poller.Attempt)
	onSync  func(poller.Result, error)
	onPage  func(poller.PageInfo)
}

// newPoller builds the client and poller from the settings; the default
// type filter (every Vault type) applies when --events is not given.
func newPoller(s *syncSettings, apiKey string, sink poller.Sink, logger *slog.Logger, hooks pollerHooks) (*poller.Poller, error) {
	client, err := poller.NewClient(poller.ClientConfig{
		BaseURL:        s.baseURL,
		APIKey:         apiKey,
		HTTPClient:     &http.Client{},
		RequestTimeout: s.timeout,
		MaxAttempts:    s.attempts,
		RateLimit:      s.rateLimit,
		Observe:        hooks.observe,
		Logger:         logger,
	})
	if err != nil {
		return nil, usageError("%v", err)
	}
	events := s.events.types
	if !s.events.explicit {
		events = model.VaultTypes()
	}
	from := s.since.t
	if from.IsZero() {
		from = time.Now().Add(-30 * 24 * time.Hour)
	}
	p, err := poller.New(poller.Config{
		Events:          events,
		BuiltinEvents:   !s.events.explicit || s.events.all,
		Since:           from,
		BackfillWorkers: s.workers,
		OnSync:          hooks.onSync,
		OnPage:          hooks.onPage,
		Logger:          logger,
	}, client, sink)
	if err != nil {
		return nil, usageError("%v", err)
	}
	return p, nil
}

func openStore(ctx context.Context, databaseURL string, migrate bool, logger *slog.Logger) (*store.Store, error) {
	if migrate {
		if err := store.MigrateUp(ctx, databaseURL); err != nil {
			return nil, err
		}
	} else {
		m, err := store.NewMigrator(databaseURL)
		if err != nil {
			return nil, err
		}
		v, dirty, err := m.Version()
		m.Close()
		if err != nil {
			return nil, err
		}
		if v == 0 || dirty {
			return nil, usageError("the database's schema is not ready (version %d, dirty %v) and --no-migrate is set: run syncer migrate up", v, dirty)
		}
	}
	return store.Open(ctx, databaseURL)
}

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCommand("migrate", "usage: syncer migrate up | down [N] | version\n\nup applies every pending migration; down reverts the last N (default 1);\nversion prints the schema version.", stdout)
	c.args = true
	var databaseURL string
	c.fs.StringVar(&databaseURL, "database-url", "", "PostgreSQL connection URL")
	c.env("database-url", "DATABASE_URL")
	if err := c.parse(args, getenv); err != nil {
		return err
	}
	rest := c.fs.Args()
	valid := len(rest) == 1 && (rest[0] == "up" || rest[0] == "down" || rest[0] == "version") ||
		len(rest) == 2 && rest[0] == "down"
	if !valid {
		return usageError("migrate: want up, down [N] or version")
	}
	if databaseURL == "" {
		return usageError("no database: set DATABASE_URL or --database-url")
	}
	m, err := store.NewMigrator(databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	switch rest[0] {
	case "up":
		if err := m.Up(); err != nil {
			return err
		}
	case "down":
		steps := 1
		if len(rest) == 2 {
			if steps, err = strconv.Atoi(rest[1]); err != nil || steps < 1 {
				return usageError("migrate down %q: want a number of steps, at least 1", rest[1])
			}
		}
		if err := m.Down(steps); err != nil {
			return err
		}
	}
	v, dirty, err := m.Version()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema version %d", v)
	if dirty {
		fmt.Fprint(stdout, " (dirty: a migration failed half-way; fix it by hand, then force the version)")
	}
	fmt.Fprintln(stdout)
	return nil
}

// version is the module version the binary was built from, with the VCS
// revision when the build recorded one.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
