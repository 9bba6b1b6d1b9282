package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncer-audit/syncer/internal/fakeapi"
)

// childRun is what one syncer child process cost, as the kernel counted it.
type childRun struct {
	Wall time.Duration
	CPU  time.Duration // user + system, of the child alone (not PostgreSQL)
	// PeakRSSKiB is the child's VmHWM, sampled while it runs. Not rusage's
	// Maxrss: Go starts children with vfork, and Linux folds the parent's
	// peak RSS into the child's Maxrss at exec, so it would report this
	// benchmark's own memory (the whole stream) as the syncer's.
	PeakRSSKiB int64
}

// buildSyncer builds ./cmd/syncer into dir, so that every run measures the
// same binary and none of them pays for compilation.
func buildSyncer(ctx context.Context, dir string) (string, error) {
	bin := dir + "/syncer"
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/syncer").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build syncer: %w\n%s", err, out)
	}
	return bin, nil
}

// syncHelp returns `syncer sync --help`, to tell which flags the binary
// under test knows (--backfill-workers is newer than this benchmark).
func syncHelp(ctx context.Context, bin string) string {
	out, _ := exec.CommandContext(ctx, bin, "sync", "--help").CombinedOutput()
	return string(out)
}

// runChild runs the syncer binary with only PATH and env in its
// environment, so that settings of the shell running the benchmark cannot
// change what is measured. The child is killed if this process dies.
func runChild(ctx context.Context, bin string, args, env []string) (childRun, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return childRun{}, fmt.Errorf("start syncer %s: %w", strings.Join(args, " "), err)
	}
	exited, peak := make(chan struct{}), make(chan int64)
	go samplePeakRSS(cmd.Process.Pid, exited, peak)
	err := cmd.Wait()
	run := childRun{Wall: time.Since(start)}
	close(exited)
	run.PeakRSSKiB = <-peak
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		run.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if err != nil {
		return run, fmt.Errorf("syncer %s: %w; its output ends with:\n%s", strings.Join(args, " "), err, out.String())
	}
	return run, nil
}

// samplePeakRSS reads the process's VmHWM (its peak RSS, in KiB) every
// 10 ms until exited is closed, then sends the last value read. The peak
// only grows, so the last reading is the peak but for the final 10 ms.
func samplePeakRSS(pid int, exited <-chan struct{}, peak chan<- int64) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var hwm int64
	for {
		if status, err := os.ReadFile(path); err == nil {
			for line := range strings.Lines(string(status)) {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					var kib int64
					if _, err := fmt.Sscanf(v, "%d kB", &kib); err == nil {
						hwm = max(hwm, kib)
					}
				}
			}
		}
		select {
		case <-exited:
			peak <- hwm
			return
		case <-tick.C:
		}
	}
}

// tailBuffer keeps the last max bytes written to it: the end of a child's
// log is what explains a failure, and a long sync may log a lot.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = slices.Delete(t.buf, 0, over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// fakeAPI is a fake Events API served on a random loopback port, with
// every GET /events counted per second.
type fakeAPI struct {
	api     *fakeapi.Server
	server  *http.Server
	counter *requestCounter
	URL     string
}

func startFake(cfg fakeapi.Config, evs []fakeapi.Event) (*fakeAPI, error) {
	api := fakeapi.New(cfg)
	api.Append(evs...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start fake api: %w", err)
	}
	counter := &requestCounter{next: api, perSecond: map[int64]int{}}
	f := &fakeAPI{
		api:     api,
		server:  &http.Server{Handler: counter, ReadHeaderTimeout: 10 * time.Second},
		counter: counter,
		URL:     "http://" + ln.Addr().String(),
	}
	go func() { _ = f.server.Serve(ln) }() // ends when Close shuts the server down
	return f, nil
}

func (f *fakeAPI) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = f.server.Shutdown(ctx)
}

// requestCounter counts GET /events requests per wall-clock second, to
// find the busiest minute against the API's rate limit.
type requestCounter struct {
	next      http.Handler
	mu        sync.Mutex
	perSecond map[int64]int
}

func (c *requestCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/events" {
		sec := time.Now().Unix()
		c.mu.Lock()
		c.perSecond[sec]++
		c.mu.Unlock()
	}
	c.next.ServeHTTP(w, r)
}

// peaks returns the most requests seen in one second and in any window of
// 60 consecutive seconds.
func (c *requestCounter) peaks() (second, minute int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.perSecond) == 0 {
		return 0, 0
	}
	var first, last int64 = 1<<62 - 1, 0
	for s, n := range c.perSecond {
		first, last = min(first, s), max(last, s)
		second = max(second, n)
	}
	for start := first; start <= last; start++ {
		sum := 0
		for s := start; s < start+60 && s <= last; s++ {
			sum += c.perSecond[s]
		}
		minute = max(minute, sum)
	}
	return second, minute
}

// countEvents returns the number of rows in the raw archive.
func countEvents(ctx context.Context, url string) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM workos_events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// verifyCount fails loudly unless the database holds exactly want events.
func verifyCount(ctx context.Context, url, what string, want int) error {
	got, err := countEvents(ctx, url)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if got != want {
		return fmt.Errorf("%s: the database holds %d events, want exactly %d", what, got, want)
	}
	return nil
}

// checkpoint flushes the cluster's dirty pages, so that one contender does
// not pay for the writes of the one before it.
func checkpoint(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `CHECKPOINT`); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// serverSettings describes the cluster's durability settings, to print
// beside the figures.
func serverSettings(ctx context.Context, url string) (string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", fmt.Errorf("read server settings: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	names := []string{"fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_wal_size"}
	var version string
	values := make([]string, len(names))
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), array(SELECT current_setting(n) FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i) ORDER BY i)`,
		names).Scan(&version, &values)
	if err != nil {
		return "", fmt.Errorf("read server settings: %w", err)
	}
	settings := "PostgreSQL " + version + ","
	for i, n := range names {
		settings += " " + n + "=" + values[i]
	}
	return settings, nil
}

// loadAvg returns the 1, 5 and 15 minute load averages: other work on the
// machine makes every figure noisier.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// gitRevision returns HEAD's hash, with "-dirty" when the tree has changes;
// "" outside a git checkout.
func gitRevision(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += "-dirty"
	}
	return rev
}
