-- Replication origins' progress, for logical replication tools. The
-- reference's id 11.
GRANT EXECUTE ON FUNCTION pg_catalog.pg_show_replication_origin_status() TO {privileged_role};
