package devpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// shutdownTimeout bounds a fast shutdown before Stop kills the server.
	shutdownTimeout = 30 * time.Second
	// portAttempts is how often Start tries again when the free port it
	// picked was taken before the server could bind it.
	portAttempts = 3
)

// startLocal runs the server from binDir.
func startLocal(ctx context.Context, opts Options, binDir string, logger *slog.Logger) (_ *Cluster, err error) {
	su, err := lookupServerUser()
	if err != nil {
		return nil, err
	}

	// The temp dir holds the socket, and the data too unless opts.Dir says
	// otherwise. It sits in os.TempDir() so that the server user can reach
	// it when we are root.
	tempDir, err := os.MkdirTemp("", "syncer-pg-")
	if err != nil {
		return nil, fmt.Errorf("make temp dir: %w", err)
	}
	defer func() {
		if err != nil {
			_ = removeAll(tempDir)
		}
	}()
	if err := su.checkTraversable(tempDir); err != nil {
		return nil, fmt.Errorf("temp dir: %w (set TMPDIR to change it)", err)
	}
	if err := su.chown(tempDir); err != nil {
		return nil, err
	}

	dataDir := filepath.Join(tempDir, "data")
	if opts.Dir != "" {
		if dataDir, err = filepath.Abs(opts.Dir); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		if err := prepareDataDir(dataDir, su); err != nil {
			return nil, err
		}
	}

	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		logger.Info("postgres reusing cluster", "data_dir", dataDir)
	} else {
		if err := initdb(ctx, binDir, dataDir, tempDir, su, opts.Fast); err != nil {
			return nil, err
		}
	}

	c := &Cluster{host: "127.0.0.1", logger: logger, tempDir: tempDir}
	for attempt := 1; ; attempt++ {
		c.port = opts.Port
		if c.port == 0 {
			if c.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		p, err := startServer(binDir, dataDir, tempDir, c.port, opts.Fast, su, logger)
		if err != nil {
			return nil, err
		}
		err = waitReady(ctx, c.URL("postgres"), p.exited, func(ctx context.Context, conn *pgx.Conn) error {
			// Another server may have taken the port since we picked it;
			// make sure it is ours that answers.
			var dir string
			if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
				return err
			}
			if dir != dataDir {
				return fmt.Errorf("port %d is served by another cluster (%s)", c.port, dir)
			}
			return nil
		})
		if err == nil {
			c.server = p
			logger.Info("postgres started", "port", c.port, "data_dir", dataDir, "bin_dir", binDir)
			return c, nil
		}
		_ = p.stop() // its log below says more than its exit status
		if opts.Port == 0 && attempt < portAttempts && p.log.contains("could not bind") {
			logger.Debug("postgres port taken, trying another", "port", c.port)
			continue
		}
		return nil, fmt.Errorf("start postgres on port %d: %w\nserver log (last lines):\n%s", c.port, err, p.log)
	}
}

// prepareDataDir makes sure dir exists and that the server user can use it.
func prepareDataDir(dir string, su *serverUser) error {
	if err := su.checkTraversable(dir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Parents readable by all, the data dir private, as initdb wants.
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	if su.owns(fi) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
		return su.chownTree(dir)
	}
	return su.chown(dir)
}

// initdb creates a cluster whose superuser "postgres" needs no password:
// the server listens on loopback only and holds throwaway data.
func initdb(ctx context.Context, binDir, dataDir, workDir string, su *serverUser, fast bool) error {
	args := []string{"-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"}
	if fast {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), args...)
	// Our own working directory may be closed to the server user.
	cmd.Dir = workDir
	cmd.SysProcAttr = su.sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", dataDir, err, lastLines(string(out), 20))
	}
	return nil
}

// serverProcess is a running postgres server.
type serverProcess struct {
	cmd    *exec.Cmd
	log    *logTail
	exited chan struct{} // closed once the process has been waited for
	err    error         // from Wait; read only after exited is closed
}

func startServer(binDir, dataDir, sockDir string, port int, fast bool, su *serverUser, logger *slog.Logger) (*serverProcess, error) {
	args := []string{
		"-D", dataDir,
		"-p", strconv.Itoa(port),
		"-k", sockDir,
		"-c", "listen_addresses=127.0.0.1",
		// Sized for a laptop or a 2-core CI box shared with the tests.
		"-c", "max_connections=100",
		"-c", "shared_buffers=64MB",
		"-c", "huge_pages=off",
		"-c", "max_wal_size=256MB",
	}
	if fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	lt := &logTail{logger: logger}
	cmd := exec.Command(filepath.Join(binDir, "postgres"), args...)
	cmd.Dir = sockDir
	cmd.Stdout = lt
	cmd.Stderr = lt
	cmd.SysProcAttr = su.sysProcAttr()
	// Backends share the server's stderr; should one linger after the
	// server is gone, do not wait for it forever.
	cmd.WaitDelay = 5 * time.Second

	p := &serverProcess{cmd: cmd, log: lt, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that started the
		// child exits, not the process. Hold this thread while it runs.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return p, nil
}

// stop asks for a fast shutdown and waits; past shutdownTimeout it kills
// the server's process group.
func (p *serverProcess) stop() error {
	select {
	case <-p.exited:
		return fmt.Errorf("postgres had already exited (%v)\nserver log (last lines):\n%s", p.err, p.log)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal postgres: %w", err)
	}
	timer := time.NewTimer(shutdownTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("postgres exited: %w\nserver log (last lines):\n%s", p.err, p.log)
		}
		return nil
	case <-timer.C:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	return fmt.Errorf("postgres did not shut down within %v; killed it", shutdownTimeout)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// logTailLines is how much of the server log an error quotes.
const logTailLines = 30

// logTail keeps the last lines the server wrote, to quote in errors, and
// passes each line to the logger at debug level.
type logTail struct {
	logger *slog.Logger

	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (t *logTail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, b...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.add(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > 4096 { // no newline in sight: keep it as a line
		t.add(string(t.partial))
		t.partial = nil
	}
	return len(b), nil
}

func (t *logTail) add(line string) {
	t.logger.Debug("postgres log", "line", line)
	t.lines = append(t.lines, line)
	if len(t.lines) > 2*logTailLines {
		t.lines = append(t.lines[:0], t.lines[len(t.lines)-logTailLines:]...)
	}
}

func (t *logTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines[max(0, len(t.lines)-logTailLines):]
	s := strings.Join(lines, "\n")
	if len(t.partial) > 0 {
		s += "\n" + string(t.partial)
	}
	return s
}

func (t *logTail) contains(s string) bool {
	return strings.Contains(t.String(), s)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
