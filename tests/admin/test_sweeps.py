"""Sweeps in the officers' admin: a member refused by its rate limit (a sweep of the OPRF
evaluate or lookup endpoint) is listed on the dashboard and flagged on its own page, for
officers and read-only auditors alike, in English and in Chinese."""

import re
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from registry.actors import Actor
from registry.models import AuditEvent
from registry.selectors.abuse import last_refused_at, refused_windows
from tests.support.abuse import member_actor, refuse
from tests.support.admin import ADMIN, verified_client
from tests.support.api import EVALUATE, elements, limit
from tests.support.factories import fresh_phone, identifier, lookup
from tests.support.translations import ensure_compiled_messages

pytestmark = pytest.mark.django_db
PANEL = re.compile(r'<section[^>]*id="throttled-members".*?</section>', re.S)
THROTTLED_LINE = re.compile(
    r'<div class="form-row field-throttled_recently">.*?</div>\s*</div>', re.S
)


# --- helpers ------------------------------------------------------------------------------------


def sweep_evaluate(party, calls: int) -> list[int]:
    # The limiter counts in fixed minute windows: a sweep that crossed into the next minute
    # would start counting again, so start it early in a minute.
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)
    return [party.post(EVALUATE, elements(1)).status_code for _ in range(calls)]


def panel_of(response) -> str:
    assert response.status_code == 200
    match = PANEL.search(response.content.decode())
    assert match, "no throttled-members panel on the dashboard"
    return match.group(0)


def rows_of(response) -> dict[str, dict]:
    return {row["code"]: row for row in response.context["dashboard"]["throttled"]}


