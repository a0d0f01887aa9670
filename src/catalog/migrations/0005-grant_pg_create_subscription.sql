-- min_server_version: 160000
-- Logical replication subscriptions (the predefined role exists from PostgreSQL 16).
GRANT pg_create_subscription TO {privileged_role} WITH ADMIN OPTION;
