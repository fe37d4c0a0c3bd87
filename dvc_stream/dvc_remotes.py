"""DVC's remotes, opened so that runs started at the same moment on one clone all get them.

``repo.cloud.get_remote`` (and ``get_remote_odb``, which calls it) opens DVC's data index, an
SQLite database in the site cache, and creates the remote's node in it. When several processes do
that at once on a new site cache, SQLite's deadlock detection fails some of them at once with
"database is locked", without waiting for the lock (4 processes opening a fresh index together:
12 failures in 120 opens). Several ``dvc stream`` runs on one clone start together by design, so
the open is tried again, with this thread's connection to the index closed first so that the next
try sets the index up from the start.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from dvc.data_cloud import Remote
    from dvc.repo import Repo
    from dvc_data.hashfile.db import HashFileDB

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_SECONDS = 60.0  # NOTE: as long as DVC's state database waits for its own lock
FIRST_PAUSE = 0.005
LONGEST_PAUSE = 0.5


def get_remote(repo: Repo, name: str | None, command: str) -> Remote:
    """``repo.cloud.get_remote(name, command)``, surviving another process opening it too."""
    return _retrying(repo, lambda: repo.cloud.get_remote(name, command))


def get_remote_odb(repo: Repo, name: str | None, command: str, hash_name: str) -> HashFileDB:
    """``repo.cloud.get_remote_odb``, surviving another process opening the remote too."""
    return _retrying(repo, lambda: repo.cloud.get_remote_odb(name, command, hash_name=hash_name))


def _retrying(repo: Repo, open_remote: Callable[[], T]) -> T:
    deadline = time.monotonic() + RETRY_SECONDS
    pause = FIRST_PAUSE
    while True:
        try:
            return open_remote()
        except sqlite3.OperationalError as exc:
            if "database is locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            logger.debug("DVC's data index is busy (%s), opening the remote again", exc)
        repo.data_index.close()  # NOTE: this thread's connection; the next one runs the set-up
        time.sleep(pause * random.uniform(0.5, 1.5))  # NOTE: spreads the retries apart
        pause = min(2 * pause, LONGEST_PAUSE)
