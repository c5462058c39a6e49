"""registry/ids.py: time-ordered ids for cases and lookups."""

import time
import uuid

import pytest

from registry.ids import uuid7
from tests.support.factories import fresh_phone, identifier, lookup, submit_case


def millis(value: uuid.UUID) -> int:
    return value.int >> 80


def test_it_makes_rfc_9562_version_7_ids():
    ids = {uuid7() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}


def test_it_starts_each_id_with_its_creation_time_in_milliseconds():
    before = time.time_ns() // 1_000_000
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= millis(first) < millis(second) <= after
    assert first < second  # later ids sort after earlier ones


@pytest.mark.django_db
def test_it_gives_cases_and_lookups_time_ordered_ids(world):
    case = submit_case(world.alice, identifiers=[identifier("phone", fresh_phone())])
    answer = lookup(world.bob, [identifier("phone", fresh_phone())])
    assert uuid.UUID(case["id"]).version == 7
    assert uuid.UUID(answer["lookup_id"]).version == 7
