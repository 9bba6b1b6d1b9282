-- Views that answer the questions an auditor asks most, so that each is a
-- SELECT with a WHERE rather than a join to get right under pressure.
-- docs/auditing.md shows each with its output. Every statement may be run
-- again (CREATE OR REPLACE), as every migration may.

-- Business hours, for vault_off_hours_access: Monday to Friday, 08:00 to
-- 18:00 UTC (18:00 itself is after hours). To use other hours, another
-- time zone or a holiday table, replace this function; the view calls it,
-- so it follows at once, without touching the view:
--
--   CREATE OR REPLACE FUNCTION vault_is_business_hours(ts timestamptz)
--   RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $f$
--     SELECT extract(isodow FROM ts AT TIME ZONE 'Europe/Berlin') BETWEEN 1 AND 5
--        AND (ts AT TIME ZONE 'Europe/Berlin')::time >= '09:00'
--        AND (ts AT TIME ZONE 'Europe/Berlin')::time <  '17:30'
--   $f$;
CREATE OR REPLACE FUNCTION vault_is_business_hours(ts timestamptz)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $f$
    SELECT extract(isodow FROM ts AT TIME ZONE 'UTC') BETWEEN 1 AND 5
       AND (ts AT TIME ZONE 'UTC')::time >= '08:00'
       AND (ts AT TIME ZONE 'UTC')::time <  '18:00'
$f$;

-- Every key an actor read or decrypted: one row per (event, key) of the
-- three event types whose answer holds secret material: vault.data.read
-- (the value, decrypted with key_id), vault.dek.read (data keys, one row
-- per element of key_ids) and vault.dek.decrypted.
CREATE OR REPLACE VIEW vault_key_access AS
SELECT v.actor_id,
       v.actor_name,
       v.actor_source,
       k.key_id,
       v.event_type,
       v.occurred_at,
       v.kv_name,
       v.event_id
FROM vault_events v
JOIN vault_event_keys k ON k.event_id = v.event_id
WHERE v.event_type IN ('vault.data.read', 'vault.dek.read', 'vault.dek.decrypted');

-- Secret material read by a person in the WorkOS dashboard rather than by
-- a program through the API: the same three event types, actor_source
-- 'dashboard'. vault.metadata.read and vault.names.listed are left out:
-- they reveal names, not values.
CREATE OR REPLACE VIEW vault_dashboard_reads AS
SELECT l.occurred_at,
       l.actor_id,
       l.actor_name,
       l.event_type,
       l.kv_name,
       l.key_ids,
       l.event_id
FROM vault_access_log l
WHERE l.actor_source = 'dashboard'
  AND l.event_type IN ('vault.data.read', 'vault.dek.read', 'vault.dek.decrypted');

-- Every access by an actor outside business hours, as
-- vault_is_business_hours defines them (Monday to Friday, 08:00 to 18:00
-- UTC unless replaced). vault.byok_key.* events have no actor: they are
-- WorkOS checking a customer's key, not an access, and are left out.
CREATE OR REPLACE VIEW vault_off_hours_access AS
SELECT l.occurred_at,
       to_char(l.occurred_at AT TIME ZONE 'UTC', 'Dy HH24:MI') AS utc_day_time,
       l.actor_id,
       l.actor_name,
       l.actor_source,
       l.event_type,
       l.kv_name,
       l.key_ids,
       l.event_id
FROM vault_access_log l
WHERE l.actor_id IS NOT NULL
  AND NOT vault_is_business_hours(l.occurred_at);

-- The first time each actor touched each object (kv_name), with the event
-- that did it; ties in time go to the smaller event id. Filter on
-- first_accessed_at for "who touched this object for the first time this
-- week".
CREATE OR REPLACE VIEW vault_first_access AS
SELECT DISTINCT ON (v.actor_id, v.kv_name)
       v.actor_id,
       v.kv_name,
       v.occurred_at AS first_accessed_at,
       v.event_type,
       v.actor_name,
       v.actor_source,
       v.event_id
FROM vault_events v
WHERE v.actor_id IS NOT NULL
  AND v.kv_name IS NOT NULL
ORDER BY v.actor_id, v.kv_name, v.occurred_at, v.event_id;

-- Whoever may read vault_access_log (a role made by `syncer grant-reader`
-- before this migration, PUBLIC) may read these views too.
DO $grant$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.rolname) END AS who
        FROM pg_class c
        CROSS JOIN LATERAL aclexplode(c.relacl) a
        LEFT JOIN pg_roles g ON g.oid = a.grantee
        WHERE c.oid = 'vault_access_log'::regclass
          AND a.privilege_type = 'SELECT'
          AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT SELECT ON vault_key_access, vault_dashboard_reads, vault_off_hours_access, vault_first_access TO %s', r.who);
    END LOOP;
END
$grant$;
