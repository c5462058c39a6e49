"""Streaming CSV jobs behind the ``registry-client lookup`` and ``submit`` commands.

Both jobs read the input row by row, work in chunks (at most 1000 identifiers per lookup chunk,
500 cases per submission chunk) and write or send each chunk before reading on, so memory stays
flat whatever the file size. Raw values and tokens live only in this process: the output file
and the messages name rows by number and problems by error code, never by value.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from .canonical import CanonicalizationError, canonicalize
from .client import CASE_BATCH, LOOKUP_BATCH, Client
from .errors import AuthenticationError, PermissionDeniedError, RegistryError
from .pii import looks_like_raw_identifier
from .progress import Progress

__all__ = [
    "CATEGORIES",
    "ColumnSpec",
    "FatalJobError",
    "LookupJob",
    "LookupSummary",
    "ResultWriter",
    "SubmitJob",
    "SubmitSummary",
    "TokenCache",
    "batch_idempotency_key",
    "case_idempotency_key",
    "read_rows",
    "resolve_columns",
]

CATEGORIES = (
    "identity_theft",
    "forged_documents",
    "synthetic_identity",
    "first_party_fraud",
    "account_takeover",
    "money_mule",
    "loan_intermediary_fraud",
)
VELOCITY_WINDOWS = ("1h", "24h", "7d", "30d", "90d")
MAX_IDENTIFIERS_PER_CASE = 20
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CHINA_TZ = dt.timezone(dt.timedelta(hours=8))


class FatalJobError(Exception):
    """The job cannot go on (bad key or scope, registry unreachable after retries)."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class ColumnSpec:
    """One identifier column: its kind, its CSV header and its position in the header row."""

    kind: str
    header: str
    index: int


