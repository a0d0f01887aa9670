-- The privileged role is not a superuser, cannot log in, and can manage
-- roles, databases, replication, and bypass row-level security.
ALTER ROLE {privileged_role} WITH NOSUPERUSER NOLOGIN INHERIT CREATEROLE CREATEDB REPLICATION BYPASSRLS;
