"""Pepper rotation (issue 3, "at rest"): stored digests are re-keyed to the new pepper in
resumable batches while lookups keep matching, with no data and no match lost."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from registry import tokens
from registry.actors import Actor
from registry.models import (
    ApiKey,
    AuditEvent,
    CaseIdentifier,
    LookupLogEntry,
    RegistryState,
    Sighting,
)
from registry.services.jobs import rotation
from registry.services.jobs.rotation import pepper_rotation_run, pepper_rotation_state
from registry.services.lookups import lookup_perform
from tests.support.jobs_data import make_cases
from tests.support.peppers import P1, P2, P3, peppers
from tests.support.world import race

pytestmark = pytest.mark.django_db

EVERY_WINDOW_TWO = {"1h": 2, "24h": 2, "7d": 2, "30d": 2, "90d": 2}


def actor_of(party) -> Actor:
    return Actor.for_api_key(ApiKey.objects.get(member=party.member))


def look_up(party, identifiers):
    return lookup_perform(
        actor=actor_of(party), purpose="loan_application", identifiers=identifiers
    ).results


def all_identifiers(made) -> list[tuple[str, str]]:
    return [identifier for m in made for identifier in m.identifiers]


def assert_all_stored_at_current_version(made):
    """Every digest is exactly the current layer of its token: rotated once per version,
    never twice, never skipped."""
    version = tokens.current_pepper_version()
    for m in made:
        stored = {bytes(ci.digest) for ci in CaseIdentifier.objects.filter(case=m.case)}
        assert stored == {tokens.digest_layers(token)[-1] for _kind, token in m.identifiers}
    for model in (CaseIdentifier, LookupLogEntry, Sighting):
        assert not model.objects.exclude(pepper_version=version).exists()


def rotated_rows_in_audit(table: str) -> int:
    return sum(
        e.details["rows"]
        for e in AuditEvent.objects.filter(action="pepper.rotated", details__table=table)
    )


def test_it_rekeys_every_table_and_records_progress_and_one_audit_event_per_batch(world):
    made = make_cases(world.alice.member, 6, expires_at=timezone.localdate() + timedelta(days=9))
    look_up(world.bob, all_identifiers(made))
    with peppers(P1, P2):
        summary = pepper_rotation_run(batch_size=5)

        assert summary["rotated"] == {
            "case_identifier": 12,
            "lookup_log_entry": 12,
            "sighting": 12,
            "watch": 0,
        }
        assert summary["complete"] and summary["target_version"] == 2
        assert_all_stored_at_current_version(made)
        assert AuditEvent.objects.filter(action="pepper.rotated").count() == 9  # 3 per table
        assert rotated_rows_in_audit("case_identifier") == 12
        state = pepper_rotation_state()
        assert state["completed_version"] == 2
        assert state["tables"]["sighting"]["rotated"] == 12
        assert AuditEvent.objects.filter(action="pepper.rotation_completed").count() == 1
        # Done: the next run returns at once.
        assert pepper_rotation_run()["batches"] == 0
        assert all(r["matched"] for r in look_up(world.carol, all_identifiers(made)))


def test_it_resumes_where_a_stopped_run_left_off(world):
    made = make_cases(world.alice.member, 10, expires_at=timezone.localdate() + timedelta(days=9))
    with peppers(P1, P2):
        first = pepper_rotation_run(batch_size=3, max_batches=2)
        assert first["rotated"]["case_identifier"] == 6 and not first["complete"]
        assert pepper_rotation_state()["tables"]["case_identifier"]["cursor"] > 0
        rest = pepper_rotation_run(batch_size=3)
        assert rest["rotated"]["case_identifier"] == 14 and rest["complete"]
        assert_all_stored_at_current_version(made)
        assert rotated_rows_in_audit("case_identifier") == 20


def test_it_finds_rows_left_behind_its_cursor(world):
    made = make_cases(world.alice.member, 4, expires_at=timezone.localdate() + timedelta(days=9))
    with peppers(P1, P2):
        pepper_rotation_run(batch_size=3)
        # A straggler: a row at the old version below the cursor (e.g. written late by a
        # process still on the old configuration).
        straggler = CaseIdentifier.objects.order_by("pk").first()
        _kind, token = next(
            i
            for m in made
            if m.case.pk == straggler.case_id
            for i in m.identifiers
            if i[0] == straggler.kind
        )
        CaseIdentifier.objects.filter(pk=straggler.pk).update(
            digest=tokens.digest_layers(token)[0], pepper_version=1
        )
        RegistryState.objects.filter(key=rotation.STATE_KEY).update(
            value={**pepper_rotation_state(), "completed_version": None}
        )

        assert pepper_rotation_run(batch_size=3)["rotated"]["case_identifier"] == 1
        assert_all_stored_at_current_version(made)


def test_it_applies_every_missing_layer(world):
    made = make_cases(world.alice.member, 3, expires_at=timezone.localdate() + timedelta(days=9))
    with peppers(P1, P2, P3):
        assert pepper_rotation_run()["rotated"]["case_identifier"] == 6
        assert_all_stored_at_current_version(made)


def test_it_merges_a_sighting_that_a_lookup_rewrote_during_the_rotation(world):
    [made] = make_cases(world.alice.member, 1, expires_at=timezone.localdate() + timedelta(1))
    kind, token = made.identifiers[0]
    long_ago = timezone.now() - timedelta(days=3)
    Sighting.objects.create(
        kind=kind,
        digest=tokens.digest_layers(token)[0],
        pepper_version=1,
        member=world.bob.member,
        last_seen_at=long_ago,
    )
    with peppers(P1, P2):
        look_up(world.bob, [(kind, token)])  # writes bob's version-2 row beside the old one
        assert Sighting.objects.filter(member=world.bob.member).count() == 2

        summary = pepper_rotation_run()

        assert summary["merged"] == 1
        [sighting] = Sighting.objects.filter(member=world.bob.member)
        assert sighting.pepper_version == 2 and sighting.last_seen_at > long_ago
        assert bytes(sighting.digest) == tokens.digest_layers(token)[-1]


def test_it_retries_a_batch_that_collides(world, monkeypatch):
    [made] = make_cases(world.alice.member, 1, expires_at=timezone.localdate() + timedelta(1))
    kind, token = made.identifiers[0]
    Sighting.objects.create(
        kind=kind,
        digest=tokens.digest_layers(token)[0],
        pepper_version=1,
        member=world.bob.member,
        last_seen_at=timezone.now(),
    )
    real_merge, calls = rotation._merge_sightings, []

    def merge_too_late(*args):
        # First attempt: the colliding row "appears" after the check, as a concurrent
        # lookup's insert would; the UPDATE then violates the unique constraint.
        calls.append(1)
        return set() if len(calls) == 1 else real_merge(*args)

    monkeypatch.setattr(rotation, "_merge_sightings", merge_too_late)
    with peppers(P1, P2):
        look_up(world.bob, [(kind, token)])
        summary = pepper_rotation_run()
    assert len(calls) == 2 and summary["merged"] == 1
    assert Sighting.objects.filter(member=world.bob.member).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_rotations_rekey_each_row_once(world):
    made = make_cases(world.alice.member, 40, expires_at=timezone.localdate() + timedelta(9))
    with peppers(P1, P2), override_settings(REGISTRY_JOB_BATCH_PAUSE_SECONDS=0.03):
        summaries = race(*[lambda: pepper_rotation_run(batch_size=4)] * 2)
        errors = [s for s in summaries if isinstance(s, Exception)]
        assert not errors
        assert all(s["rotated"]["case_identifier"] > 0 for s in summaries)
        assert sum(s["rotated"]["case_identifier"] for s in summaries) == 80
        assert rotated_rows_in_audit("case_identifier") == 80
        assert_all_stored_at_current_version(made)


@pytest.mark.django_db(transaction=True)
def test_rotating_under_lookup_load_loses_no_data_and_no_match(world):
    made = make_cases(world.alice.member, 40, expires_at=timezone.localdate() + timedelta(9))
    identifiers = all_identifiers(made)
    members = (world.alice, world.bob, world.carol)
    for party in members:  # each identifier seen by all three members before the rotation
        look_up(party, identifiers)
    assert {tuple(r["velocity"].items()) for r in look_up(world.alice, identifiers)} == {
        tuple(EVERY_WINDOW_TWO.items())
    }
    log_rows_before = LookupLogEntry.objects.count()

    done, answers, errors = threading.Event(), [], []

    def lookups_meanwhile():
        n = 0
        try:
            while not done.is_set():
                party = members[n % 3]
                answers.append((time.monotonic(), look_up(party, identifiers)))
                n += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    with peppers(P1, P2), override_settings(REGISTRY_JOB_BATCH_PAUSE_SECONDS=0.02):
        load = threading.Thread(target=lookups_meanwhile)
        load.start()
        wait_until = time.monotonic() + 30
        while not answers and time.monotonic() < wait_until:
            time.sleep(0.01)
        started = time.monotonic()
        summary = pepper_rotation_run(batch_size=10)
        finished = time.monotonic()
        done.set()
        load.join(timeout=60)

        assert not errors
        during = [results for at, results in answers if started <= at <= finished]
        assert during, "no lookup completed while the rotation ran"
        for results in [r for _at, r in answers]:
            assert all(r["matched"] for r in results)
            assert all(r["velocity"] == EVERY_WINDOW_TWO for r in results)
        assert summary["complete"]
        # The first lookup (before the rotation started) rewrote alice's sightings at the
        # new version: each of her old rows was merged into its new twin.
        assert summary["merged"] >= len(identifiers)
        assert_all_stored_at_current_version(made)
        # No log row lost: the ones from before, plus one per identifier per lookup since.
        assert LookupLogEntry.objects.count() == log_rows_before + len(answers) * len(identifiers)
        # One sighting per (identifier, member): rewritten rows were merged, none lost.
        assert Sighting.objects.count() == len(identifiers) * 3
        final = look_up(world.carol, identifiers)
        assert all(r["matched"] and r["velocity"] == EVERY_WINDOW_TWO for r in final)


def test_it_refuses_to_start_a_rotation_while_another_is_unfinished(world):
    """P1 -> P2 is half done when an operator configures P3: the job refuses, and touches
    neither rows nor state; configured back to P1, P2 it finishes, then P3 may start."""
    made = make_cases(world.alice.member, 4, expires_at=timezone.localdate() + timedelta(days=9))
    with peppers(P1, P2):
        assert not pepper_rotation_run(batch_size=3, max_batches=1)["complete"]
    state = pepper_rotation_state()
    rows = sorted(CaseIdentifier.objects.values_list("pk", "pepper_version", "digest"))

    with peppers(P1, P2, P3), pytest.raises(rotation.RotationUnfinished, match="version 2"):
        pepper_rotation_run()
    assert sorted(CaseIdentifier.objects.values_list("pk", "pepper_version", "digest")) == rows
    assert pepper_rotation_state() == state

    with peppers(P1, P2):
        assert pepper_rotation_run()["complete"]
    with peppers(P1, P2, P3):
        assert pepper_rotation_run()["complete"]
        assert_all_stored_at_current_version(made)


def test_it_finds_cases_at_every_version_a_partial_rotation_left_behind(world):
    """Rows at versions 1 and 2 (an interrupted rotation) while three peppers are configured:
    a lookup finds the cases on both layers, and velocity counts the sightings on both."""
    made = make_cases(world.alice.member, 6, expires_at=timezone.localdate() + timedelta(days=9))
    look_up(world.carol, all_identifiers(made))  # sightings at version 1
    with peppers(P1, P2):
        pepper_rotation_run(batch_size=4, max_batches=1)  # 4 of 12 identifiers at version 2
    assert set(CaseIdentifier.objects.values_list("pepper_version", flat=True)) == {1, 2}

    with peppers(P1, P2, P3):
        results = look_up(world.bob, all_identifiers(made))
    assert all(r["matched"] for r in results)
    assert all(r["velocity"]["1h"] == 1 for r in results)  # carol's, at version 1


def test_it_fails_a_system_check_when_a_stored_version_has_no_pepper(world):
    from django.core.checks import run_checks

    make_cases(world.alice.member, 2, expires_at=timezone.localdate() + timedelta(days=9))
    with peppers(P1, P2):
        pepper_rotation_run()
        assert not [e for e in run_checks(databases=["default"]) if e.id == "registry.E014"]
    # The operator drops the old pepper: the stored layer 2 is now beyond the configuration.
    with peppers(P2):
        [error] = [e for e in run_checks(databases=["default"]) if e.id == "registry.E014"]
        assert "[2]" in error.msg and error.is_serious()
