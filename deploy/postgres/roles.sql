-- The registry's two database roles. Run as a superuser, connected to the registry's
-- database (psql -v ON_ERROR_STOP=1 -d registry -f deploy/postgres/roles.sql), before the
-- first `manage.py migrate`. It is idempotent: run it again to bring an existing database
-- (one whose tables another role owns, or a restored dump) to the same state.
--
--   registry_owner  owns the schema and every object in it. Only `manage.py migrate`
--                   connects as it (DATABASE_OWNER_URL, in the migrate step's environment).
--   registry_app    what web, worker and beat connect as (DATABASE_URL). Owns nothing, so it
--                   cannot ALTER a table or DISABLE its triggers; SELECT, INSERT, UPDATE and
--                   DELETE on ordinary tables, but only SELECT and INSERT on the audit tables
--                   (and no TRUNCATE anywhere).
--
-- Tables that migrations create later get the runtime role's privileges from the owner's
-- default privileges below; migration 0008 takes UPDATE, DELETE and TRUNCATE on the audit
-- tables back from everyone but their owner.
--
-- Passwords are not set here (nothing secret in this file): psql's \password registry_owner
-- and \password registry_app, or ALTER ROLE ... PASSWORD (deploy/postgres/init-roles.sh).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registry_owner') THEN
        CREATE ROLE registry_owner LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registry_app') THEN
        CREATE ROLE registry_app LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another session created it at the same moment
END $$;

ALTER ROLE registry_owner NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE registry_app NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
-- The runtime role must never act as the owner.
DO $$
BEGIN
    IF pg_has_role('registry_app', 'registry_owner', 'MEMBER') THEN
        REVOKE registry_owner FROM registry_app;
    END IF;
END $$;

DO $$
BEGIN
    EXECUTE format(
        'GRANT CONNECT, TEMPORARY ON DATABASE %I TO registry_owner, registry_app',
        current_database()
    );
END $$;

ALTER SCHEMA public OWNER TO registry_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO registry_app;

-- Everything already in the schema (tables, views, standalone sequences, functions) goes to
-- the owner. Sequences of identity and serial columns follow their table; objects that belong
-- to an extension stay as they are.
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT c.oid::regclass AS name,
               CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                              WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND c.relowner <> 'registry_owner'::regrole
          AND NOT EXISTS (
              SELECT FROM pg_depend d
              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i')))
          )
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO registry_owner', item.kind, item.name);
    END LOOP;
    FOR item IN
        SELECT p.oid::regprocedure AS name
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'public'
        WHERE p.proowner <> 'registry_owner'::regrole
          AND NOT EXISTS (
              SELECT FROM pg_depend d
              WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
          )
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO registry_owner', item.name);
    END LOOP;
END $$;

-- The runtime role's privileges on what exists now ...
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO registry_app;
REVOKE TRUNCATE, TRIGGER, REFERENCES ON ALL TABLES IN SCHEMA public FROM registry_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO registry_app;
-- ... and on what the owner creates later (each migration).
ALTER DEFAULT PRIVILEGES FOR ROLE registry_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO registry_app;
ALTER DEFAULT PRIVILEGES FOR ROLE registry_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO registry_app;

-- The audit trail: append-only for the runtime role (and for anyone but the owner), on the
-- (partitioned) tables and on each of their monthly partitions, which can be named directly.
DO $$
DECLARE
    audit_table regclass;
BEGIN
    FOR audit_table IN
        SELECT c.oid::regclass
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        WHERE c.relname IN ('registry_auditevent', 'registry_auditseal',
                            'registry_auditcheckpoint', 'registry_auditarchive',
                            'registry_auditverification')
        UNION
        SELECT i.inhrelid::regclass
        FROM pg_inherits i
        WHERE i.inhparent IN (to_regclass('public.registry_auditevent'),
                              to_regclass('public.registry_auditseal'))
    LOOP
        EXECUTE format(
            'REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON %s FROM registry_app, PUBLIC',
            audit_table
        );
    END LOOP;
END $$;

-- Monthly partitions (migration 0014): the runtime role creates months ahead and drops
-- months of lookups and of the lookup log past retention through these SECURITY DEFINER
-- functions (owned by registry_owner); nobody else may call them.
DO $$
BEGIN
    IF to_regprocedure('public.registry_partition_create(text, date)') IS NOT NULL THEN
        REVOKE ALL ON FUNCTION public.registry_partition_create(text, date) FROM PUBLIC;
        REVOKE ALL ON FUNCTION public.registry_partition_drop(text, date) FROM PUBLIC;
        REVOKE ALL ON FUNCTION public.registry_partition_protect(text, text) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION public.registry_partition_create(text, date) TO registry_app;
        GRANT EXECUTE ON FUNCTION public.registry_partition_drop(text, date) TO registry_app;
    END IF;
END $$;
