"""Seed a benchmark registry fast: binary COPY, indexes built after the load, then ANALYZE.

What it builds (defaults: 1,000,000 case identifiers, 10,000,000 lookup-log rows):
- 30 members whose activity follows a Zipf law (a few big banks, a long tail of small lenders);
- cases of one person each with 1–4 identifiers (a phone always, then a resident ID, a bank
  card, an IMEI or an e-mail), 5% of people reported by a second member, 0.5% of cases
  disputed (with an open dispute), and 2% closed cases (expired or withdrawn, identifiers
  purged as the registry does);
- rings (services/rings.py): besides the pairs the second reports make, 1% of people belong
  to small fraud rings of 3–8 sharing one device (an extra IMEI on each of their cases), and
  each chunk of 20,000 people has one large ring of 30–50 sharing a fixer's phone; the ring
  table is then built by the rings' own full rebuild, timed;
- a year (`log_days`, 365) of lookup log in time order, so that whole months can be dropped:
  applicant checks of 1–5 identifiers of one person, where repeat applicants follow a power
  law (loan stacking) and the heaviest of them overlap the registry, plus a few overnight
  book checks of 1000 identifiers; the Sighting rollup is derived from the log's last 90 days
  (the velocity window) with one GROUP BY.

Everything is streamed into COPY as it is generated (nothing but the applicants' digests is
held in memory), into the parent tables: once Lookup and LookupLogEntry are partitioned by
month, PostgreSQL routes each row to its month, and a month without a partition gets one
first (bench/partitions.py, the registry's `<table>_pYYYYMM` naming).

Tokens are pseudo-tokens, HMAC-SHA512(bench token key, "kind:person") as 128 hex: the server
only ever sees hex tokens, so they need not be OPRF outputs. Digests and fingerprints come
from registry/tokens.py itself, so API lookups match exactly.

A marker in RegistryState records what was seeded; a later run with the same sizes and
secrets reuses the data. The identifiers the benchmark queries are written to
var/bench/<database>/queries.json.
"""

import hashlib
import hmac
import json
import os
import random
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path

SEED_FORMAT = 3  # 2: rings; 3: a year of log (log_days), partition-aware
KINDS = ("phone", "cn_resident_id", "bank_card", "imei", "email")
CATEGORIES = (
    "identity_theft",
    "forged_documents",
    "synthetic_identity",
    "first_party_fraud",
    "account_takeover",
    "money_mule",
    "loan_intermediary_fraud",
)
PURPOSES = ("loan_application", "account_opening", "credit_review", "fraud_investigation")
PURPOSE_WEIGHTS = (80, 10, 8, 2)
# Identifiers per case: 1, 2, 3, 4 with these weights (mean 2.3).
CASE_SIZE_WEIGHTS = (25, 35, 25, 15)
MEAN_CASE_SIZE = sum((i + 1) * w for i, w in enumerate(CASE_SIZE_WEIGHTS)) / 100
SECOND_REPORT_SHARE = 0.05
DISPUTED_SHARE = 0.005
CLOSED_SHARE = 0.02
# Applicant lookups: the phone always, the other kinds with these probabilities.
APPLICANT_KIND_ODDS = (1.0, 0.8, 0.5, 0.15, 0.1)
BOOK_CHECK_SIZE = 1000
BOOK_CHECK_ROW_SHARE = 0.3
VELOCITY_DAYS = 90  # the longest velocity window: what the Sighting rollup covers
PERSONS_PER_CHUNK = 20_000
RING_PERSON_SHARE = 0.01
SMALL_RING_SIZES = (3, 8)
LARGE_RING_SIZES = (30, 50)
BULK_TABLES = (
    "registry_case",
    "registry_caseidentifier",
    "registry_dispute",
    "registry_lookup",
    "registry_lookuplogentry",
    "registry_sighting",
)


