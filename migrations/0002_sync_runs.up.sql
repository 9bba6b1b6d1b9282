-- One row per sync pass (each poll of the daemon, each cron run): what the
-- sync-health dashboard reads, so that it works without Prometheus.
CREATE TABLE IF NOT EXISTS sync_runs (
    id              bigserial PRIMARY KEY,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    events          integer NOT NULL,          -- events received
    pages           integer NOT NULL,          -- pages written
    newest_event_at timestamptz,               -- newest created_at written by this run
    api_requests    integer NOT NULL DEFAULT 0,
    api_errors      integer NOT NULL DEFAULT 0, -- failed attempts, retried or not
    quarantined     integer NOT NULL DEFAULT 0, -- quarantine rows this run added
    error           text                        -- NULL when the run succeeded
);
CREATE INDEX IF NOT EXISTS sync_runs_finished_at ON sync_runs (finished_at);
