# The two commands of the README, and a few more.
GO ?= go

.PHONY: demo test build fuzz crash-test bench

# Run the main job on a throwaway PostgreSQL and the fake Events API (or on
# DATABASE_URL and WORKOS_API_KEY when set), then print an audit report.
demo:
	@[ -n "$$DATABASE_URL" ] || scripts/ensure-postgres
	$(GO) run ./cmd/syncer demo

# Every test, against a real PostgreSQL that the tests start themselves.
test:
	@[ -n "$$SYNCER_TEST_DATABASE_URL" ] || scripts/ensure-postgres
	@[ -d test/emulator/node_modules/workos ] || npm ci --prefix test/emulator --no-audit --no-fund
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	$(GO) test -run '^$$' -fuzz=FuzzDecodeAndProject -fuzztime=$(FUZZTIME) ./internal/model

FUZZTIME ?= 10s

# A longer fuzzing session of the decoder and projection: make fuzz FUZZTIME=10m.
# New crashers land in internal/model/testdata/fuzz; commit them as seeds.
fuzz:
	$(GO) test -run '^$$' -fuzz=FuzzDecodeAndProject -fuzztime=$(FUZZTIME) ./internal/model

# The crash and fault suite at full scale: 50,000 events, 20 SIGKILLs at
# random moments, database connections killed under the daemon.
crash-test:
	@[ -n "$$SYNCER_TEST_DATABASE_URL" ] || scripts/ensure-postgres
	SYNCER_CRASH_EVENTS=50000 SYNCER_CRASH_KILLS=20 $(GO) test -count=1 -v -run 'TestCrash|TestDatabaseConnections|TestEveryFault|TestHostile' ./cmd/syncer

# Throughput, memory, latency-bound and backfill figures against the fake
# API and a local PostgreSQL, with the COPY ceiling and a naive baseline:
# make bench N=1000000. Appends to bench/results.jsonl.
N ?= 200000
bench:
	@[ -n "$$SYNCER_TEST_DATABASE_URL" ] || scripts/ensure-postgres
	$(GO) run ./cmd/syncerbench -n $(N)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/syncer ./cmd/syncer
