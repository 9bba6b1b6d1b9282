package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/syncer-audit/syncer/internal/model"
	"github.com/syncer-audit/syncer/internal/store"
)

// Exit codes. Scripts may rely on them.
const (
	exitError    = 1 // the sync failed; the message says why
	exitUsage    = 2 // a flag or setting is wrong
	exitRejected = 3 // the API rejects event types of the user's filter
)

type exitCoder interface{ ExitCode() int }

type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }
func (e *codedError) ExitCode() int { return e.code }

func usageError(format string, args ...any) error {
	return &codedError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// command is a flag set whose flags may also come from environment
// variables; a flag given on the command line wins.
type command struct {
	fs      *flag.FlagSet
	summary string
	args    bool              // takes positional arguments
	envs    map[string]string // flag name -> environment variable
	stdout  io.Writer
}

// newCommand makes a command whose --help goes to stdout; a wrong flag is
// an error that run's caller prints.
func newCommand(name, summary string, stdout io.Writer) *command {
	c := &command{fs: flag.NewFlagSet(name, flag.ContinueOnError), summary: summary, envs: map[string]string{}, stdout: stdout}
	c.fs.SetOutput(io.Discard)
	return c
}

func (c *command) usage(w io.Writer) {
	if !strings.HasPrefix(c.summary, "usage:") {
		fmt.Fprintf(w, "usage: syncer %s [flags]\n\n", c.fs.Name())
	}
	fmt.Fprintln(w, c.summary)
	if !hasFlags(c.fs) {
		return
	}
	fmt.Fprintln(w, "\nflags (a flag wins over its environment variable):")
	c.fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if env := c.envs[f.Name]; env != "" {
			line += "   (env " + env + ")"
		}
		fmt.Fprintln(w, line)
		fmt.Fprintf(w, "        %s", strings.ReplaceAll(help, "\n", "\n        "))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

func hasFlags(fs *flag.FlagSet) bool {
	any := false
	fs.VisitAll(func(*flag.Flag) { any = true })
	return any
}

// databaseFlag registers --database-url, from DATABASE_URL.
func (c *command) databaseFlag(help string) *string {
	var url string
	c.fs.StringVar(&url, "database-url", "", help)
	c.env("database-url", "DATABASE_URL")
	return &url
}

// openDatabase opens the store at url, which the user must have given.
func openDatabase(ctx context.Context, url string) (*store.Store, error) {
	if url == "" {
		return nil, usageError("no database: set DATABASE_URL or --database-url")
	}
	return store.Open(ctx, url)
}

// env ties flag name to environment variable env.
func (c *command) env(name, env string) { c.envs[name] = env }

// parse reads the command line, then fills every flag not given there from
// its environment variable. The values never appear in errors: a secret
// may be among them.
func (c *command) parse(args []string, getenv func(string) string) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(c.stdout)
			return err
		}
		return usageError("%v%s (see syncer %s --help)", err, hint(err.Error(), c.fs), c.fs.Name())
	}
	if !c.args && c.fs.NArg() > 0 {
		// A stray word would silently end the flags: "sync now --events x"
		// would ignore --events.
		return usageError("unexpected argument %q (see syncer %s --help)", c.fs.Arg(0), c.fs.Name())
	}
	given := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, env := range c.envs {
		if given[name] {
			continue
		}
		if v := getenv(env); v != "" {
			if err := c.fs.Set(name, v); err != nil {
				return usageError("environment variable %s: %v%s", env, err, hint(err.Error(), c.fs, name))
			}
		}
	}
	return nil
}

// hint says what a flag's value should look like, when the flag
// package's own message ("parse error") does not.
func hint(msg string, fs *flag.FlagSet, names ...string) string {
	if !strings.Contains(msg, "parse error") {
		return ""
	}
	for _, name := range names {
		if f := fs.Lookup(name); f != nil {
			return hintFor(f)
		}
	}
	var out string
	fs.VisitAll(func(f *flag.Flag) {
		if out == "" && strings.Contains(msg, "-"+f.Name+":") {
			out = hintFor(f)
		}
	})
	return out
}

func hintFor(f *flag.Flag) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ": want true or false"
	}
	if _, err := time.ParseDuration(f.DefValue); err == nil {
		return ": want a duration such as 30s, 5m or 1h"
	}
	if _, err := strconv.Atoi(f.DefValue); err == nil {
		return ": want a whole number"
	}
	return ""
}

// eventList is the --events setting: a comma list, or "all".
type eventList struct {
	types    []string
	explicit bool // given by the user
	all      bool // "all": the binary's own list
}

func (e *eventList) String() string {
	switch {
	case e == nil || !e.explicit:
		return ""
	case e.all:
		return "all"
	}
	return strings.Join(e.types, ",")
}

func (e *eventList) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "all" {
		e.types, e.explicit, e.all = model.KnownTypes(), true, true
		return nil
	}
	var types []string
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if strings.ContainsAny(t, " \t\n") {
			return fmt.Errorf("%q is not an event type name", t)
		}
		types = append(types, t)
	}
	if len(types) == 0 {
		return errors.New("no event type given")
	}
	e.types, e.explicit, e.all = types, true, false
	return nil
}

// since is the --since setting: where a first run starts.
type since struct{ t time.Time }

func (s *since) String() string {
	if s == nil || s.t.IsZero() {
		return ""
	}
	return s.t.Format(time.RFC3339)
}

// Set accepts an RFC 3339 time, a date, or an age such as 72h or 30d.
func (s *since) Set(v string) error {
	v = strings.TrimSpace(v)
	t, err := parseSince(v, time.Now())
	if err != nil {
		return err
	}
	s.t = t
	return nil
}

func parseSince(v string, now time.Time) (time.Time, error) {
	var t time.Time
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 36500 {
			return t, fmt.Errorf("%q: want a number of days from 0 to 36500, such as 30d", v)
		}
		t = now.Add(-time.Duration(n) * 24 * time.Hour)
	} else if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return t, fmt.Errorf("%q: an age cannot be negative", v)
		}
		t = now.Add(-d)
	} else if day, err := time.Parse("2006-01-02", v); err == nil {
		t = day
	} else if t, err = model.ParseTime(v); err != nil {
		return t, fmt.Errorf("%q: want an RFC 3339 time, a date (2026-01-31) or an age (72h, 30d)", v)
	}
	if t.After(now) {
		return t, fmt.Errorf("%q is in the future: nothing would be synced", v)
	}
	return t, nil
}

// logSettings are the flags every long-running command has.
type logSettings struct {
	format string
	level  logLevel
}

// logLevel is a slog.Level that prints in lower case, as it is written.
type logLevel struct{ slog.Level }

func (l *logLevel) String() string { return strings.ToLower(l.Level.String()) }
func (l *logLevel) Set(v string) error {
	return l.UnmarshalText([]byte(v))
}

func (l *logSettings) register(c *command) {
	c.fs.StringVar(&l.format, "log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text or json")
	c.env("log-format", "SYNCER_LOG_FORMAT")
	c.fs.Var(&l.level, "log-level", "least severe level logged: debug, info, warn, error")
	c.env("log-level", "SYNCER_LOG_LEVEL")
}

func (l *logSettings) logger(stderr io.Writer) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: l.level.Level}
	switch l.format {
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "auto":
		if isTerminal(stderr) {
			return slog.New(slog.NewTextHandler(stderr, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, usageError("--log-format %q: want auto, text or json", l.format)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
