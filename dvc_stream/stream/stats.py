"""Counters for the end-of-run summary and ``--stats``."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, fields


@dataclass
class Stats:
    demand_files: int = 0
    demand_bytes: int = 0
    prefetched_files: int = 0
    prefetched_bytes: int = 0
    cached_files: int = 0  # opened absent, but the object was already in the cache
    cached_bytes: int = 0
    failed_files: int = 0
    wait_seconds: float = 0.0  # time programs spent blocked on fetches
    # from the first download's end to the last one's: the objects' arrival rate
    _first_fetch: float | None = field(default=None, repr=False, compare=False)
    _last_fetch: float | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def fetched(self) -> None:
        """Note that a download has just ended."""
        now = time.monotonic()
        with self._lock:
            if self._first_fetch is None:
                self._first_fetch = now
            self._last_fetch = now

    def as_dict(self) -> dict:
        with self._lock:
            data = {f.name: getattr(self, f.name) for f in fields(self) if f.compare}
            first, last = self._first_fetch, self._last_fetch
        data["wait_seconds"] = round(data["wait_seconds"], 3)
        data["fetch_seconds"] = round(last - first, 3) if first is not None else 0.0
        return data

    def write_json(self, path: str, **extra) -> None:
        with open(path, "w", encoding="utf-8") as fobj:
            json.dump({**self.as_dict(), **extra}, fobj, indent=2)
            fobj.write("\n")

    def summary(self) -> str:
        from dvc.utils.humanize import naturalsize

        data = self.as_dict()
        # NOTE: a program that catches the OSError (a loader skipping unreadable samples) shows
        # the failures nowhere else.
        failed = f", {data['failed_files']} failed" if data["failed_files"] else ""
        return (
            f"dvc stream: fetched {data['demand_files']} files "
            f"({naturalsize(data['demand_bytes'])}) on demand, "
            f"prefetched {data['prefetched_files']} ({naturalsize(data['prefetched_bytes'])}), "
            f"served {data['cached_files']} ({naturalsize(data['cached_bytes'])}) from cache"
            f"{failed}; waited {data['wait_seconds']:.2f}s on fetches"
        )
