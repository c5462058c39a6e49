"""Second factor for staff users (django-otp TOTP)."""

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.actors import Actor
from registry.services.audit import audit_record


@transaction.atomic
def totp_device_create(*, actor: Actor, user) -> TOTPDevice:
    TOTPDevice.objects.filter(user=user).delete()
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    audit_record(
        actor=actor,
        action="officer.totp_created",
        object_type="user",
        object_id=user.get_username(),
    )
    return device
