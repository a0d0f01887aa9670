-- Read and write every table, as a database owner would.
GRANT pg_read_all_data, pg_write_all_data TO {privileged_role};
