-- Ours, after the reference's twelve: objects in the maintenance database's
-- public schema (PostgreSQL 15 no longer lets everyone create there).
GRANT USAGE, CREATE ON SCHEMA public TO {privileged_role} WITH GRANT OPTION;
GRANT ALL ON ALL TABLES IN SCHEMA public TO {privileged_role} WITH GRANT OPTION;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {privileged_role} WITH GRANT OPTION;
