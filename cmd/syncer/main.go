// Command syncer copies the WorkOS Events API into a PostgreSQL audit
// trail. See the README for the commands and their settings.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
)

func main() {
	// The live heap is a page or two (a few MB): collecting at 4x it
	// instead of 2x halves the GC's CPU, still far below 100 MB of RSS.
	// GOGC, if set, wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// SYNCER_CPUPROFILE=file writes a CPU profile of the run, for the
	// benchmark's "where does the time go".
	if path := os.Getenv("SYNCER_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncer:", err)
		pprof.StopCPUProfile()
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}
