"""Issue 16: watches, alerts (and the member's velocity alert threshold, the "watch" limit
scope), and the default schedule of the monitoring jobs (created only when missing, like
0003's, so officers' edits survive)."""

import django.contrib.postgres.fields
import django.db.models.deletion
from django.db import migrations, models

import registry.ids

SCHEDULE = [
    (
        "registry: velocity alerts",
        "registry.jobs.velocity_alerts",
        ("interval", 60, "seconds"),
        120,
        "Raise velocity.exceeded for watched identifiers other members looked up often.",
    ),
    (
        "registry: webhook deliveries",
        "registry.jobs.webhook_deliveries",
        ("interval", 30, "seconds"),
        60,
        "Retry due webhook deliveries (and those whose worker died mid-delivery).",
    ),
    (
        "registry: watch housekeeping",
        "registry.jobs.watch_housekeeping",
        ("crontab", "25", "3"),
        3000,
        "Delete expired watches and alerts older than REGISTRY_ALERT_RETENTION_DAYS.",
    ),
]


def seed_schedule(apps, schema_editor):
    from django.utils import timezone

    beat = __import__("registry.migrations.0003_beat_schedule", fromlist=["_crontab"])
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, task, (kind, *when), expire_seconds, description in SCHEDULE:
        schedule = (
            {"interval": beat._interval(apps, *when)}
            if kind == "interval"
            else {"crontab": beat._crontab(apps, *when)}
        )
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": task,
                "kwargs": "{}",
                "expire_seconds": expire_seconds,
                "description": description,
                "enabled": True,
                **schedule,
            },
        )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0010_compliance_key_expiry"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="member",
            name="velocity_alert_threshold",
            field=models.PositiveSmallIntegerField(
                blank=True,
                help_text=(
                    "Other members looking a watched identifier up within 24 hours that raise "
                    "an alert; empty for the default."
                ),
                null=True,
                verbose_name="velocity alert threshold",
            ),
        ),
        migrations.AlterField(
            model_name="memberlimit",
            name="scope",
            field=models.CharField(
                choices=[
                    ("evaluate", "OPRF evaluate (one unit per element)"),
                    ("lookup", "Lookups (one unit per identifier)"),
                    ("submit", "Submit cases (one unit per call)"),
                    ("dispute", "Disputes (one unit per call)"),
                    ("watch", "Watches (one unit per identifier)"),
                ],
                max_length=16,
                verbose_name="scope",
            ),
        ),
        migrations.AlterField(
            model_name="quotacounter",
            name="scope",
            field=models.CharField(
                choices=[
                    ("evaluate", "OPRF evaluate (one unit per element)"),
                    ("lookup", "Lookups (one unit per identifier)"),
                    ("submit", "Submit cases (one unit per call)"),
                    ("dispute", "Disputes (one unit per call)"),
                    ("watch", "Watches (one unit per identifier)"),
                ],
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="Alert",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=registry.ids.uuid7,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("watch_id", models.UUIDField(verbose_name="watch")),
                (
                    "type",
                    models.CharField(
                        choices=[
                            ("case.reported", "Case reported"),
                            ("case.cleared", "Case cleared"),
                            ("velocity.exceeded", "Velocity exceeded"),
                        ],
                        max_length=32,
                        verbose_name="type",
                    ),
                ),
                ("cause", models.CharField(max_length=80)),
                ("created_at", models.DateTimeField(verbose_name="created at")),
                (
                    "tx",
                    models.BigIntegerField(
                        db_default=models.Func(
                            function="txid_current", output_field=models.BigIntegerField()
                        )
                    ),
                ),
                ("label", models.CharField(blank=True, max_length=100, verbose_name="label")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("phone", "Mobile phone number"),
                            ("cn_resident_id", "Chinese resident ID number"),
                            ("bank_card", "Bank card number"),
                            ("imei", "Device IMEI"),
                            ("email", "E-mail address"),
                        ],
                        max_length=16,
                        verbose_name="kind",
                    ),
                ),
                ("fingerprint", models.CharField(max_length=16, verbose_name="fingerprint")),
                ("case_id", models.UUIDField(blank=True, null=True)),
                ("case", models.JSONField(blank=True, null=True)),
                ("velocity", models.JSONField(blank=True, null=True)),
                (
                    "member",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="alerts",
                        to="registry.member",
                    ),
                ),
            ],
            options={
                "verbose_name": "alert",
                "verbose_name_plural": "alerts",
                "indexes": [
                    models.Index(fields=["member", "tx", "id"], name="alert_member_order"),
                    models.Index(fields=["created_at"], name="alert_created"),
                    models.Index(fields=["case_id"], name="alert_case"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("watch_id", "cause"), name="one_alert_per_cause"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Watch",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=registry.ids.uuid7,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("phone", "Mobile phone number"),
                            ("cn_resident_id", "Chinese resident ID number"),
                            ("bank_card", "Bank card number"),
                            ("imei", "Device IMEI"),
                            ("email", "E-mail address"),
                        ],
                        max_length=16,
                        verbose_name="kind",
                    ),
                ),
                ("digest", models.BinaryField(max_length=32)),
                ("pepper_version", models.PositiveSmallIntegerField(default=1)),
                ("fingerprint", models.CharField(max_length=16, verbose_name="fingerprint")),
                (
                    "purpose",
                    models.CharField(
                        choices=[
                            ("loan_monitoring", "Loan monitoring"),
                            ("account_monitoring", "Account monitoring"),
                        ],
                        max_length=32,
                        verbose_name="purpose",
                    ),
                ),
                (
                    "consent_reference",
                    models.CharField(max_length=100, verbose_name="consent reference"),
                ),
                ("label", models.CharField(blank=True, max_length=100, verbose_name="label")),
                ("created_at", models.DateTimeField(verbose_name="created at")),
                ("expires_on", models.DateField(verbose_name="expires on")),
                (
                    "member",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="watches",
                        to="registry.member",
                    ),
                ),
            ],
            options={
                "verbose_name": "watch",
                "verbose_name_plural": "watches",
                "indexes": [
                    models.Index(fields=["digest", "kind"], name="watch_digest"),
                    models.Index(
                        fields=["member", "-created_at", "-id"], name="watch_member_newest"
                    ),
                    models.Index(fields=["expires_on"], name="watch_expiry"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("member", "kind", "digest"), name="one_watch_per_identifier"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="WebhookEndpoint",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=registry.ids.uuid7,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("url", models.URLField(max_length=2000, verbose_name="URL")),
                (
                    "events",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=32), size=None, verbose_name="events"
                    ),
                ),
                ("secret", models.CharField(max_length=100)),
                ("created_at", models.DateTimeField(verbose_name="created at")),
                (
                    "last_success_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="last success"),
                ),
                (
                    "last_failure_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="last failure"),
                ),
                (
                    "consecutive_failures",
                    models.PositiveIntegerField(default=0, verbose_name="consecutive failures"),
                ),
                (
                    "failing_since",
                    models.DateTimeField(blank=True, null=True, verbose_name="failing since"),
                ),
                (
                    "member",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="webhook_endpoints",
                        to="registry.member",
                    ),
                ),
            ],
            options={
                "verbose_name": "webhook endpoint",
                "verbose_name_plural": "webhook endpoints",
            },
        ),
        migrations.CreateModel(
            name="WebhookDelivery",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("msg_id", models.CharField(max_length=64)),
                ("event_type", models.CharField(max_length=32, verbose_name="event")),
                ("data", models.JSONField()),
                ("event_at", models.DateTimeField()),
                ("created_at", models.DateTimeField(verbose_name="created at")),
                ("next_attempt_at", models.DateTimeField(verbose_name="next attempt")),
                ("attempts", models.PositiveIntegerField(default=0, verbose_name="attempts")),
                (
                    "delivered_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="delivered at"),
                ),
                (
                    "gave_up_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="gave up at"),
                ),
                (
                    "last_status",
                    models.PositiveSmallIntegerField(
                        blank=True, null=True, verbose_name="last HTTP status"
                    ),
                ),
                (
                    "last_error",
                    models.CharField(blank=True, max_length=64, verbose_name="last error"),
                ),
                (
                    "endpoint",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="registry.webhookendpoint",
                    ),
                ),
            ],
            options={
                "verbose_name": "webhook delivery",
                "verbose_name_plural": "webhook deliveries",
            },
        ),
        migrations.AddIndex(
            model_name="webhookendpoint",
            index=models.Index(fields=["member", "-created_at"], name="webhook_member_newest"),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("delivered_at__isnull", True), ("gave_up_at__isnull", True)),
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(fields=["created_at"], name="webhook_delivery_created"),
        ),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.UniqueConstraint(
                fields=("endpoint", "msg_id"), name="one_delivery_per_message"
            ),
        ),
        migrations.RunPython(seed_schedule, migrations.RunPython.noop),
    ]
