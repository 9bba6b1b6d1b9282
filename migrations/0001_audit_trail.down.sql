DROP VIEW IF EXISTS vault_access_log;
DROP TABLE IF EXISTS sync_gaps;
DROP TABLE IF EXISTS sync_cursors;
DROP TABLE IF EXISTS event_quarantine;
DROP TABLE IF EXISTS vault_event_keys;
DROP TABLE IF EXISTS vault_events;
DROP TABLE IF EXISTS vault_actors;
DROP TABLE IF EXISTS workos_events;
