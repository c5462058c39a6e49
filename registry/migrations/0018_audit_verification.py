"""AuditVerification: what verify_audit has verified, the anchor of the next incremental run.
Append-only like the trail: the runtime role may only INSERT and SELECT it."""

from django.db import migrations, models

APPEND_ONLY_SQL = """
CREATE TRIGGER registry_auditverification_append_only
    BEFORE UPDATE OR DELETE ON registry_auditverification
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();
CREATE TRIGGER registry_auditverification_no_truncate
    BEFORE TRUNCATE ON registry_auditverification
    FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change();
DO $$
DECLARE
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT DISTINCT CASE WHEN acl.grantee = 0 THEN 'PUBLIC'
                             ELSE quote_ident(pg_get_userbyid(acl.grantee)) END AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS acl
        WHERE c.oid = 'registry_auditverification'::regclass AND acl.grantee <> c.relowner
          AND acl.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES')
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES '
                       'ON registry_auditverification FROM %s', grant_row.grantee);
    END LOOP;
END $$;
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS registry_auditverification_append_only ON registry_auditverification;
DROP TRIGGER IF EXISTS registry_auditverification_no_truncate ON registry_auditverification;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0017_rings"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditVerification",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seq", models.BigIntegerField(verbose_name="checkpoint's seal")),
                ("hash", models.CharField(max_length=64, verbose_name="chain hash")),
                ("head_seq", models.BigIntegerField(verbose_name="verified up to seal")),
                ("full", models.BooleanField(verbose_name="full walk")),
                ("verified_at", models.DateTimeField(verbose_name="verified at")),
                (
                    "checkpoint",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="+",
                        to="registry.auditcheckpoint",
                        verbose_name="checkpoint",
                    ),
                ),
            ],
            options={
                "verbose_name": "audit verification",
                "verbose_name_plural": "audit verifications",
                "ordering": ["-id"],
            },
        ),
        migrations.RunSQL(APPEND_ONLY_SQL, DROP_SQL),
    ]
