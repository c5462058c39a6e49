"""The compliance officers' admin for tests: signing in with a TOTP code (or a session whose
second factor is already verified), auditors and superusers, and the dispute desk's URL."""

from django.contrib.auth.models import Group
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.actors import Actor
from registry.services.members import AUDITORS_GROUP
from registry.services.otp import totp_device_create
from tests.support.world import OFFICER_PASSWORD, user_model

ADMIN = "/admin/"
LOGIN = "/admin/login/"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
RATIONALE = "The subject's police report matches the dates of the application."


def device_of(user) -> TOTPDevice:
    return TOTPDevice.objects.filter(user=user).first() or totp_device_create(
        actor=Actor.system(), user=user
    )


def code_for(device: TOTPDevice, *, drift: int = 0) -> str:
    """The code an authenticator app shows now (or `drift` steps later)."""
    value = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=drift)
    return f"{value:0{device.digits}d}"


def verified_client(user, **headers) -> Client:
    """A client signed in as `user` with the second factor verified (as after a login)."""
    device = device_of(user)
    client = Client(**headers)
    client.force_login(user, backend=MODEL_BACKEND)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def make_auditor(username: str = "auditor"):
    user = user_model().objects.create_user(
        username=username, password=OFFICER_PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=AUDITORS_GROUP))
    return user


def make_superuser(username: str = "root"):
    return user_model().objects.create_superuser(
        username=username, password=OFFICER_PASSWORD, email=f"{username}@registry.example"
    )


def login(client: Client, username: str, password: str, code: str):
    return client.post(
        LOGIN,
        {"username": username, "password": password, "otp_token": code, "next": ADMIN},
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def decide_url(dispute_id) -> str:
    return f"{ADMIN}registry/dispute/{dispute_id}/decide/"


def uphold(client: Client, dispute_id, rationale: str = RATIONALE, **kwargs):
    """Uphold a dispute as an officer does: the case file's form shows the summary, whose own
    form (with the confirmation token the server requires) decides."""
    form = {"outcome": "upheld", "rationale": rationale}
    summary = client.post(decide_url(dispute_id), form)
    assert summary.status_code == 200 and "confirmation" in summary.context, summary.status_code
    confirmed = {**form, "confirmation": summary.context["confirmation"]}
    return client.post(decide_url(dispute_id), confirmed, **kwargs)
