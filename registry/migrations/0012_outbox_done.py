# An outbox row is done when its task has done its work, not when it was published.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0011_watches_alerts"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="outboxtask", name="outbox_undelivered"),
        migrations.RenameField(
            model_name="outboxtask", old_name="delivered_at", new_name="published_at"
        ),
        # Rows published before this change carry no proof that their task ran: they stay
        # "not done", and the sweeper publishes each once more (the tasks are idempotent), which
        # also finishes any a dead worker stranded.
        migrations.AddField(
            model_name="outboxtask",
            name="done_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="outboxtask",
            index=models.Index(
                condition=models.Q(("done_at__isnull", True)),
                fields=["created_at"],
                name="outbox_not_done",
            ),
        ),
    ]
