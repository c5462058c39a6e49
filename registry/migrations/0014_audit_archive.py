"""AuditArchive, exactly as the "parts" branch's 0014_partitioned_history creates it (so that
this branch runs alone). At merge: drop this migration and let 0015_audit_verification depend
on 0014_partitioned_history."""

from django.db import migrations, models

AUDIT_ARCHIVE_SQL = """
CREATE TRIGGER registry_auditarchive_append_only BEFORE UPDATE OR DELETE ON registry_auditarchive
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();
CREATE TRIGGER registry_auditarchive_no_truncate BEFORE TRUNCATE ON registry_auditarchive
    FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change();
DO $$
DECLARE
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT DISTINCT CASE WHEN acl.grantee = 0 THEN 'PUBLIC'
                             ELSE quote_ident(pg_get_userbyid(acl.grantee)) END AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS acl
        WHERE c.oid = 'registry_auditarchive'::regclass AND acl.grantee <> c.relowner
          AND acl.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES')
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES '
                       'ON registry_auditarchive FROM %s', grant_row.grantee);
    END LOOP;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0013_member_suspension_reason"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditArchive",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("month", models.DateField(unique=True, verbose_name="month")),
                ("file_sha256", models.CharField(max_length=64, verbose_name="file SHA-256")),
                ("first_seq", models.BigIntegerField(verbose_name="first seal")),
                ("last_seq", models.BigIntegerField(verbose_name="last seal")),
                (
                    "last_hash",
                    models.CharField(
                        blank=True, default="", max_length=64, verbose_name="last seal's hash"
                    ),
                ),
                ("events", models.BigIntegerField(verbose_name="events")),
                ("archived_at", models.DateTimeField(verbose_name="archived at")),
            ],
            options={
                "verbose_name": "audit archive",
                "verbose_name_plural": "audit archives",
                "ordering": ["month"],
            },
        ),
        migrations.RunSQL(
            AUDIT_ARCHIVE_SQL,
            "DROP TRIGGER IF EXISTS registry_auditarchive_append_only ON registry_auditarchive;"
            "DROP TRIGGER IF EXISTS registry_auditarchive_no_truncate ON registry_auditarchive;",
        ),
    ]
