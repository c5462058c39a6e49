"""Usage signals below the limits: a member's day far from its own 30-day median raises an
officer alert, shown on the dashboard and on the member's page."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from registry.actors import Actor
from registry.models import AuditEvent, MemberDailyUsage
from registry.selectors.usage import member_signals, usage_alerts
from registry.services.jobs import job_execute
from registry.services.usage import usage_signals_check
from tests.support.admin import ADMIN, verified_client
from tests.support.api import EVALUATE, elements, identifiers
from tests.support.factories import LOOKUPS

pytestmark = pytest.mark.django_db
USUAL = {
    "elements_evaluated": 120,
    "identifiers_looked_up": 100,
    "distinct_identifiers": 95,
    "identifiers_matched": 3,
    "disputes_filed": 0,
}
PANEL = re.compile(r'<section[^>]*id="usage-signals".*?</section>', re.S)
MEMBER_PANEL = re.compile(r'<div class="module registry-panel" id="member-signals">.*?</ul>', re.S)


def seed_history(party, days: int = 30, **values) -> None:
    """The member's usual days, as the hourly roll-up would have stored them."""
    today = timezone.localdate()
    MemberDailyUsage.objects.bulk_create(
        MemberDailyUsage(
            member=party.member,
            day=today - timedelta(days=n),
            computed_at=timezone.now(),
            **(USUAL | values),
        )
        for n in range(1, days + 1)
    )


def alerts_of(party) -> set[str]:
    return {
        event.details["signal"]
        for event in AuditEvent.objects.filter(
            action="member.usage_signal", object_id=party.member.code
        )
    }


def test_it_alerts_officers_to_a_sweep_far_above_the_members_own_median(world):
    seed_history(world.bob)
    seed_history(world.alice)
    # Today Bob evaluates 1000 elements and looks up 800 numbers nobody reported; Alice works
    # as usual.
    assert world.bob.post(EVALUATE, elements(1000)).status_code == 200
    assert world.bob.post(LOOKUPS, identifiers(800)).status_code == 200
    assert world.alice.post(EVALUATE, elements(100)).status_code == 200
    assert world.alice.post(LOOKUPS, identifiers(90)).status_code == 200

    summary = job_execute("usage_signals")

    assert summary["alerts"] == 3
    assert alerts_of(world.bob) == {"distinct_identifiers", "elements_evaluated", "match_rate"}
    assert alerts_of(world.alice) == set()
    today = MemberDailyUsage.objects.get(member=world.bob.member, day=timezone.localdate())
    assert (today.elements_evaluated, today.distinct_identifiers) == (1000, 800)
    assert job_execute("usage_signals")["alerts"] == 0  # once per member, signal and day

    officer = verified_client(world.officer.user)
    response = officer.get(ADMIN)
    panel = PANEL.search(response.content.decode()).group(0)
    assert "BOB_LOANS" in panel and "ALICE_BANK" not in panel
    assert "Distinct identifiers looked up" in panel and "Elements evaluated" in panel
    assert 'registry-tile-alarm" href="#usage-signals"' in response.content.decode()

    page = officer.get(f"{ADMIN}registry/member/{world.bob.member.pk}/change/")
    member_panel = MEMBER_PANEL.search(page.content.decode()).group(0)
    assert member_panel.count("registry-signal-alert") == 3
    assert member_panel.count('class="registry-usage-alert"') == 3
    alice_page = officer.get(f"{ADMIN}registry/member/{world.alice.member.pk}/change/")
    assert "registry-signal-alert" not in alice_page.content.decode()


def test_it_flags_a_member_harvesting_tokens_it_never_looks_up(world):
    seed_history(world.bob)
    assert world.bob.post(EVALUATE, elements(1000)).status_code == 200
    assert world.bob.post(LOOKUPS, identifiers(10)).status_code == 200

    job_execute("usage_signals")

    assert "evaluate_lookup_ratio" in alerts_of(world.bob)


def test_it_flags_a_burst_of_disputes(world):
    seed_history(world.carol)
    MemberDailyUsage.objects.create(
        member=world.carol.member,
        day=timezone.localdate(),
        computed_at=timezone.now(),
        **(USUAL | {"disputes_filed": 9}),
    )
    assert usage_signals_check(day=timezone.localdate()) == 1
    assert alerts_of(world.carol) == {"disputes_filed"}


def test_it_does_not_alert_without_enough_history(world):
    seed_history(world.bob, days=3)
    assert world.bob.post(EVALUATE, elements(1000)).status_code == 200
    job_execute("usage_signals")
    assert alerts_of(world.bob) == set()


def test_it_shows_signals_and_alerts_to_officers_only(world):
    seed_history(world.bob)
    MemberDailyUsage.objects.create(
        member=world.bob.member,
        day=timezone.localdate(),
        computed_at=timezone.now(),
        **(USUAL | {"disputes_filed": 9}),
    )
    usage_signals_check(day=timezone.localdate())
    bob = Actor.for_api_key(world.bob.member.api_keys.get())
    officer = Actor.for_officer(world.officer.user)
    since = timezone.now() - timedelta(days=1)
    assert usage_alerts(actor=bob, since=since) == []
    assert member_signals(actor=bob, member_id=world.bob.member.pk, day=timezone.localdate()) == []
    assert [a.member_code for a in usage_alerts(actor=officer, since=since)] == ["BOB_LOANS"]
    signals = member_signals(actor=officer, member_id=world.bob.member.pk, day=timezone.localdate())
    assert [s.name for s in signals if s.alert] == ["disputes_filed"]
    assert {s.name: s.median for s in signals}["distinct_identifiers"] == 95
