-- The reference's id 2: members of the privileged role (superusers count as
-- members) inherit what it holds; every other role but postgres' own pg_*
-- roles loses BYPASSRLS.
DO $migration$
DECLARE
    member pg_catalog.name;
BEGIN
    FOR member IN
        SELECT rolname FROM pg_catalog.pg_roles
        WHERE pg_catalog.pg_has_role(rolname, {privileged_role_literal}, 'member')
    LOOP
        EXECUTE pg_catalog.format('ALTER ROLE %I INHERIT', member);
    END LOOP;
    FOR member IN
        SELECT rolname FROM pg_catalog.pg_roles
        WHERE NOT pg_catalog.pg_has_role(rolname, {privileged_role_literal}, 'member')
          AND NOT pg_catalog.starts_with(rolname, 'pg_')
    LOOP
        EXECUTE pg_catalog.format('ALTER ROLE %I NOBYPASSRLS', member);
    END LOOP;
END
$migration$;
