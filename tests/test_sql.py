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
