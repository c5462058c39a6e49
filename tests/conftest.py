import pytest
from django.core.cache import cache

from tests.base import make_world


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Rate-limit counters live in the shared cache; start every test from zero."""
    cache.clear()
    yield


@pytest.fixture
def world(db):
    return make_world()
