package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/syncer-audit/syncer/internal/fakeapi"
)

func cmdFakeAPI(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCommand("fakeapi", `Serve a fake WorkOS Events API that behaves as the documented one, loaded with
a generated stream, so that a real syncer can be pointed at it:

  WORKOS_BASE_URL=http://127.0.0.1:8080 WORKOS_API_KEY=sk_test_fake syncer sync

Control routes: POST /_fake/events?n=N appends N generated events,
POST /_fake/faults queues faults (JSON array), GET /_fake/stats.`, stdout)
	var (
		listen, key   string
		n             int
		seed          int64
		from          since
		rate, latency time.Duration
		logs          logSettings
	)
	c.fs.StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve on")
	c.fs.StringVar(&key, "api-key", "sk_test_fake", "the API key the fake accepts (a made-up one)")
	c.env("api-key", "FAKEAPI_KEY")
	c.fs.IntVar(&n, "count", 10000, "events generated at start")
	c.fs.Int64Var(&seed, "seed", 1, "seed of the generated stream")
	c.fs.Var(&from, "since", "created_at of the first generated event: a time, a date or an age (default 20d)")
	c.fs.DurationVar(&rate, "append-every", 0, "append one new event this often (0: never)")
	c.fs.DurationVar(&latency, "latency", 0, "delay added to every /events answer")
	logs.register(c)
	if err := c.parse(args, getenv); err != nil {
		return err
	}
	if n < 0 {
		return usageError("--count %d: want 0 or more", n)
	}
	logger, err := logs.logger(stderr)
	if err != nil {
		return err
	}
	start := from.t
	if start.IsZero() {
		start = time.Now().Add(-20 * 24 * time.Hour)
	}
	step := time.Second
	if n > 0 {
		// Gaps are random around step; aim a tenth short of now so that
		// the stream does not run into the future.
		step = max(time.Millisecond, time.Since(start)*9/10/time.Duration(n+1))
	}
	gen := fakeapi.NewGenerator(fakeapi.GenConfig{Seed: seed, Start: start.Truncate(time.Millisecond), Step: step})
	srv := fakeapi.New(fakeapi.Config{APIKey: key, Latency: latency, Generator: gen, Logger: logger})
	srv.Append(gen.Take(n)...)

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return usageError("--listen %s: %v", listen, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "fake WorkOS Events API on http://%s serving %d events\n", ln.Addr(), n)
	if rate > 0 {
		go func() {
			t := time.NewTicker(rate)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					srv.Generate(1)
				}
			}
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	}
}
