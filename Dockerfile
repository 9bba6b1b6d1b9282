# syntax=docker/dockerfile:1

# The syncer image: one static binary on distroless, run as a non-root user.
#
#   docker build -t syncer:local .
#   docker run --rm -e DATABASE_URL -e WORKOS_API_KEY -p 9090:9090 syncer:local          # syncer run
#   docker run --rm -e DATABASE_URL syncer:local migrate up                               # any other command
#
# There is no HEALTHCHECK: distroless has no shell, curl or wget to run one.
# The daemon serves GET /healthz (alive) and GET /readyz (database reachable,
# a recent successful poll) on --listen (:9090); let the orchestrator probe
# those (Kubernetes livenessProbe/readinessProbe, see deploy/kubernetes).

# Build on the builder's own platform and cross-compile: no emulation needed
# for a multi-platform build (docker buildx build --platform linux/amd64,linux/arm64).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/syncer ./cmd/syncer

# distroless/static: CA certificates (for https://api.workos.com and
# sslmode=verify-full against a public CA) and tzdata, no shell, no package
# manager. The user is numeric (65532 is distroless's "nonroot") so that
# Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="syncer" \
      org.opencontainers.image.description="Copies the WorkOS Events API into a PostgreSQL audit trail" \
      org.opencontainers.image.source="https://github.com/syncer-audit/syncer"
COPY --from=build /out/syncer /syncer
USER 65532:65532
# /metrics, /healthz, /readyz and POST /webhooks/workos (syncer run --listen).
EXPOSE 9090
ENTRYPOINT ["/syncer"]
CMD ["run"]
