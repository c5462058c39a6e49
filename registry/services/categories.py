"""Fraud categories: compliance officers set each one's retention period.

A case's `expires_at` is `confirmed_at + retention`. Changing a category's retention re-dates
every live case of that category in one UPDATE (a shorter period can make some of them
expire at once: lookups stop returning them immediately, and the expiry job purges them).
"""

from django.db import transaction
from django.db.models import DateField, ExpressionWrapper, F, Value
from django.utils.translation import gettext as _

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import FieldError, NotFound, ValidationFailed
from registry.models import LIVE_CASE_STATUSES, Case, Category
from registry.services.audit import audit_record

MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 1827  # five years, leap days included (the database enforces it too)


@transaction.atomic
def category_set_retention(*, actor: Actor, category: Category | str, retention_days: int) -> int:
    """Set the retention period and re-date the live cases of the category. Returns how many
    cases were re-dated. Officers (admin) and the system only."""
    if actor.is_member:
        raise NotFound(_("No such category."))
    if not isinstance(retention_days, int) or not (
        MIN_RETENTION_DAYS <= retention_days <= MAX_RETENTION_DAYS
    ):
        raise ValidationFailed(
            _("Retention is %(min)d to %(max)d days.")
            % {"min": MIN_RETENTION_DAYS, "max": MAX_RETENTION_DAYS},
            [FieldError("/retention_days", "out_of_range", _("Out of range."))],
        )
    code = category.pk if isinstance(category, Category) else category
    locked = Category.objects.select_for_update().filter(pk=code).first()
    if locked is None:
        raise NotFound(_("No such category."))
    previous = locked.retention_days
    locked.retention_days = retention_days
    locked.save(update_fields=["retention_days"])
    redated = Case.objects.filter(category_id=code, status__in=LIVE_CASE_STATUSES).update(
        # date + integer is a date in PostgreSQL: one set-based UPDATE, no rows in Python.
        expires_at=ExpressionWrapper(
            F("confirmed_at") + Value(retention_days), output_field=DateField()
        )
    )
    audit_record(
        actor=actor,
        action=AuditAction.CATEGORY_RETENTION_CHANGED,
        object_type="category",
        object_id=code,
        details={"from_days": previous, "to_days": retention_days, "cases_redated": redated},
    )
    if isinstance(category, Category):
        category.retention_days = retention_days
    return redated
