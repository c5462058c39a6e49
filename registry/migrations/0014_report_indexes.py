"""Issue 19, the regulator's monthly report: indexes that let each of its counts read an index
alone at 10M cases (cases submitted, closed and live, per category) and lookups by purpose
(the lookup time index now carries the purpose and the counts it adds up)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0013_member_suspension_reason"),
    ]

    operations = [
        migrations.AlterField(
            model_name="lookup",
            name="created_at",
            field=models.DateTimeField(verbose_name="looked up at"),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(fields=["created_at", "category"], name="case_created"),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(
                condition=models.Q(("status__in", ["withdrawn", "removed", "expired"])),
                fields=["status_changed_at", "category", "status"],
                name="case_closed",
            ),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(
                condition=models.Q(("status__in", ["active", "disputed"])),
                fields=["category"],
                name="case_live_category",
            ),
        ),
        migrations.AddIndex(
            model_name="lookup",
            index=models.Index(
                fields=["created_at"],
                include=("purpose", "identifier_count", "match_count"),
                name="lookup_created",
            ),
        ),
    ]
