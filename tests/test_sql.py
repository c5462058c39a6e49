"""registry/sql.py: hot statements stay within psycopg's parse cache."""

import psycopg
import pytest

from registry.services.api_keys import _KEY_SQL
from registry.services.lookups import _LOOKUP_SQL
from registry.sql import compact

# psycopg re-parses the placeholders of a longer statement on every execution.
PSYCOPG_CACHED_LENGTH = getattr(psycopg._queries, "MAX_CACHED_STATEMENT_LENGTH", 4096)


@pytest.mark.parametrize("statement", [_LOOKUP_SQL, _KEY_SQL], ids=["lookup", "api key"])
def test_it_keeps_hot_statements_short_enough_for_psycopgs_cache(statement):
    assert len(statement) <= PSYCOPG_CACHED_LENGTH


def test_it_squeezes_layout_but_not_values():
    squeezed = compact("\n  SELECT a,\n\t b  FROM t WHERE c = 'x'\n")
    assert squeezed == "SELECT a, b FROM t WHERE c = 'x'"


def test_it_refuses_to_compact_a_statement_with_a_line_comment():
    with pytest.raises(ValueError, match="--"):
        compact("SELECT 1 -- one\nFROM t")


def test_it_runs_the_lookup_as_a_prepared_statement_with_its_generic_plan(world):
    """Planning the lookup's statement cost more than running it: it is prepared once per
    connection and never re-planned (settings.py: prepare_threshold, plan_cache_mode)."""
    from django.db import connection

    from tests.support.factories import fresh_phone, identifier, lookup

    for _ in range(7):  # past PostgreSQL's five custom plans of its "auto" mode
        lookup(world.bob, [identifier("phone", fresh_phone())])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE 'WITH probe %%'"
        )
        assert cursor.fetchall() == [(7, 0)]
