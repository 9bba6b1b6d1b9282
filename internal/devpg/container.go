package devpg

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/wait"
)

const (
	// containerImage matches the server version the project is tested on.
	containerImage = "postgres:15-alpine"
	// dockerCheckTimeout bounds the question "is there a Docker engine?",
	// which on a machine without one must not hold up the error message.
	dockerCheckTimeout = 5 * time.Second
	// containerStartTimeout covers pulling the image on first use.
	containerStartTimeout = 3 * time.Minute
)

var containerPort = network.MustParsePort("5432/tcp")

// dockerReachable reports why no Docker engine can be used, or nil.
func dockerReachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dockerCheckTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// Finding the engine does not take ctx, so it runs aside and is
		// abandoned on timeout.
		p, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(tclog.NewNoopLogger()))
		if err != nil {
			done <- err
			return
		}
		done <- p.Health(ctx) // closes p
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("docker engine did not answer: %w", ctx.Err())
	}
}

// startContainer runs the server in a container. Options.Dir and BinDir do
// not apply: the data lives and dies with the container.
func startContainer(ctx context.Context, opts Options, logger *slog.Logger) (_ *Cluster, err error) {
	if opts.Dir != "" {
		logger.Warn("postgres in a container keeps no data: Options.Dir is ignored", "dir", opts.Dir)
	}
	cmd := []string{"postgres", "-c", "max_connections=100"}
	if opts.Fast {
		cmd = append(cmd, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	custom := []testcontainers.ContainerCustomizer{
		testcontainers.WithLogger(slogPrintf{logger}),
		testcontainers.WithEnv(map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"}),
		testcontainers.WithExposedPorts(containerPort.String()),
		testcontainers.WithCmd(cmd...),
		// The image's entrypoint starts the server once to initialise it,
		// then for real: ready is the second time it says so.
		testcontainers.WithWaitStrategy(
			wait.ForLog("database system is ready to accept connections").
				WithOccurrence(2).
				WithStartupTimeout(containerStartTimeout)),
	}
	if opts.Port != 0 {
		custom = append(custom, testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{
				containerPort: {{HostPort: strconv.Itoa(opts.Port)}},
			}
		}))
	}

	ctr, err := testcontainers.Run(ctx, containerImage, custom...)
	if ctr != nil {
		defer func() {
			if err != nil {
				_ = ctr.Terminate(context.WithoutCancel(ctx))
			}
		}()
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", containerImage, err)
	}
	host, err := ctr.Host(ctx)
	if err != nil {
		return nil, fmt.Errorf("container host: %w", err)
	}
	mapped, err := ctr.MappedPort(ctx, containerPort.String())
	if err != nil {
		return nil, fmt.Errorf("container port: %w", err)
	}
	c := &Cluster{host: host, port: int(mapped.Num()), logger: logger, container: ctr}
	if err := waitReady(ctx, c.URL("postgres"), nil, nil); err != nil {
		return nil, err
	}
	logger.Info("postgres started in a container", "image", containerImage, "host", host, "port", c.port)
	return c, nil
}

// slogPrintf passes testcontainers' log lines to our logger at debug level.
type slogPrintf struct{ logger *slog.Logger }

func (s slogPrintf) Printf(format string, args ...any) {
	s.logger.Debug(fmt.Sprintf(format, args...))
}