@dataclass(frozen=True)
class SeedPlan:
    identifiers: int = 1_000_000
    log_rows: int = 10_000_000
    members: int = 30
    seed: int = 20260101
    log_days: int = 365

    @property
    def registry_persons(self) -> int:
        per_person = MEAN_CASE_SIZE * (1 + SECOND_REPORT_SHARE * 0.7)
        return max(10, round(self.identifiers / per_person))

    @property
    def applicant_persons(self) -> int:
        return max(1000, self.log_rows // 10)

    @property
    def first_applicant(self) -> int:
        """Applicants are persons [first_applicant, first_applicant + applicant_persons): the
        first (and most active) of them are also in the registry."""
        overlap = min(self.registry_persons, self.applicant_persons // 50)
        return self.registry_persons - overlap

    @property
    def fresh_person_base(self) -> int:
        """Persons from here on were never seen by the registry."""
        return self.first_applicant + self.applicant_persons + 1_000_000


# --- tokens ---------------------------------------------------------------------------------


def bench_token(key: bytes, person: int, kind: str) -> str:
    return hmac.digest(key, f"{kind}:{person}".encode(), "sha512").hex()


def ring_token(key: bytes, kind: str, chunk: int, group: int) -> str:
    """The identifier a ring's people share (a device, a fixer's phone): one per group."""
    return hmac.digest(key, f"ring-{kind}:{chunk}:{group}".encode(), "sha512").hex()


def ring_groups(plan: "SeedPlan", chunk: int, first: int, count: int) -> dict[int, tuple]:
    """person -> (kind, group) for the people of this chunk who belong to a ring. A random
    stream of its own, so that the rest of the seed is as it was before rings."""
    rnd = random.Random(f"{plan.seed}:rings:{chunk}")
    people = list(range(first, first + count))
    members: dict[int, tuple] = {}
    large = rnd.randint(*LARGE_RING_SIZES)
    if count >= 10 * large:
        for person in rnd.sample(people, large):
            members[person] = ("phone", 0)
    picked = [p for p in rnd.sample(people, int(count * RING_PERSON_SHARE)) if p not in members]
    group, start = 1, 0
    while start < len(picked):
        size = rnd.randint(*SMALL_RING_SIZES)
        for person in picked[start : start + size]:
            members[person] = ("imei", group)
        group, start = group + 1, start + size
    return members


def token_key() -> bytes:
    return bytes.fromhex(os.environ["BENCH_TOKEN_KEY"])


def member_weights(count: int) -> list[float]:
    """Cumulative Zipf weights (s = 1.1): member 0 is the busiest."""
    total, cumulative = 0.0, []
    for rank in range(count):
        total += 1 / (rank + 1) ** 1.1
        cumulative.append(total)
    return cumulative


# --- the bulk-load frame: drop indexes and constraints, load, rebuild -------------------------


def side_dir(database: str) -> Path:
    from bench.env import VAR_BENCH

    path = VAR_BENCH / database
    path.mkdir(parents=True, exist_ok=True)
    return path


def _saved_schema(conn, database: str) -> dict:
    """Secondary indexes, unique and foreign-key constraints of the bulk tables. Saved to a
    file before they are dropped, so that a seed interrupted mid-way is repaired next time."""
    saved = side_dir(database) / "dropped-schema.json"
    if saved.exists():
        return json.loads(saved.read_text())
    tables = list(BULK_TABLES)
    indexes = conn.execute(
        """SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)""",
        [tables],
    ).fetchall()
    constraints = conn.execute(
        """SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
           FROM pg_constraint WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('u', 'f')
           ORDER BY contype DESC""",  # unique before foreign keys
        [tables],
    ).fetchall()
    schema = {"indexes": indexes, "constraints": constraints}
    saved.write_text(json.dumps(schema))
    return schema


def _drop_schema(conn, schema: dict) -> None:
    for table, name, _type, _definition in reversed(schema["constraints"]):
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{name}"')
    for name, _definition in schema["indexes"]:
        conn.execute(f'DROP INDEX IF EXISTS "{name}"')


def _rebuild_schema(conn, schema: dict, database: str) -> None:
    conn.execute("SET maintenance_work_mem = '512MB'")
    for _name, definition in schema["indexes"]:
        # A partitioned table's index is defined "ON ONLY" the parent (then attached per
        # partition): rebuilt here on the parent and all its partitions at once.
        definition = definition.replace(" ON ONLY ", " ON ", 1)
        conn.execute(
            definition.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1).replace(
                "CREATE UNIQUE INDEX", "CREATE UNIQUE INDEX IF NOT EXISTS", 1
            )
        )
    for table, name, _type, definition in schema["constraints"]:
        exists = conn.execute(
            "SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s",
            [table, name],
        ).fetchone()
        if not exists:
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    (side_dir(database) / "dropped-schema.json").unlink(missing_ok=True)


# --- cases (computed in worker processes: hashing is the expensive part) ---------------------


def _case_chunk(job: tuple) -> tuple[list, list, list]:
    from registry import tokens

    plan_fields, member_ids, chunk, first, count, today_ordinal, now_us = job
    plan = SeedPlan(**plan_fields)
    rnd = random.Random(f"{plan.seed}:cases:{chunk}")
    key = token_key()
    cum = member_weights(len(member_ids))
    today = date.fromordinal(today_ordinal)
    now = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_us)
    cases, identifiers, disputes, closed = [], [], [], []
    in_ring = ring_groups(plan, chunk, first, count)
    for person in range(first, first + count):
        reporters = (
            rnd.sample(range(len(member_ids)), 2)
            if rnd.random() < SECOND_REPORT_SHARE
            else [rnd.choices(range(len(member_ids)), cum_weights=cum)[0]]
        )
        for report, member_index in enumerate(reporters):
            size = rnd.choices((1, 2, 3, 4), weights=CASE_SIZE_WEIGHTS)[0]
            kinds = ["phone", *rnd.sample(KINDS[1:], size - 1)]
            confirmed = today - timedelta(days=rnd.randint(1, 1800))
            created = min(
                now,
                datetime.combine(confirmed, datetime.min.time(), UTC)
                + timedelta(seconds=rnd.randint(3600, 3 * 86400)),
            )
            case_id = uuid.UUID(int=rnd.getrandbits(128))
            status = "disputed" if rnd.random() < DISPUTED_SHARE else "active"
            cases.append(
                (
                    case_id,
                    member_ids[member_index],
                    f"P{person}-{report}",
                    rnd.choice(CATEGORIES),
                    status,
                    confirmed,
                    confirmed + timedelta(days=1826),
                    created,
                    created,
                    "",
                )
            )
            own = [(kind, bench_token(key, person, kind)) for kind in kinds]
            if person in in_ring:
                ring_kind, group = in_ring[person]
                own.append((ring_kind, ring_token(key, ring_kind, chunk, group)))
            for kind, token in own:
                digest, fingerprint = tokens.digest_and_fingerprint(token)
                identifiers.append(
                    (case_id, kind, digest, tokens.current_pepper_version(), fingerprint)
                )
            if status == "disputed":
                filed = now - timedelta(days=rnd.randint(0, 10), seconds=rnd.randint(0, 86400))
                disputes.append(
                    (
                        uuid.UUID(int=rnd.getrandbits(128)),
                        case_id,
                        member_ids[rnd.randrange(len(member_ids))],
                        "not_me",
                        "",
                        "open",
                        filed,
                        filed + timedelta(days=20),
                        "",
                        "",
                        "",
                    )
                )
        if rnd.random() < CLOSED_SHARE:
            expired = rnd.random() < 0.5
            confirmed = today - timedelta(
                days=rnd.randint(1830, 2000) if expired else rnd.randint(30, 1800)
            )
            created = datetime.combine(confirmed, datetime.min.time(), UTC)
            closed.append(
                (
                    uuid.UUID(int=rnd.getrandbits(128)),
                    member_ids[rnd.choices(range(len(member_ids)), cum_weights=cum)[0]],
                    f"C{person}",
                    rnd.choice(CATEGORIES),
                    "expired" if expired else "withdrawn",
                    confirmed,
                    confirmed + timedelta(days=1826),
                    created,
                    now,
                    "",
                )
            )
    return cases + closed, identifiers, disputes


