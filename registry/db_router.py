"""Reads for lookups from a PostgreSQL read replica, when one is configured.

Active only when DATABASE_REPLICA_URL is set (settings add the `replica` alias and this
router). Lookups are the registry's hot read path and tolerate a replica that is a few
hundred milliseconds behind: a case reported that instant may match a moment later. Nothing
else does, so the rules are narrow:

- only reads of the models a lookup matches against (cases, their identifiers, categories,
  sightings for velocity) may go to the replica;
- never inside a transaction on the primary: a service that has written (or locked) rows
  must read its own writes, and every registry write runs in `transaction.atomic`;
- writes, migrations and everything else (API keys, so that a revocation bites at once;
  idempotency keys; the audit trail) stay on the primary.

Code that wants the replica explicitly for a lag-tolerant read outside any transaction can
use `Case.objects.using(read_alias())`.
"""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA_DB_ALIAS = "replica"
REPLICA_READ_MODELS = frozenset(
    {"registry.case", "registry.caseidentifier", "registry.category", "registry.sighting"}
)


def replica_configured() -> bool:
    return REPLICA_DB_ALIAS in settings.DATABASES


def read_alias() -> str:
    """The alias for a lag-tolerant read right now: the replica if there is one and the
    primary connection is not inside a transaction; else the primary."""
    if replica_configured() and not connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return REPLICA_DB_ALIAS
    return DEFAULT_DB_ALIAS


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        if model._meta.label_lower in REPLICA_READ_MODELS:
            return read_alias()
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # Both aliases hold the same data; anything else is not this router's to judge.
        if {obj1._state.db, obj2._state.db} <= {DEFAULT_DB_ALIAS, REPLICA_DB_ALIAS}:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS
