"""A world with known member-quality figures (registry/selectors/quality.py), written with the
ORM because the figures depend on when cases and disputes were made, at the windows' edges.

`quality_world(world, now)`: for the world's members, with `now` the report's time:

ALICE_BANK reports poorly.
- 90 days: 10 cases (one made exactly at the window's first midnight), 4 withdrawn (0.4);
  4 disputes about its cases: answered after 2 and 5 days (median 3.5), one decided upheld,
  one rejected, one rejected early by an officer without an answer (not overdue), and one
  unanswered past its deadline (overdue); upheld 1 of 3 decided. 150 identifiers looked up:
  15 per case.
- 12 months: 10 more cases (one a second before the 90 days, one exactly at the 12 months'
  first midnight), 1 more withdrawn: 20 cases, 5 withdrawn (0.25); 2 more disputes, upheld,
  answered after 8 and 30 days (30 is past the 20-day deadline: overdue): 6 disputes, 3 of 5
  decided upheld (0.6), median of 2, 5, 8, 30 = 6.5 days, 2 overdue. 200 identifiers: 10 per
  case.
- Outside: a withdrawn case a second before the 12 months, a dispute an hour before them,
  1000 identifiers the day before them.

BOB_LOANS: 2 cases in the 90 days, nothing withdrawn, no dispute, no lookups (0 per case).
CAROL_CREDIT: nothing (its shares are undefined).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from registry.models import Case, Dispute, DisputeStatus, MemberDailyUsage
from registry.selectors.quality import quality_windows
from tests.support.jobs_data import make_cases

DEADLINE = timedelta(days=20)


@dataclass
class QualityWorld:
    now: datetime
    short_start: datetime
    long_start: datetime


def _cases(member, created: list[datetime], withdrawn: int = 0) -> list[Case]:
    made = [
        m.case for m in make_cases(member, len(created), expires_at=_far(), identifiers_per_case=1)
    ]
    for index, (case, at) in enumerate(zip(made, created, strict=True)):
        status = "withdrawn" if index < withdrawn else "active"
        Case.objects.filter(pk=case.pk).update(created_at=at, status=status)
        case.created_at, case.status = at, status
    return made


def _far():
    from datetime import date

    return date.today() + timedelta(days=1000)


def _dispute(case, filed_by, *, filed_at, responded_after=None, status="open", decided_after=None):
    return Dispute.objects.create(
        case=case,
        filed_by=filed_by,
        reason=Dispute.Reason.NOT_ME,
        status=status,
        filed_at=filed_at,
        due_at=filed_at + DEADLINE,
        response_position="maintain" if responded_after is not None else "",
        responded_at=filed_at + responded_after if responded_after is not None else None,
        decided_at=filed_at + decided_after if decided_after is not None else None,
    )


def quality_world(world, now: datetime) -> QualityWorld:
    short, long = quality_windows(now)
    alice, bob = world.alice.member, world.bob.member
    second, hour, day = timedelta(seconds=1), timedelta(hours=1), timedelta(days=1)

    in_short = [short.start] + [short.start + n * day for n in range(1, 10)]
    only_long = [short.start - second, long.start] + [long.start + n * day for n in range(1, 9)]
    recent = _cases(alice, in_short, withdrawn=4)
    older = _cases(alice, only_long, withdrawn=1)
    _cases(alice, [long.start - second], withdrawn=1)
    _cases(bob, [now - day, now - 2 * day])
    # Disputes need cases of their own (one undecided dispute per case at most).
    about = _cases(alice, [now - 2000 * day] * 7)  # long before both windows: no effect

    upheld, rejected = DisputeStatus.UPHELD, DisputeStatus.REJECTED
    _dispute(about[0], bob, filed_at=short.start + day, responded_after=2 * day,
             status=upheld, decided_after=10 * day)  # fmt: skip
    _dispute(about[1], bob, filed_at=short.start + 2 * day, responded_after=5 * day,
             status=rejected, decided_after=10 * day)  # fmt: skip
    _dispute(about[2], bob, filed_at=short.start + 3 * day, status=rejected,
             decided_after=3 * day)  # fmt: skip
    _dispute(about[3], bob, filed_at=now - 25 * day)  # unanswered, past its deadline
    _dispute(about[4], bob, filed_at=short.start - second, responded_after=8 * day,
             status=upheld, decided_after=12 * day)  # fmt: skip
    _dispute(about[5], bob, filed_at=long.start + day, responded_after=30 * day,
             status=upheld, decided_after=31 * day)  # fmt: skip
    _dispute(about[6], bob, filed_at=long.start - hour, responded_after=day,
             status=upheld, decided_after=2 * day)  # fmt: skip

    today = short.first_day + timedelta(days=89)
    for when, count in (
        (today, 100),
        (short.first_day, 50),
        (short.first_day - timedelta(days=1), 30),
        (long.first_day, 20),
        (long.first_day - timedelta(days=1), 1000),
    ):
        MemberDailyUsage.objects.create(
            member=alice, day=when, identifiers_looked_up=count, computed_at=now
        )
    assert len(recent) == 10 and len(older) == 10
    return QualityWorld(now=now, short_start=short.start, long_start=long.start)
