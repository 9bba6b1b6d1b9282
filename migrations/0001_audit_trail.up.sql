-- Every migration is one transaction (PostgreSQL runs a multi-statement
-- file as one) and may be run again: syncer re-runs a migration that a
-- crash interrupted (golang-migrate's "dirty" state) instead of stopping.

-- The raw archive: every event of any type, exactly as the API returned it.
CREATE TABLE IF NOT EXISTS workos_events (
    id          text PRIMARY KEY,
    event_type  text,            -- NULL only when the envelope had none (see event_quarantine)
    created_at  timestamptz,     -- NULL only when the envelope's time could not be read
    data        jsonb,           -- NULL when the envelope had no data
    context     jsonb,           -- NULL when the envelope had no context
    extra       jsonb,           -- the envelope's other fields, if any (e.g. environment_id)
    sanitized   boolean NOT NULL DEFAULT false, -- NUL or invalid UTF-8 was replaced by U+FFFD
    original    bytea,           -- the bytes as received, kept when sanitized
    ingested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS workos_events_created_at ON workos_events (created_at);
CREATE INDEX IF NOT EXISTS workos_events_type_created_at ON workos_events (event_type, created_at);

-- Everyone who touched Vault; name and source are those of the latest event.
CREATE TABLE IF NOT EXISTS vault_actors (
    actor_id      text PRIMARY KEY,
    actor_source  text,
    actor_name    text,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);

-- One row per Vault event: who, how (event_type), what, when.
CREATE TABLE IF NOT EXISTS vault_events (
    event_id        text PRIMARY KEY REFERENCES workos_events (id),
    event_type      text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    actor_id        text REFERENCES vault_actors (actor_id), -- NULL for vault.byok_key.* events
    actor_source    text,  -- as recorded in this event
    actor_name      text,  -- as recorded in this event
    kv_name         text,
    key_id          text,
    key_name        text,
    key_context     jsonb,
    organization_id text,
    key_provider    text,
    verified        boolean
);
CREATE INDEX IF NOT EXISTS vault_events_occurred_at ON vault_events (occurred_at);
CREATE INDEX IF NOT EXISTS vault_events_actor ON vault_events (actor_id, occurred_at);
CREATE INDEX IF NOT EXISTS vault_events_kv_name ON vault_events (kv_name, occurred_at) WHERE kv_name IS NOT NULL;

-- One row per (event, key) touched: every element of vault.dek.read's
-- key_ids, and the key_id of any other event.
CREATE TABLE IF NOT EXISTS vault_event_keys (
    event_id text NOT NULL REFERENCES vault_events (event_id),
    key_id   text NOT NULL,
    PRIMARY KEY (event_id, key_id)
);
CREATE INDEX IF NOT EXISTS vault_event_keys_key_id ON vault_event_keys (key_id);

-- Events that could not be archived or projected as they are, with why.
CREATE TABLE IF NOT EXISTS event_quarantine (
    fingerprint text PRIMARY KEY,  -- sha256 of (kind, reason, raw): one row per distinct problem
    event_id    text,              -- NULL when the envelope had no usable id
    event_type  text,
    kind        text NOT NULL CHECK (kind IN ('envelope', 'projection', 'conflict')),
    reason      text NOT NULL,
    raw         bytea NOT NULL,    -- the event's bytes as received
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS event_quarantine_event_id ON event_quarantine (event_id);

-- Where each stream stopped: the id of the last event written, moved in the
-- same transaction as the rows. The main stream is "events"; a backfill
-- stream covers [range_start, range_end] for types added to the filter.
CREATE TABLE IF NOT EXISTS sync_cursors (
    stream           text PRIMARY KEY,
    after_id         text,
    after_created_at timestamptz,
    event_types      text[] NOT NULL,
    range_start      timestamptz,
    range_end        timestamptz,
    done             boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Periods whose events may be lost: the cursor, or --since, was older than
-- the API's retention window when the syncer asked.
CREATE TABLE IF NOT EXISTS sync_gaps (
    id          bigserial PRIMARY KEY,
    stream      text NOT NULL,
    gap_from    timestamptz NOT NULL,
    gap_to      timestamptz NOT NULL,
    reason      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- The audit trail as a person reads it; ORDER BY occurred_at to read it in
-- time order (the view itself is unordered, so that filters and LIMIT stay
-- cheap).
CREATE OR REPLACE VIEW vault_access_log AS
SELECT v.occurred_at,
       v.event_id,
       v.event_type,
       v.actor_id,
       v.actor_source,
       v.actor_name,
       v.kv_name,
       coalesce(k.key_ids, '{}') AS key_ids,
       v.key_name,
       v.key_context,
       v.organization_id,
       v.key_provider,
       v.verified
FROM vault_events v
LEFT JOIN LATERAL (
    SELECT array_agg(key_id ORDER BY key_id) AS key_ids
    FROM vault_event_keys
    WHERE event_id = v.event_id
) k ON true;
