"""Second factor for staff users (django-otp TOTP)."""

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.services.audit import audit_record


@transaction.atomic
def totp_device_create(*, actor: Actor, user) -> TOTPDevice:
    TOTPDevice.objects.filter(user=user).delete()
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    audit_record(
        actor=actor,
        action=AuditAction.OFFICER_TOTP_CREATED,
        object_type="user",
        object_id=user.get_username(),
    )
    return device
