"""The jobs behind ``registry-client watch`` and ``registry-client alerts``.

``watch``: each CSV row is one loan (one borrower): its identifier columns are tokenised here
and watched under the row's label (``--label-column``, say the loan number) and consent
reference. A watch call carries one label and one consent reference, so consecutive rows that
share both go in one call (up to 1000 identifiers) and the others one call per row.
Watching again only extends a watch, so re-running a file is safe.

``alerts``: pages through ``GET /api/v1/alerts`` from the cursor kept in a small state file,
prints one line per alert (with the member's own label, never a token) and saves the cursor
after each line, so a restarted follower resumes exactly where it stopped.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .bulk import (
    ColumnSpec,
    FatalJobError,
    TokenCache,
    _registry_failure,
    _screen_column_values,
    cell,
)
from .client import WATCH_BATCH, Client
from .errors import AuthenticationError, PermissionDeniedError, RegistryError, ValidationError
from .pii import looks_like_raw_identifier

__all__ = ["AlertFollower", "WatchJob", "WatchSummary", "alert_line"]


@dataclass
class WatchSummary:
    rows: int = 0
    invalid_rows: int = 0
    watched_identifiers: int = 0
    failed_rows: int = 0


@dataclass
class _WatchRow:
    number: int
    columns: list[tuple[ColumnSpec, str | None, str | None]]
    label: str
    consent: str | None
    problem: str | None = None

    @property
    def wanted(self) -> list[tuple[str, str]]:
        return [(spec.kind, canonical) for spec, canonical, _ in self.columns if canonical]


@dataclass
class WatchJob:
    client: Client
    cache: TokenCache
    purpose: str
    columns: list[ColumnSpec]
    report: IO[str]
    label_index: int | None = None
    consent_index: int | None = None
    consent_reference: str | None = None
    expires_on: str | None = None
    summary: WatchSummary = field(default_factory=WatchSummary)
    _pending: list[_WatchRow] = field(default_factory=list)

    def run(self, rows: Iterable[tuple[int, list[str]]]) -> WatchSummary:
        for number, row in rows:
            self._add(self._prepare(number, row))
        self._flush()
        return self.summary

    def _prepare(self, number: int, row: list[str]) -> _WatchRow:
        consent = self.consent_reference
        if self.consent_index is not None:
            consent = cell(row, self.consent_index) or None
        label = cell(row, self.label_index) if self.label_index is not None else ""
        prepared = _WatchRow(number, _screen_column_values(row, self.columns), label, consent)
        errors = [code for _, _, code in prepared.columns if code]
        if not consent:
            prepared.problem = "no_consent_reference"
        elif looks_like_raw_identifier(consent) or looks_like_raw_identifier(label):
            prepared.problem = "raw_pii_in_label_or_consent"
        elif errors:
            prepared.problem = errors[0]
        elif not prepared.wanted:
            prepared.problem = "no_identifiers"
        return prepared

    def _add(self, row: _WatchRow) -> None:
        self.summary.rows += 1
        if row.problem is not None:
            self.summary.invalid_rows += 1
            print(f"row {row.number}: {row.problem}", file=self.report)
            return
        same_call = bool(self._pending) and (
            (self._pending[-1].label, self._pending[-1].consent) == (row.label, row.consent)
        )
        size = sum(len(pending.wanted) for pending in self._pending) + len(row.wanted)
        if not same_call or size > WATCH_BATCH:
            self._flush()
        self._pending.append(row)

    def _flush(self) -> None:
        rows, self._pending = self._pending, []
        if not rows:
            return
        wanted = [item for row in rows for item in row.wanted]
        try:
            tokens = self.cache.tokens_for(wanted)
            watches = self.client.watch(
                [{"kind": kind, "token": tokens[(kind, value)]} for kind, value in wanted],
                self.purpose,
                rows[0].consent or "",
                label=rows[0].label,
                expires_on=self.expires_on,
            )
        except (AuthenticationError, PermissionDeniedError) as error:
            raise _registry_failure(error) from None
        except ValidationError as error:  # this call's rows only; the file goes on
            for row in rows:
                print(f"row {row.number}: {error.code}", file=self.report)
            self.summary.failed_rows += len(rows)
            return
        except RegistryError as error:
            raise _registry_failure(error) from None
        self.summary.watched_identifiers += len(watches)


def alert_line(alert: dict[str, Any]) -> str:
    """One printable line per alert: time, type, the member's own label, the identifier's
    kind and fingerprint, and what happened (never a token)."""
    watch = alert.get("watch") or {}
    parts = [
        str(alert.get("created_at", "")),
        str(alert.get("type", "")),
        f"label={watch.get('label', '')}",
        f"kind={watch.get('kind', '')}",
        f"fingerprint={watch.get('fingerprint', '')}",
    ]
    case = alert.get("case")
    if isinstance(case, dict):
        parts += [
            f"case={case.get('case_id', '')}",
            f"category={case.get('category', '')}",
            f"status={case.get('status', '')}",
        ]
    velocity = alert.get("velocity")
    if isinstance(velocity, dict):
        parts.append(f"members_24h={velocity.get('24h', '')}")
    parts.append(f"alert={alert.get('id', '')}")
    return " ".join(parts)


@dataclass
class AlertFollower:
    """Print alerts from the saved cursor on; `follow` keeps polling every `interval` s."""

    client: Client
    state_file: Path
    output: IO[str]
    interval: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    printed: int = 0

    def cursor(self) -> str | None:
        try:
            text = self.state_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError:
            raise FatalJobError(f"cannot read {self.state_file}", usage=True) from None
        return text or None

    def save(self, cursor: str) -> None:
        """Atomically: a follower killed mid-write keeps the previous cursor, not half of one."""
        directory = self.state_file.parent
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".alerts-cursor-")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(cursor + "\n")
        os.replace(temporary, self.state_file)

    def drain(self) -> None:
        """Print every alert after the cursor, saving the cursor after each one."""
        after = self.cursor()
        while True:
            try:
                page = self.client.alerts(after)
            except RegistryError as error:
                raise _registry_failure(error) from None
            for alert in page["results"]:
                print(alert_line(alert), file=self.output, flush=True)
                self.printed += 1
                after = str(alert.get("cursor") or page.get("next_cursor") or "")
                if after:
                    self.save(after)
            if not page.get("has_more"):
                return

    def follow(self, rounds: int | None = None) -> None:
        done = 0
        while rounds is None or done < rounds:
            self.drain()
            done += 1
            if rounds is None or done < rounds:
                self.sleep(self.interval)
