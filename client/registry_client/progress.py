"""A one-line progress bar for the CLI's bulk commands: done/total, rate and time left.

Shown only on a terminal (the CLI passes None otherwise, or with ``--quiet``), rewritten in
place with a carriage return, and never containing a value from the input file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

__all__ = ["Progress", "count_data_rows"]

_BAR = 24


class Progress:
    def __init__(
        self,
        stream: IO[str],
        total: int | None,
        unit: str = "rows",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total = total if total and total > 0 else None
        self.unit = unit
        self._clock = clock
        self._started = clock()
        self._shown = False

    def update(self, done: int, detail: str = "") -> None:
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = done / elapsed
        parts = []
        if self.total is not None:
            share = min(done / self.total, 1.0)
            filled = round(share * _BAR)
            parts.append(f"[{'#' * filled}{'.' * (_BAR - filled)}] {share:4.0%}")
            parts.append(f"{done:,}/{self.total:,} {self.unit}")
        else:
            parts.append(f"{done:,} {self.unit}")
        parts.append(f"{rate:,.0f} {self.unit}/s")
        if self.total is not None and rate > 0:
            parts.append(f"ETA {_duration(max(self.total - done, 0) / rate)}")
        if detail:
            parts.append(detail)
        self.stream.write("\r" + "  ".join(parts) + "\x1b[K")  # clear the rest of the line
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def count_data_rows(path: str, encoding: str) -> int | None:
    """Lines after the header of a file (an estimate when fields hold line breaks); None for
    standard input or an unreadable file: then the bar shows counts without an ETA."""
    if path == "-":
        return None
    try:
        with open(path, encoding=encoding, errors="replace") as stream:
            return max(sum(1 for _ in stream) - 1, 0)
    except (OSError, LookupError):
        return None
