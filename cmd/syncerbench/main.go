// Command syncerbench measures the syncer end to end on this machine: the
// real binary, as a child process, against the fake Events API on loopback
// and a throwaway PostgreSQL with durable settings. It compares it with a
// bare COPY of the same rows (the ceiling) and with a hand-written
// insert-per-event loop (the naive baseline), checks the page-latency and
// backfill modes, prints the figures and appends them to a JSON Lines file.
//
//	go run ./cmd/syncerbench [-n 200000] [-naive-n 20000] [-latency-n 20000]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/syncer-audit/syncer/internal/devpg"
	"github.com/syncer-audit/syncer/internal/fakeapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncerbench:", err)
		os.Exit(1)
	}
}

const (
	apiKey    = "sk_test_syncerbench"
	window    = 25 * 24 * time.Hour // the stream's span, inside --since 30d
	pageDelay = 100 * time.Millisecond
	maxEvents = 5_000_000 // the stream is held in memory, twice for the ceiling
)

type options struct {
	n, naiveN, latencyN int
	latencyMode         bool
	backfill            bool
	workers             int
	results             string
	profile             string
	syncerBin           string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("syncerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 200_000, "events in the throughput stream (syncer and ceiling)")
	fs.IntVar(&o.naiveN, "naive-n", 20_000, "events the naive baseline stores (at most -n): it makes one commit per event")
	fs.BoolVar(&o.latencyMode, "latency-mode", true, "also sync a smaller stream from a fake that takes 100 ms per page")
	// 50,000: the backfill run has about a second of fixed cost (start-up,
	// migrations, a probe, the hand-over poll) that a shorter stream, over in
	// 2.5 s at 8 workers, cannot amortize.
	fs.IntVar(&o.latencyN, "latency-n", 50_000, "events in the latency-mode stream")
	fs.BoolVar(&o.backfill, "backfill", true, "with -latency-mode, also sync that stream with --backfill-workers")
	fs.IntVar(&o.workers, "backfill-workers", 8, "workers for the backfill mode")
	fs.StringVar(&o.results, "results", "bench/results.jsonl", "file to append the figures to, one JSON line per run")
	fs.StringVar(&o.profile, "profile", "", "have the syncer write a CPU profile here (env SYNCER_CPUPROFILE), if it supports it")
	fs.StringVar(&o.syncerBin, "syncer", "", "syncer binary to measure (default: build ./cmd/syncer)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.n < 1 || o.n > maxEvents:
		return o, fmt.Errorf("-n %d: want 1 to %d", o.n, maxEvents)
	case o.naiveN < 1:
		return o, fmt.Errorf("-naive-n %d: want at least 1", o.naiveN)
	case o.latencyN < 100 || o.latencyN > maxEvents:
		return o, fmt.Errorf("-latency-n %d: want 100 to %d", o.latencyN, maxEvents)
	case o.workers < 2 || o.workers > 64:
		return o, fmt.Errorf("-backfill-workers %d: want 2 to 64", o.workers)
	}
	o.naiveN = min(o.naiveN, o.n)
	return o, nil
}

// bench holds what every measurement shares: the binary under test and
// the cluster.
type bench struct {
	bin     string
	cluster *devpg.Cluster
	log     io.Writer
	workers bool // the binary knows --backfill-workers
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseOptions(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	load := loadAvg() // before the build adds to it
	tmp, err := os.MkdirTemp("", "syncerbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	b := &bench{bin: opts.syncerBin, log: stderr}
	if b.bin == "" {
		b.logf("building ./cmd/syncer")
		if b.bin, err = buildSyncer(ctx, tmp); err != nil {
			return err
		}
	}
	b.workers = strings.Contains(syncHelp(ctx, b.bin), "backfill-workers")

	b.logf("starting PostgreSQL (durable settings: devpg Fast=false)")
	b.cluster, err = devpg.Start(ctx, devpg.Options{Fast: false})
	if err != nil {
		return err
	}
	defer b.cluster.Stop()

	rep := report{
		Time:     time.Now().UTC().Format(time.RFC3339),
		Revision: gitRevision(ctx),
		N:        opts.n,
		Cores:    runtime.NumCPU(),
		LoadAvg:  load,
	}
	if rep.Postgres, err = serverSettings(ctx, b.cluster.URL("postgres")); err != nil {
		return err
	}
	if err := b.throughput(ctx, opts, &rep); err != nil {
		return err
	}
	if opts.latencyMode {
		if err := b.latency(ctx, opts, &rep); err != nil {
			return err
		}
	}
	rep.Checks = rep.checks()
	rep.print(stdout)
	if err := rep.appendTo(opts.results); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nappended to %s\n", opts.results)
	return nil
}

// throughput measures the syncer, the ceiling and the naive baseline on
// the -n stream.
func (b *bench) throughput(ctx context.Context, opts options, rep *report) error {
	b.logf("generating %d events", opts.n)
	evs := generate(opts.n, time.Now())
	for _, ev := range evs {
		rep.JSONBytes += int64(len(ev.JSON))
	}

	var env []string
	if opts.profile != "" {
		path, err := filepath.Abs(opts.profile)
		if err != nil {
			return err
		}
		_ = os.Remove(path)
		env = append(env, "SYNCER_CPUPROFILE="+path)
		defer func() {
			if _, err := os.Stat(path); err == nil {
				rep.Notes = append(rep.Notes, "syncer CPU profile: "+path)
			} else {
				rep.Notes = append(rep.Notes, "no CPU profile written: this syncer ignores SYNCER_CPUPROFILE")
			}
		}()
	}
	if b.workers {
		rep.Notes = append(rep.Notes, "the syncer run passes no --backfill-workers: it uses the binary's default")
	}
	b.logf("syncer: syncing %d events", opts.n)
	args := []string{"sync", "--events", "all", "--since", "30d"}
	if strings.Contains(syncHelp(ctx, b.bin), "rate-limit") {
		// The API's budget (6,000 requests a minute, 10,000 events a
		// second) caps any client of the live API; against the fake the
		// pipeline itself is measured, so the budget is lifted here.
		args = append(args, "--rate-limit", "10000000")
		rep.Notes = append(rep.Notes, "the throughput run lifts --rate-limit: at the API's 6,000 requests a minute no client passes 10,000 events/s")
	}
	run, _, err := b.syncChild(ctx, "bench_syncer", fakeapi.Config{APIKey: apiKey}, evs, args, env)
	if err != nil {
		return err
	}
	rep.Syncer = newSyncerFigures(args, run, opts.n, rep.JSONBytes)

	b.logf("ceiling: decode, project and COPY %d events", opts.n)
	url, err := b.freshDB(ctx, "bench_ceiling")
	if err != nil {
		return err
	}
	c, err := loadCeiling(ctx, url, evs)
	if err != nil {
		return err
	}
	if err := verifyCount(ctx, url, "ceiling", opts.n); err != nil {
		return err
	}
	rep.Ceiling = newCeilingFigures(c, opts.n)

	b.logf("naive: one INSERT per event, %d events", opts.naiveN)
	fake, err := startFake(fakeapi.Config{APIKey: apiKey}, evs[:opts.naiveN])
	if err != nil {
		return err
	}
	defer fake.Close()
	if url, err = b.freshDB(ctx, "bench_naive"); err != nil {
		return err
	}
	stored, wall, err := runNaive(ctx, fake.URL, apiKey, url, time.Now().Add(-30*24*time.Hour), opts.naiveN)
	if err != nil {
		return err
	}
	if err := verifyCount(ctx, url, "naive", opts.naiveN); err != nil {
		return err
	}
	rep.Naive = &naiveFigures{N: stored, WallS: wall.Seconds(), EventsPerS: float64(stored) / wall.Seconds()}
	return nil
}

// latency measures the syncer against a fake that takes 100 ms per page,
// with one worker and then with several.
func (b *bench) latency(ctx context.Context, opts options, rep *report) error {
	n := opts.latencyN
	b.logf("latency mode: %d events, %s per page", n, pageDelay)
	evs := generate(n, time.Now())
	cfg := fakeapi.Config{APIKey: apiKey, Latency: pageDelay}
	args := []string{"sync", "--events", "all", "--since", "30d"}
	seqArgs := args
	if b.workers {
		seqArgs = slices.Concat(args, []string{"--backfill-workers", "1"})
	} else {
		rep.Notes = append(rep.Notes, "this syncer has no --backfill-workers flag: latency mode ran without it")
	}
	run, _, err := b.syncChild(ctx, "bench_latency", cfg, evs, seqArgs, nil)
	if err != nil {
		return err
	}
	seq := float64(n) / run.Wall.Seconds()
	bound := float64(time.Second/pageDelay) * 100
	rep.Latency = &latencyFigures{N: n, Args: strings.Join(seqArgs, " "), WallS: run.Wall.Seconds(),
		EventsPerS: seq, BoundEventsPerS: bound, Ratio: seq / bound}
	if !opts.backfill {
		return nil
	}

	b.logf("backfill mode: %d events, %d workers, %s per page", n, opts.workers, pageDelay)
	if !b.workers {
		rep.Notes = append(rep.Notes, "backfill mode skipped: this syncer has no --backfill-workers flag")
		return nil
	}
	bfArgs := slices.Concat(args, []string{"--backfill-workers", fmt.Sprint(opts.workers)})
	run, api, err := b.syncChild(ctx, "bench_backfill", cfg, evs, bfArgs, nil)
	if err != nil {
		return err
	}
	rate := float64(n) / run.Wall.Seconds()
	target := float64(opts.workers) * seq
	rep.Backfill = &backfillFigures{N: n, Workers: opts.workers, Args: strings.Join(bfArgs, " "), WallS: run.Wall.Seconds(),
		EventsPerS: rate, TargetEventsPerS: target, Ratio: rate / target, PeakRSSMB: mb(run.PeakRSSKiB * 1024),
		Requests: api.requests, BusiestSecond: api.busiestSecond, BusiestMinute: api.busiestMinute,
		AvgPerMinute: float64(api.requests) / run.Wall.Seconds() * 60}
	return nil
}

// apiLoad is what a run asked of the fake API.
type apiLoad struct {
	requests                     int // GET /events, as the fake counted them
	busiestSecond, busiestMinute int // requests in the busiest second, and 60 seconds
}

// syncChild serves evs from a fresh fake, runs the syncer child with args
// into a fresh database, and verifies that every event arrived.
func (b *bench) syncChild(ctx context.Context, db string, cfg fakeapi.Config, evs []fakeapi.Event, args, env []string) (childRun, apiLoad, error) {
	fake, err := startFake(cfg, evs)
	if err != nil {
		return childRun{}, apiLoad{}, err
	}
	defer fake.Close()
	url, err := b.freshDB(ctx, db)
	if err != nil {
		return childRun{}, apiLoad{}, err
	}
	env = append([]string{"DATABASE_URL=" + url, "WORKOS_API_KEY=" + apiKey,
		"WORKOS_BASE_URL=" + fake.URL, "SYNCER_LOG_LEVEL=warn"}, env...)
	run, err := runChild(ctx, b.bin, args, env)
	if err != nil {
		return run, apiLoad{}, err
	}
	api := apiLoad{requests: fake.api.Stats().Requests}
	api.busiestSecond, api.busiestMinute = fake.counter.peaks()
	return run, api, verifyCount(ctx, url, "syncer "+strings.Join(args, " "), len(evs))
}

// freshDB creates a database, migrates it with the binary under test (so
// that no contender's time includes migrations) and checkpoints the
// cluster, so that the run about to start does not pay for the last one.
func (b *bench) freshDB(ctx context.Context, name string) (string, error) {
	if err := b.cluster.CreateDatabase(ctx, name, ""); err != nil {
		return "", err
	}
	url := b.cluster.URL(name)
	if _, err := runChild(ctx, b.bin, []string{"migrate", "up"}, []string{"DATABASE_URL=" + url}); err != nil {
		return "", err
	}
	return url, checkpoint(ctx, url)
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "syncerbench: "+format+"\n", args...)
}

// generate makes n events with the fake's generator, spread over the 25
// days before now, so that all of them lie inside --since 30d.
func generate(n int, now time.Time) []fakeapi.Event {
	g := fakeapi.NewGenerator(fakeapi.GenConfig{Seed: 1, Start: now.Add(-window), Step: window / time.Duration(n)})
	return g.Take(n)
}
