-- min_server_version: 160000
-- Lets replication tools make a standby's snapshot consistent (PostgreSQL 16+).
GRANT EXECUTE ON FUNCTION pg_catalog.pg_log_standby_snapshot() TO {privileged_role};
