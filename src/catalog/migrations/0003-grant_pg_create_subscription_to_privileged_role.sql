-- min_server_version: 160000
-- Logical replication subscriptions (the predefined role exists from
-- PostgreSQL 16; on older servers the id still advances). The reference's id 3.
GRANT pg_create_subscription TO {privileged_role};
