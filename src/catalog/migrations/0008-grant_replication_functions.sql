-- Functions logical replication tools call.
GRANT EXECUTE ON FUNCTION pg_catalog.pg_export_snapshot() TO {privileged_role};
GRANT EXECUTE ON FUNCTION pg_catalog.pg_show_replication_origin_status() TO {privileged_role};
