import pytest
from registry.actors import Actor
from registry.models import Category
from registry.services.audit import audit_record


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_flush():
    assert Category.objects.count() == 7
    audit_record(actor=Actor.system(), action="x")

@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_flush2():
    assert Category.objects.count() == 7
    audit_record(actor=Actor.system(), action="x")