CASE_COLUMNS = (
    "id",
    "member_id",
    "reference",
    "category_id",
    "status",
    "confirmed_at",
    "expires_at",
    "created_at",
    "status_changed_at",
    "subject_statement",
)
CASE_TYPES = (
    "uuid",
    "int8",
    "text",
    "text",
    "text",
    "date",
    "date",
    "timestamptz",
    "timestamptz",
    "text",
)
IDENTIFIER_COLUMNS = ("case_id", "kind", "digest", "pepper_version", "fingerprint")
IDENTIFIER_TYPES = ("uuid", "text", "bytea", "int2", "text")
DISPUTE_COLUMNS = (
    "id",
    "case_id",
    "filed_by_id",
    "reason",
    "statement",
    "status",
    "filed_at",
    "due_at",
    "response_position",
    "response_statement",
    "rationale",
)
DISPUTE_TYPES = (
    "uuid",
    "uuid",
    "int8",
    "text",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "text",
)


def copy_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"


def _micros_since_2000(moment: datetime) -> int:
    return (moment - datetime(2000, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _load_cases(conns, plan: SeedPlan, member_ids: list[int], pool) -> dict:
    from django.utils import timezone

    persons = plan.registry_persons
    chunks = [
        (
            asdict(plan),
            member_ids,
            n,
            first,
            min(PERSONS_PER_CHUNK, persons - first),
            timezone.localdate().toordinal(),
            _micros_since_2000(timezone.now()),
        )
        for n, first in enumerate(range(0, persons, PERSONS_PER_CHUNK))
    ]
    counts = {"cases": 0, "identifiers": 0, "disputes": 0}
    case_conn, ident_conn = conns
    with (
        case_conn.cursor().copy(copy_sql("registry_case", CASE_COLUMNS)) as case_copy,
        ident_conn.cursor().copy(
            copy_sql("registry_caseidentifier", IDENTIFIER_COLUMNS)
        ) as ident_copy,
    ):
        case_copy.set_types(list(CASE_TYPES))
        ident_copy.set_types(list(IDENTIFIER_TYPES))
        disputes = []
        for cases, identifiers, chunk_disputes in pool.imap(_case_chunk, chunks):
            for row in cases:
                case_copy.write_row(row)
            for row in identifiers:
                ident_copy.write_row(row)
            disputes.extend(chunk_disputes)
            counts["cases"] += len(cases)
            counts["identifiers"] += len(identifiers)
    with case_conn.cursor().copy(copy_sql("registry_dispute", DISPUTE_COLUMNS)) as copy:
        copy.set_types(list(DISPUTE_TYPES))
        for row in disputes:
            copy.write_row(row)
    counts["disputes"] = len(disputes)
    return counts


def _build_rings(log, started: float) -> dict:
    """The ring table, by the registry's own full rebuild (what the daily job runs)."""
    from django.db import connection

    from registry.services.rings import rings_rebuild

    began = time.monotonic()
    summary = rings_rebuild()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) registry_ring")
        cursor.execute("VACUUM (ANALYZE) registry_ringcase")
    summary["rebuild_seconds"] = round(time.monotonic() - began, 1)
    log(f"seed: rings built in {time.monotonic() - started:.0f} s: {summary}")
    return summary


# --- lookup log -------------------------------------------------------------------------------


def _digest_block(job: tuple) -> bytes:
    """Digests of (first..first+count, kind), concatenated (32 bytes each)."""
    from registry import tokens

    kind, first, count = job
    key = token_key()
    layers = tokens.digest_layers
    return b"".join(
        layers(bench_token(key, person, kind))[-1] for person in range(first, first + count)
    )


def _applicant_digests(plan: SeedPlan, pool) -> dict[str, bytes]:
    """Every applicant's five digests, as one byte string per kind (indexable by offset)."""
    first, count = plan.first_applicant, plan.applicant_persons
    jobs = [
        (kind, start, min(PERSONS_PER_CHUNK, first + count - start))
        for kind in KINDS
        for start in range(first, first + count, PERSONS_PER_CHUNK)
    ]
    blocks = pool.map(_digest_block, jobs)
    return {
        kind: b"".join(b for job, b in zip(jobs, blocks, strict=True) if job[0] == kind)
        for kind in KINDS
    }


LOOKUP_COLUMNS = (
    "id",
    "member_id",
    "api_key_id",
    "purpose",
    "consent_reference",
    "identifier_count",
    "match_count",
    "created_at",
)
LOOKUP_TYPES = ("uuid", "int8", "int8", "text", "text", "int4", "int4", "timestamptz")
ENTRY_COLUMNS = ("lookup_id", "member_id", "kind", "digest", "pepper_version", "created_at")
ENTRY_TYPES = ("uuid", "int8", "text", "bytea", "int2", "timestamptz")


def _load_log(conns, plan: SeedPlan, member_ids: list[int], pool) -> dict:
    from django.utils import timezone

    from registry import tokens

    digests = _applicant_digests(plan, pool)
    version = tokens.current_pepper_version()
    rnd = random.Random(f"{plan.seed}:log")
    cum = member_weights(len(member_ids))
    members = range(len(member_ids))
    applicants = plan.applicant_persons
    in_registry = plan.registry_persons - plan.first_applicant
    # Expected rows per lookup, to spread the lookups evenly over the 90 days.
    mean_applicant_rows = sum(APPLICANT_KIND_ODDS)
    book_share = (
        BOOK_CHECK_ROW_SHARE
        * mean_applicant_rows
        / (
            BOOK_CHECK_SIZE * (1 - BOOK_CHECK_ROW_SHARE)
            + BOOK_CHECK_ROW_SHARE * mean_applicant_rows
        )
    )
    mean_rows = book_share * BOOK_CHECK_SIZE + (1 - book_share) * mean_applicant_rows
    lookups_expected = max(1, plan.log_rows / mean_rows)
    end = timezone.now() - timedelta(minutes=5)
    start = end - timedelta(days=plan.log_days)
    _ensure_log_partitions(conns[0], start, end)
    span = plan.log_days * 86400
    step = span / lookups_expected
    elapsed, rows, lookups = 0.0, 0, 0
    lookup_conn, entry_conn = conns
    with (
        lookup_conn.cursor().copy(copy_sql("registry_lookup", LOOKUP_COLUMNS)) as lookup_copy,
        entry_conn.cursor().copy(copy_sql("registry_lookuplogentry", ENTRY_COLUMNS)) as entry_copy,
    ):
        lookup_copy.set_types(list(LOOKUP_TYPES))
        entry_copy.set_types(list(ENTRY_TYPES))
        while rows < plan.log_rows:
            elapsed = min(elapsed + rnd.expovariate(1 / step), span - 1)
            moment = start + timedelta(seconds=elapsed)
            member = member_ids[rnd.choices(members, cum_weights=cum)[0]]
            lookup_id = uuid.UUID(int=rnd.getrandbits(128))
            if rnd.random() < book_share:
                purpose, matches = "credit_review", 0
                size = min(BOOK_CHECK_SIZE, plan.log_rows - rows)
                for _ in range(size):
                    offset = rnd.randrange(applicants) * 32
                    kind = "phone" if rnd.random() < 0.6 else "cn_resident_id"
                    entry_copy.write_row(
                        (
                            lookup_id,
                            member,
                            kind,
                            digests[kind][offset : offset + 32],
                            version,
                            moment,
                        )
                    )
            else:
                purpose = rnd.choices(PURPOSES, weights=PURPOSE_WEIGHTS)[0]
                person = int(applicants * rnd.random() ** 2)  # repeat applicants: power law
                offset = person * 32
                size = 0
                for kind, odds in zip(KINDS, APPLICANT_KIND_ODDS, strict=True):
                    if size == 0 or rnd.random() < odds:
                        entry_copy.write_row(
                            (
                                lookup_id,
                                member,
                                kind,
                                digests[kind][offset : offset + 32],
                                version,
                                moment,
                            )
                        )
                        size += 1
                matches = 1 if person < in_registry else 0
            lookup_copy.write_row(
                (lookup_id, member, None, purpose, f"CONSENT-{lookups}", size, matches, moment)
            )
            rows += size
            lookups += 1
    return {
        "lookups": lookups,
        "log_rows": rows,
        "log_start": start.isoformat(),
        "log_end": end.isoformat(),
    }


def _ensure_log_partitions(conn, start: datetime, end: datetime) -> None:
    """A partition for every month of the log (and the next one), if the tables are
    partitioned; committed before the COPY starts."""

    from bench.partitions import (
        LOG_TABLE,
        LOOKUP_TABLE,
        add_months,
        ensure_month_partitions,
        months_between,
    )

    months = months_between(start, add_months(end.date(), 1))
    for table in (LOOKUP_TABLE, LOG_TABLE):
        ensure_month_partitions(conn, table, months)
    conn.commit()


def _load_sightings(conn, log_end: str) -> int:
    conn.execute("SET work_mem = '512MB'")
    cur = conn.execute(
        """INSERT INTO registry_sighting (kind, digest, member_id, pepper_version, last_seen_at)
           SELECT kind, digest, member_id, max(pepper_version), max(created_at)
           FROM registry_lookuplogentry
           WHERE created_at > %s::timestamptz - make_interval(days => %s)
           GROUP BY digest, kind, member_id""",
        [log_end, VELOCITY_DAYS],
    )
    return cur.rowcount


# --- query sets ------------------------------------------------------------------------------


def query_identifiers(plan: SeedPlan, count: int, salt: str) -> list[list[str]]:
    """`count` identifiers as a lender's book would look: 5% in the registry, 60% applicants
    the registry has seen (so velocity has something to count), 35% never seen."""
    rnd = random.Random(f"{plan.seed}:queries:{salt}")
    key = token_key()
    out = []
    for _ in range(count):
        draw = rnd.random()
        if draw < 0.05:
            person, kind = rnd.randrange(plan.registry_persons), "phone"
        elif draw < 0.65:
            person = plan.first_applicant + int(plan.applicant_persons * rnd.random() ** 2)
            kind = "phone" if rnd.random() < 0.6 else "cn_resident_id"
        else:
            person = plan.fresh_person_base + rnd.randrange(10**9)
            kind = rnd.choice(KINDS)
        out.append([kind, bench_token(key, person, kind)])
    return out


def write_queries(plan: SeedPlan, database: str, batch_count: int, single_count: int) -> Path:
    path = side_dir(database) / "queries.json"
    path.write_text(
        json.dumps(
            {
                "plan": asdict(plan),
                "batch": query_identifiers(plan, batch_count, "batch"),
                "single": query_identifiers(plan, single_count, "single"),
            }
        )
    )
    return path


# --- disk -------------------------------------------------------------------------------------

# Bytes on disk per row, table and indexes together, measured on a seeded 1M/10M registry
# (PostgreSQL 15, after VACUUM; 3.4 GB in all): the estimate scales them by the plan.
BYTES_PER_LOG_ROW = 200
BYTES_PER_LOOKUP = 185
BYTES_PER_SIGHTING = 215
BYTES_PER_IDENTIFIER = 405  # the identifier, its share of a case, disputes
LOG_ROWS_PER_LOOKUP = 3.68
SIGHTINGS_PER_WINDOW_ROW = 0.91


def disk_estimate(plan: SeedPlan) -> dict:
    """What seeding `plan` needs on the database's disk, in bytes: the data it keeps, and the
    peak while loading (an index build's sort files, WAL between checkpoints)."""
    window_rows = plan.log_rows * min(1.0, VELOCITY_DAYS / plan.log_days)
    kept = (
        plan.log_rows * BYTES_PER_LOG_ROW
        + plan.log_rows / LOG_ROWS_PER_LOOKUP * BYTES_PER_LOOKUP
        + window_rows * SIGHTINGS_PER_WINDOW_ROW * BYTES_PER_SIGHTING
        + plan.identifiers * BYTES_PER_IDENTIFIER
    )
    # The largest index build (the log's digest index) sorts about its own size on disk; the
    # benchmark's month blocks (retention, drop) add one month of log at a time.
    peak = kept + plan.log_rows * 60 + plan.log_rows * 30 / plan.log_days * BYTES_PER_LOG_ROW
    return {"kept": int(kept), "peak": int(peak + 2 * 1024**3)}


def free_disk(conn) -> int | None:
    """Free bytes where the database keeps its files (None if this user cannot see it)."""
    import shutil

    try:
        directory = conn.execute("SHOW data_directory").fetchone()[0]
        return shutil.disk_usage(directory).free
    except Exception:  # noqa: BLE001 - not a superuser, or another machine: unknown
        return None


def check_disk(conn, plan: SeedPlan, log=print) -> None:
    need, free = disk_estimate(plan), free_disk(conn)
    gib = 1024**3
    log(
        f"seed: needs about {need['kept'] / gib:.1f} GiB on the database's disk "
        f"({need['peak'] / gib:.1f} GiB at the peak of loading); "
        + (f"{free / gib:.1f} GiB free" if free is not None else "free space unknown")
    )
    if free is not None and free < need["peak"]:
        raise SystemExit(
            f"Not enough disk for this seed: {free / gib:.1f} GiB free, about "
            f"{need['peak'] / gib:.1f} GiB needed while loading."
        )


# --- entry points ----------------------------------------------------------------------------


def marker_value(plan: SeedPlan) -> dict:
    from django.conf import settings

    def fingerprint(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()[:16]

    return {
        "format": SEED_FORMAT,
        **asdict(plan),
        "pepper": fingerprint(settings.REGISTRY_PEPPER),
        "token_key": fingerprint(os.environ["BENCH_TOKEN_KEY"]),
    }


def seeded(plan: SeedPlan) -> dict | None:
    """The seed marker if the database holds exactly this plan, else None."""
    from registry.models import RegistryState

    row = RegistryState.objects.filter(key="bench.seed").first()
    if row is None or {
        k: v for k, v in row.value.items() if k in marker_value(plan)
    } != marker_value(plan):
        return None
    return row.value


def _create_members(conn, plan: SeedPlan) -> list[int]:
    conn.execute(
        "DELETE FROM registry_memberlimit WHERE member_id IN "
        "(SELECT id FROM registry_member WHERE code LIKE 'BENCH\\_%%')"
    )
    ids = []
    for n in range(1, plan.members + 1):
        row = conn.execute(
            """INSERT INTO registry_member
                   (code, name, status, contact_email, suspension_reason, created_at)
               VALUES (%s, %s, 'active', %s, '', now()) RETURNING id""",
            [f"BENCH_{n:02d}", f"Bench lender {n:02d}", f"risk@bench-{n:02d}.example"],
        ).fetchone()
        ids.append(row[0])
    # Officers raise the limits of big lenders; the limiter still counts every call.
    for member_id in ids:
        for scope in ("evaluate", "lookup", "submit", "dispute"):
            conn.execute(
                "INSERT INTO registry_memberlimit (member_id, scope, per_minute, per_day) "
                "VALUES (%s, %s, 1000000000, 2000000000)",
                [member_id, scope],
            )
    return ids


def seed(plan: SeedPlan, *, log=print) -> dict:
    """Wipe the bench database's registry data and load `plan`. Returns what was loaded."""
    import psycopg
    from django.conf import settings
    from django.db import connection

    from registry.models import RegistryState

    database = settings.DATABASES["default"]["NAME"]
    url = os.environ["DATABASE_URL"]
    started = time.monotonic()
    RegistryState.objects.filter(key="bench.seed").delete()
    connection.close()
    conns = [psycopg.connect(url) for _ in range(2)]
    try:
        main = conns[0]
        schema = _saved_schema(main, database)
        main.execute(
            "TRUNCATE registry_sighting, registry_lookuplogentry, registry_lookup, "
            "registry_dispute, registry_ringcase, registry_ring, registry_caseidentifier, "
            "registry_case, "
            "registry_idempotencykey, registry_memberlimit, registry_apikey, "
            "registry_member RESTART IDENTITY CASCADE"
        )
        _drop_schema(main, schema)
        member_ids = _create_members(main, plan)
        main.commit()
        check_disk(main, plan, log)  # after the TRUNCATE: a reseed frees the old data first
        log(f"seed: {plan.identifiers:,} identifiers, {plan.log_rows:,} log rows")
        with get_context("fork").Pool(max(1, min(2, os.cpu_count() or 1))) as pool:
            counts = _load_cases(conns, plan, member_ids, pool)
            for conn in conns:
                conn.commit()
            log(f"seed: cases loaded in {time.monotonic() - started:.0f} s: {counts}")
            counts |= _load_log(conns, plan, member_ids, pool)
            for conn in conns:
                conn.commit()
        log(f"seed: lookup log loaded in {time.monotonic() - started:.0f} s")
        counts["sightings"] = _load_sightings(main, counts["log_end"])
        main.commit()
        log(f"seed: sightings rolled up in {time.monotonic() - started:.0f} s")
        main.autocommit = True
        _rebuild_schema(main, schema, database)
        log(f"seed: indexes rebuilt in {time.monotonic() - started:.0f} s")
        for table in (*BULK_TABLES, "registry_member", "registry_memberlimit"):
            main.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        for conn in conns:
            conn.close()
    counts["rings"] = _build_rings(log, started)
    counts["seconds"] = round(time.monotonic() - started, 1)
    marker = {**marker_value(plan), "loaded": counts}
    RegistryState.objects.update_or_create(key="bench.seed", defaults={"value": marker})
    log(f"seed: done in {counts['seconds']} s")
    return marker


def ensure_seeded(plan: SeedPlan, *, force: bool = False, log=print) -> dict:
    """Reuse the seeded data when it matches `plan`; seed otherwise."""
    from django.conf import settings

    from registry.models import RegistryState

    database = settings.DATABASES["default"]["NAME"]
    marker = None if force else seeded(plan)
    other = RegistryState.objects.filter(key="bench.seed").first()
    if marker is None and other is not None and other.value.get("format") != SEED_FORMAT:
        log(
            f"seed: {database} was seeded by an older benchmark (format "
            f"{other.value.get('format')}, now {SEED_FORMAT}): seeding again"
        )
        force = True
    if marker is None and other is not None and not force:
        raise SystemExit(
            f"Database {database} holds a benchmark seeded with other sizes or secrets "
            f"({other.value.get('identifiers')} identifiers, {other.value.get('log_rows')} log "
            "rows). Pass --reseed to replace it, or use another database."
        )
    if marker is None:
        marker = seed(plan, log=log)
    else:
        loaded = marker["loaded"]
        log(
            f"seed: reusing {loaded['identifiers']:,} identifiers / {loaded['log_rows']:,} "
            f"log rows seeded earlier"
        )
    queries = side_dir(database) / "queries.json"
    if force or not queries.exists() or json.loads(queries.read_text())["plan"] != asdict(plan):
        write_queries(plan, database, batch_count=20_000, single_count=20_000)
    return marker
