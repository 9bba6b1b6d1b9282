DROP VIEW IF EXISTS vault_first_access;
DROP VIEW IF EXISTS vault_off_hours_access;
DROP VIEW IF EXISTS vault_dashboard_reads;
DROP VIEW IF EXISTS vault_key_access;
DROP FUNCTION IF EXISTS vault_is_business_hours(timestamptz);
