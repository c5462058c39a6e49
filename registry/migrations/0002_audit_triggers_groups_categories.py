"""The database's own guarantees and the registry's reference data:
- the audit tables refuse UPDATE, DELETE and TRUNCATE (append-only, whoever asks);
- the compliance officers' and auditors' groups;
- the fraud categories with the default five-year retention.
"""

from django.db import migrations

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION registry_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER registry_auditevent_append_only
    BEFORE UPDATE OR DELETE ON registry_auditevent
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();
CREATE TRIGGER registry_auditevent_no_truncate
    BEFORE TRUNCATE ON registry_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change();
CREATE TRIGGER registry_auditseal_append_only
    BEFORE UPDATE OR DELETE ON registry_auditseal
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();
CREATE TRIGGER registry_auditseal_no_truncate
    BEFORE TRUNCATE ON registry_auditseal
    FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change();
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS registry_auditevent_append_only ON registry_auditevent;
DROP TRIGGER IF EXISTS registry_auditevent_no_truncate ON registry_auditevent;
DROP TRIGGER IF EXISTS registry_auditseal_append_only ON registry_auditseal;
DROP TRIGGER IF EXISTS registry_auditseal_no_truncate ON registry_auditseal;
DROP FUNCTION IF EXISTS registry_refuse_change();
"""

CATEGORIES = [
    ("identity_theft", "Identity theft"),
    ("forged_documents", "Forged documents"),
    ("synthetic_identity", "Synthetic identity"),
    ("first_party_fraud", "First-party fraud"),
    ("account_takeover", "Account takeover"),
    ("money_mule", "Money mule"),
    ("loan_intermediary_fraud", "Loan-intermediary fraud"),
]

OFFICER_PERMISSIONS = {
    # model: actions officers may take through the admin (each backed by an audited service)
    "member": ["view", "add", "change"],
    "memberlimit": ["view", "add", "change", "delete"],
    "apikey": ["view", "add", "change"],
    "category": ["view", "change"],
    "case": ["view", "change"],
    "dispute": ["view", "change"],
    "auditevent": ["view"],
    "jobrun": ["view"],
    "lookup": ["view"],
}


def seed(apps, schema_editor):
    Category = apps.get_model("registry", "Category")
    for code, name in CATEGORIES:
        Category.objects.get_or_create(code=code, defaults={"name": name, "retention_days": 1826})
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    officers, _ = Group.objects.get_or_create(name="compliance_officers")
    auditors, _ = Group.objects.get_or_create(name="compliance_auditors")
    for model, actions in OFFICER_PERMISSIONS.items():
        ct, _ = ContentType.objects.get_or_create(app_label="registry", model=model)
        for action in actions:
            perm, _ = Permission.objects.get_or_create(
                content_type=ct,
                codename=f"{action}_{model}",
                defaults={"name": f"Can {action} {model}"},
            )
            officers.permissions.add(perm)
            if action == "view":
                auditors.permissions.add(perm)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunSQL(APPEND_ONLY_SQL, DROP_SQL),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
