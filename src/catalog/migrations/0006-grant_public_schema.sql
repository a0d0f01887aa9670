-- Objects in the maintenance database's public schema.
GRANT USAGE, CREATE ON SCHEMA public TO {privileged_role} WITH GRANT OPTION;
GRANT ALL ON ALL TABLES IN SCHEMA public TO {privileged_role} WITH GRANT OPTION;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {privileged_role} WITH GRANT OPTION;