class TokenCache:
    """Bounded, thread-safe LRU map ``(kind, canonical) -> token`` so that repeated values cost
    one evaluation.

    Bounded so that a million-row file (or a gateway running for months) keeps a flat memory
    profile; in memory only. Entries are keyed by a keyed BLAKE2b digest of the pair under a
    random per-process key, so the cache holds no raw value. With ``ttl`` (seconds) an entry is
    used only that long after it was made: tokens change when the consortium's key rotates.
    Misses are evaluated outside the lock, so concurrent callers evaluate in parallel (two
    callers missing the same value may both evaluate it; both get the same token).
    """

    def __init__(
        self,
        client: Client,
        max_size: int = 50_000,
        *,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._max_size = max(0, max_size)
        self._ttl = ttl if ttl is None or ttl > 0 else None
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._tokens: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._tokens)

    def tokens_for(self, items: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Tokens for the given pairs; only the pairs not cached are sent for evaluation."""
        wanted = list(dict.fromkeys(items))
        found: dict[tuple[str, str], str] = {}
        missing: list[tuple[str, str]] = []
        now = self._clock()
        with self._lock:
            for item in wanted:
                token = self._get(self._digest(item), now)
                if token is None:
                    missing.append(item)
                else:
                    found[item] = token
            self.hits += len(found)
            self.misses += len(missing)
        if missing:
            tokens = self._client.tokenize_canonical(missing)
            made = self._clock()
            with self._lock:
                for item, token in zip(missing, tokens, strict=True):
                    found[item] = token
                    self._remember(self._digest(item), token, made)
        return found

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _digest(self, item: tuple[str, str]) -> bytes:
        kind, canonical = item
        data = f"{kind}\x00{canonical}".encode()
        return hashlib.blake2b(data, key=self._key, digest_size=16).digest()

    def _get(self, key: bytes, now: float) -> str | None:
        entry = self._tokens.get(key)
        if entry is None:
            return None
        token, made = entry
        if self._ttl is not None and now - made >= self._ttl:
            del self._tokens[key]
            return None
        self._tokens.move_to_end(key)
        return token

    def _remember(self, key: bytes, token: str, made: float) -> None:
        if self._max_size == 0:
            return
        self._tokens[key] = (token, made)
        self._tokens.move_to_end(key)
        while len(self._tokens) > self._max_size:
            self._tokens.popitem(last=False)


# -------------------------------------------------------------------------------------------
# Reading rows
# -------------------------------------------------------------------------------------------


def resolve_columns(
    header: Sequence[str], requested: Sequence[tuple[str, str]], kinds: Sequence[str]
) -> list[ColumnSpec]:
    """Map ``kind=header`` pairs (or, without any, headers named like kinds) to positions."""
    positions = {name: index for index, name in reversed(list(enumerate(header)))}
    pairs = list(requested) or [(name, name) for name in header if name in kinds]
    if not pairs:
        raise FatalJobError("no identifier columns: use --column KIND=HEADER", usage=True)
    specs: list[ColumnSpec] = []
    for kind, name in pairs:
        if name not in positions:
            raise FatalJobError(f"column not found in the header row: {name}", usage=True)
        if any(spec.header == name for spec in specs):
            raise FatalJobError(f"column given twice: {name}", usage=True)
        specs.append(ColumnSpec(kind, name, positions[name]))
    return specs


def read_rows(stream: IO[str], delimiter: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Header row and an iterator of ``(row number, cells)``; row 1 is the first data row."""
    reader = csv.reader(stream, delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise FatalJobError("the input file is empty", usage=True) from None
    return header, ((number, row) for number, row in enumerate(reader, start=1))


def cell(row: Sequence[str], index: int) -> str:
    return row[index].strip() if index < len(row) else ""


def _screen_column_values(
    row: Sequence[str], columns: Sequence[ColumnSpec]
) -> list[tuple[ColumnSpec, str | None, str | None]]:
    """For each column: (spec, canonical or None, error code or None); empty cells give
    (spec, None, None)."""
    checked: list[tuple[ColumnSpec, str | None, str | None]] = []
    for spec in columns:
        value = cell(row, spec.index)
        if not value:
            checked.append((spec, None, None))
            continue
        try:
            checked.append((spec, canonicalize(spec.kind, value), None))
        except CanonicalizationError as error:
            checked.append((spec, None, error.code))
    return checked


def _registry_failure(error: RegistryError) -> FatalJobError:
    """Stop on errors no later chunk can recover from; the caller reports the rest per row."""
    usage = isinstance(error, (AuthenticationError, PermissionDeniedError))
    return FatalJobError(f"registry refused the request: {error}", usage=usage)


# -------------------------------------------------------------------------------------------
# Lookup
# -------------------------------------------------------------------------------------------


@dataclass
class LookupSummary:
    rows: int = 0
    invalid_rows: int = 0
    matched_rows: int = 0
    velocity_alerts: int = 0


@dataclass
class _LookupRow:
    number: int
    columns: list[tuple[ColumnSpec, str | None, str | None]]
    consent: str | None
    problem: str | None = None  # row-level refusal (no identifiers, raw PII in consent)

    @property
    def identifier_count(self) -> int:
        return sum(1 for _, canonical, _ in self.columns if canonical is not None)


@dataclass
class LookupJob:
    """Stream a CSV of applicants through tokenisation and lookup, writing one result per row."""

    client: Client
    cache: TokenCache
    purpose: str
    columns: list[ColumnSpec]
    writer: ResultWriter
    report: IO[str]
    consent_index: int | None = None
    consent_reference: str | None = None
    velocity_threshold: int = 2
    progress: Progress | None = None
    summary: LookupSummary = field(default_factory=LookupSummary)
    _pending: list[_LookupRow] = field(default_factory=list)
    _pending_identifiers: int = 0

    def run(self, rows: Iterable[tuple[int, list[str]]]) -> LookupSummary:
        for number, row in rows:
            self._add(self._prepare(number, row))
        self._flush()
        return self.summary

    def _prepare(self, number: int, row: list[str]) -> _LookupRow:
        consent = self.consent_reference
        if self.consent_index is not None:
            consent = cell(row, self.consent_index) or None
        prepared = _LookupRow(number, _screen_column_values(row, self.columns), consent)
        if consent is not None and looks_like_raw_identifier(consent):
            prepared.problem = "raw_pii_in_consent_reference"
        elif prepared.identifier_count == 0 and not any(err for _, _, err in prepared.columns):
            prepared.problem = "no_identifiers"
        return prepared

    def _add(self, row: _LookupRow) -> None:
        # A lookup call carries one consent reference, so a change of consent starts a chunk.
        # Rows without identifiers count too, so that a run of empty rows stays bounded.
        consent_changes = bool(self._pending) and self._pending[-1].consent != row.consent
        too_many = self._pending_identifiers + row.identifier_count > LOOKUP_BATCH
        if consent_changes or too_many or len(self._pending) >= LOOKUP_BATCH:
            self._flush()
        self._pending.append(row)
        if row.problem is None:
            self._pending_identifiers += row.identifier_count

    def _flush(self) -> None:
        rows, self._pending, self._pending_identifiers = self._pending, [], 0
        if not rows:
            return
        results = self._look_up(rows)
        for row in rows:
            self._write(row, results)
        self.writer.flush()
        self._show_progress()

    def _look_up(self, rows: list[_LookupRow]) -> dict[tuple[str, str], dict[str, Any]]:
        sendable = [row for row in rows if row.problem is None]
        wanted = [
            (spec.kind, canonical)
            for row in sendable
            for spec, canonical, _ in row.columns
            if canonical is not None
        ]
        if not wanted:
            return {}
        try:
            tokens = self.cache.tokens_for(wanted)
            pairs = list(tokens)
            identifiers = [{"kind": kind, "token": tokens[(kind, value)]} for kind, value in pairs]
            # _add keeps one consent reference per chunk.
            answer = self.client.lookup(identifiers, self.purpose, sendable[0].consent)
        except RegistryError as error:
            raise _registry_failure(error) from None
        return dict(zip(pairs, answer["results"], strict=True))

    def _write(self, row: _LookupRow, results: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.summary.rows += 1
        per_column: list[tuple[ColumnSpec, str, dict[str, Any] | None]] = []
        for spec, canonical, error in row.columns:
            if row.problem is not None:
                per_column.append((spec, "skipped" if canonical else (error or "empty"), None))
            elif canonical is None:
                per_column.append((spec, error or "empty", None))
            else:
                per_column.append((spec, "ok", results.get((spec.kind, canonical))))
        invalid = row.problem is not None or any(error for _, _, error in row.columns)
        if invalid:
            self.summary.invalid_rows += 1
            self._report_invalid(row)
        outcome = _row_outcome(per_column)
        if outcome["matched"]:
            self.summary.matched_rows += 1
        if outcome["max_velocity_24h"] >= self.velocity_threshold:
            self.summary.velocity_alerts += 1
        status = "invalid" if invalid else "ok"
        self.writer.write(row.number, status, outcome, per_column)

    def _report_invalid(self, row: _LookupRow) -> None:
        reasons = [row.problem] if row.problem else []
        reasons += [f"{spec.header}: {error}" for spec, _, error in row.columns if error]
        self.report.write(f"row {row.number}: {'; '.join(reasons)}\n")

    def _show_progress(self) -> None:
        if self.progress is not None:
            self.progress.update(
                self.summary.rows,
                f"{self.summary.matched_rows:,} matched, {self.summary.invalid_rows:,} invalid",
            )


def _row_outcome(per_column: Sequence[tuple[ColumnSpec, str, dict[str, Any] | None]]) -> dict:
    matched = any(bool(result and result.get("matched")) for _, _, result in per_column)
    velocities = [_velocity(result, "24h") for _, _, result in per_column if result]
    return {"matched": matched, "max_velocity_24h": max(velocities, default=0)}


def _velocity(result: dict[str, Any] | None, window: str) -> int:
    velocity = (result or {}).get("velocity") or {}
    value = velocity.get(window, 0) if isinstance(velocity, dict) else 0
    return value if isinstance(value, int) else 0


def _column_result(status: str, result: dict[str, Any] | None) -> dict[str, Any]:
    """Fingerprint-free summary of one identifier's result: no token, no case ids."""
    cases = [case for case in (result or {}).get("cases") or [] if isinstance(case, dict)]
    return {
        "status": status,
        "matched": bool(result and result.get("matched")),
        "cases": len(cases),
        "disputed": sum(1 for case in cases if case.get("status") == "disputed"),
        "categories": sorted({str(case.get("category")) for case in cases if case.get("category")}),
        "velocity": {window: _velocity(result, window) for window in VELOCITY_WINDOWS},
    }


_CSV_VELOCITY_WINDOWS = ("24h", "7d", "30d")
_CSV_COLUMN_FIELDS = (
    "status",
    "matched",
    "cases",
    "disputed",
    "categories",
    *(f"velocity_{window}" for window in _CSV_VELOCITY_WINDOWS),
)


class ResultWriter:
    """Writes one line per input row, as CSV or JSON lines; never a value or a token."""

    def __init__(self, stream: IO[str], columns: Sequence[ColumnSpec], jsonl: bool) -> None:
        self._stream = stream
        self._jsonl = jsonl
        self._csv = None if jsonl else csv.writer(stream, lineterminator="\n")
        if self._csv is not None:
            header = ["row", "status", "matched", "max_velocity_24h"]
            for spec in columns:
                header += [f"{spec.header}.{name}" for name in _CSV_COLUMN_FIELDS]
            self._csv.writerow(header)

    def write(
        self,
        number: int,
        status: str,
        outcome: dict[str, Any],
        per_column: Sequence[tuple[ColumnSpec, str, dict[str, Any] | None]],
    ) -> None:
        columns = {spec.header: _column_result(state, result) for spec, state, result in per_column}
        if self._csv is None:
            line = {"row": number, "status": status, **outcome, "columns": columns}
            self._stream.write(json.dumps(line, ensure_ascii=False) + "\n")
            return
        cells: list[Any] = [number, status, _flag(outcome["matched"]), outcome["max_velocity_24h"]]
        for item in columns.values():
            velocity = item["velocity"]
            cells += [
                item["status"],
                _flag(item["matched"]),
                item["cases"],
                item["disputed"],
                ";".join(item["categories"]),
                *(velocity[window] for window in _CSV_VELOCITY_WINDOWS),
            ]
        self._csv.writerow(cells)

    def flush(self) -> None:
        self._stream.flush()


def _flag(value: bool) -> str:
    return "true" if value else "false"


# -------------------------------------------------------------------------------------------
# Submit
# -------------------------------------------------------------------------------------------


@dataclass
class SubmitSummary:
    rows: int = 0
    invalid_rows: int = 0
    created: int = 0
    already_submitted: int = 0
    failed: int = 0


@dataclass
class _CaseRow:
    number: int
    reference: str
    category: str
    confirmed_at: str
    identifiers: list[tuple[str, str]]  # (kind, canonical), de-duplicated, in column order


def case_idempotency_key(case: dict[str, Any]) -> str:
    """Deterministic key of one case body: SHA-256 of its canonical JSON.

    The body holds the reference, category, date and *tokens*, never raw values: a hash of raw
    identifiers would be as easy to reverse as an unkeyed hash of a phone number.
    """
    encoded = json.dumps(case, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def batch_idempotency_key(case_keys: Sequence[str]) -> str:
    """Key of a batch: determined by its cases, so a re-run of the same file reuses it."""
    digest = hashlib.sha256("\n".join(case_keys).encode("ascii")).hexdigest()
    return f"rc1-batch-{digest}"


@dataclass
class SubmitJob:
    """Stream a CSV of confirmed cases to ``/api/v1/cases/batch``, 500 at a time."""

    client: Client
    cache: TokenCache
    columns: list[ColumnSpec]
    reference_index: int
    category_index: int
    confirmed_at_index: int
    report: IO[str]
    progress: Progress | None = None
    summary: SubmitSummary = field(default_factory=SubmitSummary)
    _pending: list[_CaseRow] = field(default_factory=list)
    _seen_references: set[bytes] = field(default_factory=set)

    def run(self, rows: Iterable[tuple[int, list[str]]]) -> SubmitSummary:
        for number, row in rows:
            self.summary.rows += 1
            case = self._prepare(number, row)
            if case is not None:
                self._pending.append(case)
                if len(self._pending) >= CASE_BATCH:
                    self._flush()
        self._flush()
        return self.summary

    def _prepare(self, number: int, row: list[str]) -> _CaseRow | None:
        reference = cell(row, self.reference_index)
        category = cell(row, self.category_index)
        confirmed_at = cell(row, self.confirmed_at_index)
        checked = _screen_column_values(row, self.columns)
        problems = [f"{spec.header}: {error}" for spec, _, error in checked if error]
        problems[:0] = _case_field_problems(reference, category, confirmed_at)
        identifiers = list(
            dict.fromkeys((spec.kind, value) for spec, value, _ in checked if value is not None)
        )
        if not problems and not identifiers:
            problems.append("no_identifiers")
        if len(identifiers) > MAX_IDENTIFIERS_PER_CASE:
            problems.append("too_many_identifiers")
        if not problems and not self._first_use_of(reference):
            problems.append("duplicate_reference_in_file")
        if problems:
            self._invalid(number, problems)
            return None
        return _CaseRow(number, reference, category, confirmed_at, identifiers)

    def _first_use_of(self, reference: str) -> bool:
        # 16-byte digests instead of the references themselves keep the set small.
        digest = hashlib.blake2b(reference.encode("utf-8"), digest_size=16).digest()
        if digest in self._seen_references:
            return False
        self._seen_references.add(digest)
        return True

    def _invalid(self, number: int, problems: list[str]) -> None:
        self.summary.invalid_rows += 1
        self.report.write(f"row {number}: {'; '.join(problems)}\n")

    def _flush(self) -> None:
        rows, self._pending = self._pending, []
        if not rows:
            return
        try:
            tokens = self.cache.tokens_for(item for row in rows for item in row.identifiers)
            bodies = [_case_body(row, tokens) for row in rows]
            key = batch_idempotency_key([case_idempotency_key(body) for body in bodies])
            results = self.client.submit_cases(bodies, idempotency_key=key)
        except RegistryError as error:
            raise _registry_failure(error) from None
        for row, result in zip(rows, results, strict=True):
            self._count(row, result)
        self._show_progress()

    def _count(self, row: _CaseRow, result: dict[str, Any]) -> None:
        if result.get("status") == "created":
            if result.get("replayed"):
                self.summary.already_submitted += 1  # same batch sent by an earlier run
            else:
                self.summary.created += 1
            return
        problem = result.get("error") if isinstance(result.get("error"), dict) else {}
        code = str(problem.get("code") or "error")
        if code == "conflict":
            # The reference is already live at the registry: submitted by an earlier run.
            self.summary.already_submitted += 1
            return
        self.summary.failed += 1
        pointers = [
            f"{item.get('pointer')} {item.get('code')}"
            for item in problem.get("errors") or []
            if isinstance(item, dict)
        ]
        detail = f" ({', '.join(pointers)})" if pointers else ""
        self.report.write(f"row {row.number}: {code}{detail}\n")

    def _show_progress(self) -> None:
        if self.progress is not None:
            done = self.summary.created + self.summary.already_submitted + self.summary.failed
            self.progress.update(self.summary.rows, f"{done:,} cases sent")


def _case_field_problems(reference: str, category: str, confirmed_at: str) -> list[str]:
    problems: list[str] = []
    if not reference:
        problems.append("reference: missing")
    elif looks_like_raw_identifier(reference):
        problems.append("reference: raw_pii_rejected")
    if category not in CATEGORIES:
        problems.append("category: invalid_category")
    if not _is_past_date(confirmed_at):
        problems.append("confirmed_at: invalid_date")
    return problems


def _is_past_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return False
    # Judged on China time, the latest plausible local date; the registry has the last word.
    return day <= dt.datetime.now(_CHINA_TZ).date()


def _case_body(row: _CaseRow, tokens: dict[tuple[str, str], str]) -> dict[str, Any]:
    return {
        "reference": row.reference,
        "category": row.category,
        "confirmed_at": row.confirmed_at,
        "identifiers": [
            {"kind": kind, "token": tokens[(kind, value)]} for kind, value in row.identifiers
        ],
        "attestation": True,
    }