def member_page(client, party) -> str:
    response = client.get(f"{ADMIN}registry/member/{party.member.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def throttled_line(html: str) -> str:
    match = THROTTLED_LINE.search(html)
    assert match, "no 'Throttled recently' line on the member's page"
    return match.group(0)


# --- the dashboard ------------------------------------------------------------------------------


def test_it_lists_a_member_that_swept_the_evaluate_endpoint_with_its_scope(world, officer):
    limit(world.bob, "evaluate", per_minute=3)
    assert sweep_evaluate(world.bob, 8) == [200] * 3 + [429] * 5

    response = officer.get(ADMIN)

    row = rows_of(response)["BOB_LOANS"]
    assert (row["scopes"], row["minute_windows"], row["day_windows"]) == ("OPRF evaluate", 1, 0)
    assert row["recent"] and row["first_at"] <= row["last_at"]
    panel = panel_of(response)
    assert "Members throttled (last 7 days)" in panel
    assert "BOB_LOANS" in panel and "Bob Small Loans" in panel and "<td>OPRF evaluate</td>" in panel
    assert 'class="registry-throttled registry-throttled-recent"' in panel
    assert f'href="{ADMIN}registry/member/{world.bob.member.pk}/change/"' in panel
    assert 'id="tile-throttled"' in response.content.decode()


def test_it_leaves_out_a_member_that_stayed_within_its_limit(world, officer):
    limit(world.alice, "evaluate", per_minute=5)
    limit(world.bob, "evaluate", per_minute=2)
    assert sweep_evaluate(world.alice, 5) == [200] * 5  # busy, but never refused
    assert sweep_evaluate(world.bob, 3) == [200, 200, 429]

    response = officer.get(ADMIN)

    assert list(rows_of(response)) == ["BOB_LOANS"]
    panel = panel_of(response)
    assert "BOB_LOANS" in panel and "ALICE_BANK" not in panel and "Alice Bank" not in panel


def test_it_says_so_when_nobody_was_throttled(world, officer):
    sweep_evaluate(world.alice, 3)  # default limits: nowhere near them

    response = officer.get(ADMIN)

    assert rows_of(response) == {}
    panel = panel_of(response)
    assert 'id="throttled-none"' in panel and "No member was throttled in the last 7 days" in panel
    assert "<table" not in panel


def test_it_links_each_row_to_that_members_refusals_in_the_audit_trail(world, officer):
    for party in (world.alice, world.bob):
        limit(party, "evaluate", per_minute=1)
        assert sweep_evaluate(party, 2) == [200, 429]

    refusals_url = rows_of(officer.get(ADMIN))["BOB_LOANS"]["refusals_url"]
    query = parse_qs(urlsplit(refusals_url).query)
    assert query == {
        "action": ["rate_limit.exceeded"],
        "member__id__exact": [str(world.bob.member.pk)],
    }

    listed = officer.get(refusals_url)
    assert listed.status_code == 200
    events = list(listed.context["cl"].result_list)
    assert [(e.action, e.member_id) for e in events] == [
        ("rate_limit.exceeded", world.bob.member.pk)
    ]
    # and nothing else of Bob's (his lookups and key use are audited too)
    assert AuditEvent.objects.filter(member=world.bob.member).count() > len(events)


def test_it_highlights_the_last_24_hours_and_forgets_after_7_days(world, officer, frozen_now):
    now = frozen_now.current
    frozen_now.set(now - timedelta(days=9))
    refuse(world.alice)  # too old to show
    frozen_now.set(now - timedelta(days=3))
    refuse(world.carol, window="day")
    refuse(world.carol, scope="submit")
    frozen_now.set(now - timedelta(hours=2))
    refuse(world.bob)
    frozen_now.set(now)

    response = officer.get(ADMIN)

    rows = rows_of(response)
    assert list(rows) == ["BOB_LOANS", "CAROL_CREDIT"]  # refused in the last 24 h first
    carol = rows["CAROL_CREDIT"]
    assert (carol["minute_windows"], carol["day_windows"], carol["recent"]) == (1, 1, False)
    assert carol["scopes"] == "Lookup, Submit cases"
    assert rows["BOB_LOANS"]["recent"]
    panel = panel_of(response)
    assert panel.count("registry-throttled-recent") == 1
    assert panel.count('class="registry-throttled"') == 1  # Carol's row, not highlighted
    assert "ALICE_BANK" not in panel
    assert 'registry-tile registry-tile-alarm" href="#throttled-members"' in (
        response.content.decode()
    )


def test_it_shows_the_members_usual_daily_lookups_next_to_the_sweep(world, officer, frozen_now):
    now = frozen_now.current
    frozen_now.set(now - timedelta(days=10))  # before the 7 days, inside the 28 before them
    for _ in range(14):
        lookup(world.bob, [identifier("phone", fresh_phone())])
    frozen_now.set(now)
    refuse(world.bob)

    response = officer.get(ADMIN)

    assert rows_of(response)["BOB_LOANS"]["usual_per_day"] == 0.5  # 14 lookups / 28 days
    assert "<td>0.5</td>" in panel_of(response)


def test_an_auditor_sees_the_throttled_members_too(world, auditor):
    limit(world.bob, "evaluate", per_minute=1)
    assert sweep_evaluate(world.bob, 3) == [200, 429, 429]

    response = auditor.get(ADMIN)

    assert list(rows_of(response)) == ["BOB_LOANS"]
    assert "BOB_LOANS" in panel_of(response)
    line = throttled_line(member_page(auditor, world.bob))
    assert "yes (last at" in line


def test_the_chinese_dashboard_shows_the_translated_panel(world):
    ensure_compiled_messages()
    limit(world.bob, "evaluate", per_minute=1)
    sweep_evaluate(world.bob, 2)
    client = verified_client(world.officer.user, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")

    panel = panel_of(client.get(ADMIN))

    assert "被限流的成员（近 7 天）" in panel
    assert "Members throttled" not in panel
    assert "近 24 小时" in panel and "BOB_LOANS" in panel


# --- the member's page --------------------------------------------------------------------------


def test_the_members_page_says_whether_it_was_throttled_recently(world, officer):
    limit(world.bob, "evaluate", per_minute=1)
    assert sweep_evaluate(world.bob, 2) == [200, 429]

    bob = throttled_line(member_page(officer, world.bob))
    assert "Throttled recently" in bob and "yes (last at" in bob
    assert "rate_limit.exceeded" in bob and f"member__id__exact={world.bob.member.pk}" in bob
    alice = throttled_line(member_page(officer, world.alice))
    assert "no (not in the last 7 days)" in alice and "yes" not in alice


def test_the_members_page_forgets_a_refusal_older_than_7_days(world, officer, frozen_now):
    now = frozen_now.current
    frozen_now.set(now - timedelta(days=8))
    refuse(world.bob)
    frozen_now.set(now)

    assert "no (not in the last 7 days)" in throttled_line(member_page(officer, world.bob))


def test_the_chinese_members_page_says_it_in_chinese(world):
    ensure_compiled_messages()
    refuse(world.bob)
    client = verified_client(world.officer.user, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")

    line = throttled_line(member_page(client, world.bob))

    assert "近期被限流" in line and "是（最近一次于" in line


# --- the selectors behind them ------------------------------------------------------------------


def test_the_new_selectors_show_a_member_only_its_own_refusals(world):
    refuse(world.alice)
    refuse(world.bob, window="day")
    since = timezone.now() - timedelta(minutes=5)
    officer_actor = Actor.for_officer(world.officer.user)
    alice_id, bob_id = world.alice.member.pk, world.bob.member.pk

    assert refused_windows(actor=officer_actor, since=since) == {
        alice_id: {"minute": 1},
        bob_id: {"day": 1},
    }
    assert refused_windows(actor=member_actor(world.alice), since=since) == {
        alice_id: {"minute": 1}
    }
    assert refused_windows(actor=Actor.system(), since=since) == {}
    assert last_refused_at(actor=officer_actor, member_id=bob_id, since=since) is not None
    assert last_refused_at(actor=member_actor(world.alice), member_id=bob_id, since=since) is None
    assert last_refused_at(actor=officer_actor, member_id=bob_id, since=timezone.now()) is None
