"""What test modules share: the named members (`world`), data builders, real processes
(server, worker, private PostgreSQL/Redis) and the helpers of the admin, audit, API-problem
and OPRF tests. Test modules import from here, never from one another.

- world: the named members and keys of the `world` fixture (alice, bob, carol, officer)
- factories: tokens, identifiers, cases, lookups, disputes through the API
- jobs_data: cases and lookup logs written with the ORM, in states the jobs care about
- admin: signing in to the admin (TOTP), the dispute desk's URLs
- audit: audit events by action, tampering with the trail as a database superuser
- report: cases and audit events at chosen times, for the regulator's monthly report
- api: the problem+json shape of every error answer; the endpoint matrix
- servers, workers, private_services: gunicorn, a Celery worker, private PostgreSQL/Redis
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
