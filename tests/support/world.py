"""Named test members reused across the suite (after healthchecks' hc/test.py).

- alice: a bank that reports cases (every member scope)
- bob:   a small-loan company that looks applicants up (every member scope)
- carol: a third member, for cross-member and velocity checks (every member scope)
- officer: a compliance officer user with a `compliance` key
Each has a ready API client authenticated with its key: `world.alice.post(url, json)`.
"""

import threading
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from registry.actors import Actor
from registry.models import Member
from registry.services.api_keys import api_key_issue
from registry.services.members import member_create, officer_create

MEMBER_SCOPES = ["lookup", "submit", "dispute"]
OFFICER_PASSWORD = "correct horse battery staple 42"


class KeyClient(APIClient):
    """An APIClient that sends one API key and JSON by default."""

    def __init__(self, raw_key: str | None, **kwargs):
        super().__init__(**kwargs)
        self.raw_key = raw_key
        if raw_key:
            self.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    def post(self, path, data=None, format=None, **kwargs):  # noqa: A002 - DRF's name
        if format is None and "content_type" not in kwargs:
            format = "json"  # noqa: A001
        return super().post(path, data, format=format, **kwargs)


@dataclass
class Party:
    member: Member | None
    raw_key: str
    client: KeyClient
    user: object | None = None
    extra: dict = field(default_factory=dict)

    def get(self, *args, **kwargs):
        return self.client.get(*args, **kwargs)

    def post(self, *args, **kwargs):
        return self.client.post(*args, **kwargs)


def make_member(code: str, name: str | None = None, scopes=None, email: str = "") -> Party:
    member = member_create(
        actor=Actor.system(),
        code=code,
        name=name or code.title(),
        contact_email=email or f"risk@{code.lower().replace('_', '-')}.example",
    )
    issued = api_key_issue(actor=Actor.system(), member=member, scopes=scopes or MEMBER_SCOPES)
    return Party(member=member, raw_key=issued.raw_key, client=KeyClient(issued.raw_key))


def make_officer(username: str = "officer") -> Party:
    user = officer_create(
        actor=Actor.system(),
        username=username,
        password=OFFICER_PASSWORD,
        email=f"{username}@registry.example",
    )
    issued = api_key_issue(actor=Actor.system(), officer=user, scopes=["compliance"])
    return Party(member=None, raw_key=issued.raw_key, client=KeyClient(issued.raw_key), user=user)


@dataclass
class World:
    alice: Party
    bob: Party
    carol: Party
    officer: Party
    anonymous: KeyClient


def make_world() -> World:
    return World(
        alice=make_member("ALICE_BANK", "Alice Bank"),
        bob=make_member("BOB_LOANS", "Bob Small Loans"),
        carol=make_member("CAROL_CREDIT", "Carol Consumer Credit"),
        officer=make_officer(),
        anonymous=KeyClient(None),
    )


def user_model():
    return get_user_model()


def race(*calls, timeout: float = 120) -> list:
    """Run the calls at the same moment in threads, each on its own database connection (for
    concurrency tests on the real PostgreSQL). Returns their results in order; a call that
    raised gives its exception in its place."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results
