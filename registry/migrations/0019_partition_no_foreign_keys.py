"""The partitioned lookups and lookup log lose their foreign-key constraints (models.py says
why: a partition's DDL would lock members and keys against every API request), and the
partition functions wait at most 200 ms for a lock: while a DETACH waits, every lookup queues
behind it, so registry/services/partitions.py retries a refused attempt instead of waiting."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0018_audit_verification"),
    ]

    operations = [
        migrations.RunSQL(
            [
                "ALTER FUNCTION registry_partition_create(text, date) SET lock_timeout = '200ms'",
                "ALTER FUNCTION registry_partition_drop(text, date) SET lock_timeout = '200ms'",
            ],
            [
                "ALTER FUNCTION registry_partition_create(text, date) SET lock_timeout = '10s'",
                "ALTER FUNCTION registry_partition_drop(text, date) SET lock_timeout = '10s'",
            ],
        ),
        migrations.AlterField(
            model_name="lookup",
            name="api_key",
            field=models.ForeignKey(
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="registry.apikey",
            ),
        ),
        migrations.AlterField(
            model_name="lookup",
            name="member",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="lookups",
                to="registry.member",
            ),
        ),
        migrations.AlterField(
            model_name="lookuplogentry",
            name="member",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="registry.member",
            ),
        ),
    ]
