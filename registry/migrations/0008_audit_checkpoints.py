"""Signed checkpoints of the audit chain, append-only like the trail; and the audit tables'
privileges narrowed to what the runtime role may do with them.

Tables created by a migration get the privileges that deploy/postgres/roles.sql sets as the
owner's defaults (full DML for the runtime role). On the audit tables, everyone but their
owner keeps only SELECT and INSERT: REVOKE_SQL takes UPDATE, DELETE, TRUNCATE, TRIGGER and
REFERENCES from every other grantee (PUBLIC included), whatever its name.
"""

from django.db import migrations, models

AUDIT_TABLES = ("registry_auditevent", "registry_auditseal", "registry_auditcheckpoint")

APPEND_ONLY_SQL = """
CREATE TRIGGER registry_auditcheckpoint_append_only
    BEFORE UPDATE OR DELETE ON registry_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();
CREATE TRIGGER registry_auditcheckpoint_no_truncate
    BEFORE TRUNCATE ON registry_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change();
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS registry_auditcheckpoint_append_only ON registry_auditcheckpoint;
DROP TRIGGER IF EXISTS registry_auditcheckpoint_no_truncate ON registry_auditcheckpoint;
"""

REVOKE_SQL = """
DO $$
DECLARE
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT DISTINCT c.relname AS table_name,
               CASE WHEN acl.grantee = 0 THEN 'PUBLIC'
                    ELSE quote_ident(pg_get_userbyid(acl.grantee)) END AS grantee
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
        CROSS JOIN LATERAL aclexplode(c.relacl) AS acl
        WHERE c.relname IN (__AUDIT_TABLES__)
          AND acl.grantee <> c.relowner
          AND acl.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES')
    LOOP
        EXECUTE format(
            'REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON %I FROM %s',
            grant_row.table_name, grant_row.grantee
        );
    END LOOP;
END $$;
""".replace("__AUDIT_TABLES__", ", ".join(f"'{table}'" for table in AUDIT_TABLES))


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0007_unit_quotas"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seq", models.BigIntegerField(verbose_name="sealed events")),
                ("hash", models.CharField(max_length=64, verbose_name="chain hash")),
                ("signed_at", models.DateTimeField(verbose_name="signed at")),
                ("key_id", models.CharField(max_length=16, verbose_name="key id")),
                ("public_key", models.CharField(max_length=64, verbose_name="public key")),
                ("signature", models.CharField(max_length=128, verbose_name="signature")),
            ],
            options={
                "verbose_name": "audit checkpoint",
                "verbose_name_plural": "audit checkpoints",
                "ordering": ["-id"],
            },
        ),
        migrations.RunSQL(APPEND_ONLY_SQL, DROP_SQL),
        migrations.RunSQL(REVOKE_SQL, migrations.RunSQL.noop),
    ]
