"""Member quality (issue 19): the figures per member over 90 days and 12 months on a world
with known numbers (tests/support/quality.py), the consortium medians, the windows' edges,
the flags and their thresholds, the system check, and the admin pages in Chinese.

The same in a browser: tests/test_member_quality_browser.py."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from registry.actors import Actor
from registry.checks import check_quality_thresholds
from registry.errors import NotFound
from registry.models import Case, MemberDailyUsage
from registry.selectors.quality import Flag, member_quality_report, quality_windows
from registry.services.usage import member_usage_rollup
from tests.support.admin import ADMIN, verified_client
from tests.support.factories import fresh_phone, identifier, lookup
from tests.support.quality import quality_world

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
LEAGUE = f"{ADMIN}registry/member/quality/"


def report(world):
    return member_quality_report(actor=Actor.for_officer(world.officer.user), now=NOW)


@pytest.fixture
def known(world):
    return quality_world(world, NOW)


@pytest.fixture
def officer_zh(world):
    return verified_client(world.officer.user, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")


def test_it_starts_the_windows_at_local_midnight_of_the_first_day():
    short, long = quality_windows(NOW)

    assert short.start == datetime(2026, 3, 18, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert long.start == datetime(2025, 6, 16, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert (short.key, long.key) == ("90d", "12m")


def test_it_computes_each_members_figures_over_90_days(world, known):
    alice = report(world).member(world.alice.member.pk).figures["90d"]

    assert alice.cases_reported == 10  # the case at the first midnight counts
    assert alice.cases_withdrawn == 4 and alice.withdrawn_share == 0.4
    assert alice.disputes == 4
    assert (alice.disputes_decided, alice.disputes_upheld) == (3, 1)
    assert alice.upheld_share == pytest.approx(1 / 3)
    assert alice.responses == 2 and alice.median_response_days == 3.5
    assert alice.overdue_disputes == 1  # the early decision without an answer is not overdue
    assert alice.identifiers_looked_up == 150 and alice.lookups_per_case == 15.0


def test_it_computes_each_members_figures_over_12_months(world, known):
    alice = report(world).member(world.alice.member.pk).figures["12m"]

    # A second before the 90 days counts here; a second before the 12 months nowhere.
    assert alice.cases_reported == 20 and alice.cases_withdrawn == 5
    assert alice.withdrawn_share == 0.25
    assert alice.disputes == 6 and alice.disputes_decided == 5 and alice.upheld_share == 0.6
    assert alice.median_response_days == 6.5
    assert alice.overdue_disputes == 2  # unanswered past the deadline, and answered late
    assert alice.identifiers_looked_up == 200 and alice.lookups_per_case == 10.0


def test_it_leaves_undefined_what_a_member_without_cases_cannot_have(world, known):
    quality = report(world)
    bob = quality.member(world.bob.member.pk).figures["90d"]
    carol = quality.member(world.carol.member.pk).figures["90d"]

    assert (bob.cases_reported, bob.withdrawn_share, bob.lookups_per_case) == (2, 0.0, 0.0)
    assert bob.upheld_share is None and bob.median_response_days is None
    assert carol.cases_reported == 0
    assert carol.withdrawn_share is None and carol.lookups_per_case is None


def test_it_gives_the_consortium_median_of_each_metric(world, known):
    medians = report(world).medians

    assert medians["90d"] == {
        "cases_reported": 2,  # 10, 2, 0
        "withdrawn_share": 0.2,  # 0.4, 0.0 (Carol has no case)
        "disputes": 0,  # 4, 0, 0
        "upheld_share": pytest.approx(1 / 3),
        "median_response_days": 3.5,
        "overdue_disputes": 0,
        "lookups_per_case": 7.5,  # 15, 0
    }
    assert medians["12m"]["withdrawn_share"] == 0.125
    assert medians["12m"]["lookups_per_case"] == 5.0
    assert medians["12m"]["median_response_days"] == 6.5


def test_it_flags_a_member_past_the_thresholds_and_only_that_member(world, known):
    quality = report(world)

    alice = quality.member(world.alice.member.pk)
    assert set(alice.flags) == {
        Flag("90d", "withdrawn_share", 0.4, 0.2),
        Flag("12m", "withdrawn_share", 0.25, 0.2),
        Flag("12m", "upheld_share", 0.6, 0.5),
    }
    assert [m.code for m in quality.flagged] == ["ALICE_BANK"]


@override_settings(
    REGISTRY_QUALITY_MAX_OVERDUE_DISPUTES=1,
    REGISTRY_QUALITY_MAX_MEDIAN_RESPONSE_DAYS=5.0,
    REGISTRY_QUALITY_MAX_WITHDRAWN_SHARE=0.5,
    REGISTRY_QUALITY_MAX_UPHELD_SHARE=0.7,
)
def test_it_flags_by_the_configured_thresholds(world, known):
    alice = report(world).member(world.alice.member.pk)

    assert set(alice.flags) == {
        Flag("12m", "overdue_disputes", 2, 1),
        Flag("12m", "median_response_days", 6.5, 5.0),
    }


@override_settings(REGISTRY_QUALITY_MIN_CASES=11, REGISTRY_QUALITY_MIN_DISPUTES=6)
def test_it_judges_shares_only_from_enough_cases_and_decided_disputes(world, known):
    alice = report(world).member(world.alice.member.pk)

    assert set(alice.flags) == {Flag("12m", "withdrawn_share", 0.25, 0.2)}  # 20 cases ≥ 11


def test_it_counts_lookups_from_the_usage_roll_up(world, frozen_now):
    today = frozen_now.current
    lookup(world.bob, [identifier("phone", fresh_phone()), identifier("phone", fresh_phone())])
    member_usage_rollup(day=timezone.localdate(today))  # a member's day is Asia/Shanghai's

    quality = member_quality_report(actor=Actor.for_officer(world.officer.user))

    usage = MemberDailyUsage.objects.get(member=world.bob.member)
    assert usage.identifiers_looked_up == 2
    assert quality.member(world.bob.member.pk).figures["90d"].identifiers_looked_up == 2


def test_only_officers_see_member_quality(world):
    with pytest.raises(NotFound):
        member_quality_report(actor=Actor.for_api_key(world.alice.member.api_keys.first()))


@pytest.mark.parametrize(
    "name, value",
    [
        ("REGISTRY_QUALITY_MAX_WITHDRAWN_SHARE", 1.5),
        ("REGISTRY_QUALITY_MAX_WITHDRAWN_SHARE", -0.1),
        ("REGISTRY_QUALITY_MAX_UPHELD_SHARE", 20.0),
        ("REGISTRY_QUALITY_MAX_UPHELD_SHARE", float("nan")),
        ("REGISTRY_QUALITY_MAX_MEDIAN_RESPONSE_DAYS", -1.0),
        ("REGISTRY_QUALITY_MAX_OVERDUE_DISPUTES", -1),
        ("REGISTRY_QUALITY_MIN_CASES", 0),
        ("REGISTRY_QUALITY_MIN_DISPUTES", 0),
    ],
)
def test_it_rejects_nonsense_thresholds_at_start_up(name, value):
    with override_settings(**{name: value}):
        errors = check_quality_thresholds()

    assert len(errors) == 1 and name in errors[0].msg


def test_it_accepts_the_default_thresholds():
    assert check_quality_thresholds() == []


# --- The admin, in Chinese -----------------------------------------------------------------------


@pytest.fixture
def at_now(frozen_now, known):
    frozen_now.set(NOW)
    cache.clear()
    return frozen_now


def test_the_league_table_lists_every_member_with_the_median_and_the_flag(
    world, at_now, officer_zh
):
    response = officer_zh.get(LEAGUE)

    html = response.content.decode()
    assert response.status_code == 200
    assert "成员机构报送质量" in html and "联盟中位数" in html
    codes = [row["member"].code for row in response.context["rows"]]
    assert codes[0] == "ALICE_BANK" and set(codes) == {"ALICE_BANK", "BOB_LOANS", "CAROL_CREDIT"}
    assert "撤回比例为 40.0%，超过上限 20.0%" in html
    assert "90 天" in html and "12 个月" in html


def test_the_league_table_sorts_by_each_metric_in_either_window(world, at_now, officer_zh):
    def order(**params):
        response = officer_zh.get(LEAGUE, params)
        return [row["member"].code for row in response.context["rows"]]

    assert order(o="cases_reported") == ["CAROL_CREDIT", "BOB_LOANS", "ALICE_BANK"]
    assert order(o="-cases_reported") == ["ALICE_BANK", "BOB_LOANS", "CAROL_CREDIT"]
    # Undefined values ("—") come last whichever the direction.
    assert order(o="withdrawn_share") == ["BOB_LOANS", "ALICE_BANK", "CAROL_CREDIT"]
    assert order(o="-withdrawn_share") == ["ALICE_BANK", "BOB_LOANS", "CAROL_CREDIT"]
    twelve = officer_zh.get(LEAGUE, {"window": "12m", "o": "-cases_reported"})
    alice = twelve.context["rows"][0]
    assert alice["member"].code == "ALICE_BANK" and alice["cells"][0]["value"] == "20"
    assert officer_zh.get(LEAGUE, {"flagged": "1"}).context["rows"][0]["member"].code == (
        "ALICE_BANK"
    )
    assert len(officer_zh.get(LEAGUE, {"flagged": "1"}).context["rows"]) == 1


def test_the_league_table_ignores_unknown_windows_and_sort_keys(world, at_now, officer_zh):
    default = officer_zh.get(LEAGUE)
    expected = [row["member"].code for row in default.context["rows"]]
    for params in (
        {"o": "__class__"},
        {"o": "-" * 5000},
        {"window": "999d", "o": "cases_reported\x00"},
        {"window": ["90d", "12m"], "o": ["x", "y"]},
        {"flagged": "yes"},
    ):
        response = officer_zh.get(LEAGUE, params)
        assert response.status_code == 200, params
        assert [row["member"].code for row in response.context["rows"]] == expected, params


def test_a_members_page_shows_its_quality_beside_the_median_and_why_it_is_flagged(
    world, at_now, officer_zh
):
    alice = world.alice.member
    html = officer_zh.get(f"{ADMIN}registry/member/{alice.pk}/change/").content.decode()

    panel = html[html.index('id="member-quality"') :]
    panel = panel[: panel.index('id="member-limits"')]
    assert "报送质量" in panel and "联盟中位数" in panel
    assert "需要审查" in panel
    assert "12 个月：已决争议中被支持的比例为 60.0%，超过上限 50.0%" in panel
    withdrawn_row = panel[panel.index('data-metric="withdrawn_share"') :].split("</tr>")[0]
    assert ">40.0%<" in withdrawn_row and ">20.0%<" in withdrawn_row and ">25.0%<" in withdrawn_row


def test_the_member_list_and_the_dashboard_flag_members_for_review(world, at_now, officer_zh):
    members = officer_zh.get(f"{ADMIN}registry/member/").content.decode()
    dashboard = officer_zh.get(ADMIN).content.decode()

    alice_row = members[members.index("ALICE_BANK") :].split("</tr>")[0]
    bob_row = members[members.index("BOB_LOANS") :].split("</tr>")[0]
    assert "registry-quality-flag" in alice_row and "registry-quality-flag" not in bob_row
    tile = dashboard[: dashboard.index('id="tile-quality"')].rsplit("<a ", 1)[1]
    tile += dashboard[dashboard.index('id="tile-quality"') :].split("</a>")[0]
    assert 'href="/admin/registry/member/quality/?flagged=1"' in tile
    assert '<span class="registry-tile-number">1</span>' in tile
    assert "成员机构报送质量" in officer_zh.get(f"{ADMIN}registry/case/").content.decode()


def test_an_auditor_reads_the_league_table_too(world, at_now, auditor):
    assert auditor.get(LEAGUE).status_code == 200


def test_a_withdrawal_changes_the_figures_after_the_cache_expires(world, at_now, officer_zh):
    bob_case = Case.objects.filter(member=world.bob.member).first()
    Case.objects.filter(pk=bob_case.pk).update(status="withdrawn")
    cache.clear()

    rows = {r["member"].code: r for r in officer_zh.get(LEAGUE).context["rows"]}

    assert rows["BOB_LOANS"]["cells"][1]["value"] == "50.0%"


def test_the_quality_page_is_behind_the_login(client, world):
    response = client.get(LEAGUE)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_windows_do_not_move_with_a_now_in_the_middle_of_the_day(world, known):
    later = member_quality_report(
        actor=Actor.for_officer(world.officer.user), now=NOW + timedelta(hours=11)
    )
    assert later.member(world.alice.member.pk).figures["90d"].cases_reported == 10
