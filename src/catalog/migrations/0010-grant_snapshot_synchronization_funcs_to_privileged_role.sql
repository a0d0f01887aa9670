-- min_server_version: 160000
-- Exporting a snapshot and logging a standby snapshot, which logical
-- replication tools call (PostgreSQL 16+; on older servers the id still
-- advances). The reference's id 10.
GRANT EXECUTE ON FUNCTION pg_catalog.pg_export_snapshot() TO {privileged_role};
GRANT EXECUTE ON FUNCTION pg_catalog.pg_log_standby_snapshot() TO {privileged_role};
