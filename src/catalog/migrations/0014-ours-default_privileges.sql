-- Ours: tables and sequences the superuser creates later in the maintenance
-- database's public schema, too (what each database the spec creates
-- inherits from template1).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {privileged_role} WITH GRANT OPTION;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO {privileged_role} WITH GRANT OPTION;
