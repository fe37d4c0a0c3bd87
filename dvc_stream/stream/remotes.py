"""The remotes a run reads from: one object store per (remote, hash), with a pool sized to match.

``-r`` wins over an output's own ``remote:``, which wins over the default remote, as in
``dvc pull``. aiobotocore keeps 10 connections per client unless told otherwise; with more
downloads in flight than that, the rest would wait for a connection. The pool is a limit, not a
set of open connections, so it is raised to the largest ``jobs`` before the client is created:
the fetch workers are what bound the requests in flight.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

from dvc_stream.dvc_remotes import get_remote_odb
from dvc_stream.errors import DvcStreamError

if TYPE_CHECKING:
    from collections.abc import Callable

    from dvc.repo import Repo
    from dvc_data.hashfile.db import HashFileDB

logger = logging.getLogger(__name__)

# NOTE: enough requests in flight to keep this many objects per second arriving, given the
# round trip measured at start-up (Little's law), within these bounds. A higher target made a
# single-process S3 server (moto on 2 cores) slower, not faster: 600 small files took 4.9 s at
# -j 8 and 14.8 s at -j 64 with the 20 ms proxy. `-j` raises it for remotes that scale out.
TARGET_OBJECTS_PER_SECOND = 400
MAX_JOBS = 128
# NOTE: the round trip is the fastest of this many warm requests. One request's time includes any
# wait for a CPU: on a busy machine (a CI runner, a benchmark whose S3 server shares the cores),
# one slow answer set -j up to 128, and so many requests in flight slowed that server further.
ROUND_TRIP_PROBES = 3
# NOTE: what an OSError's errno says when the remote's host or port could not be reached at all,
# as opposed to a remote that answered with a refusal (403, 404, 500...).
UNREACHABLE_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
    }
)


class RemoteUnreachable(DvcStreamError):
    """The remote could not be reached when the run started; it is not asked again."""


def pull_jobs() -> int:
    """What ``dvc pull`` runs at once by default: dvc-objects' ``4 * cpu_count``."""
    return 4 * (os.cpu_count() or 1)


def jobs_for_latency(rtt_seconds: float) -> int:
    wanted = math.ceil(rtt_seconds * TARGET_OBJECTS_PER_SECOND)
    return max(pull_jobs(), min(MAX_JOBS, wanted))


class Remotes:
    def __init__(self, repo: Repo, override: str | None, jobs: int | None = None):
        if override:
            from dvc.fs import get_fs_config

            get_fs_config(repo.config, name=override)  # NOTE: DVC's error if it does not exist
        self.repo = repo
        self.override = override
        self.pool_size = max(jobs or 0, MAX_JOBS)
        self._odbs: dict[tuple[str | None, str], HashFileDB] = {}
        self._unreachable: dict[str, str] = {}  # remote name -> what its probe said
        self._lock = threading.Lock()

    def name_for(self, output_remote: str | None) -> str:
        name = self.override or output_remote or self.repo.config["core"].get("remote")
        return name or "default"

    def odb(self, output_remote: str | None, hash_name: str) -> HashFileDB:
        """The store of a remote; RemoteUnreachable for one that could not be reached at start:
        each download from it would wait out the connection's retries, seconds per file, only
        to fail."""
        unreachable = self._unreachable.get(self.name_for(output_remote))
        if unreachable is not None:
            raise RemoteUnreachable(unreachable)
        key = (self.override or output_remote, hash_name)
        with self._lock:
            odb = self._odbs.get(key)
            if odb is None:
                odb = get_remote_odb(self.repo, key[0], "stream", hash_name)
                size_connection_pool(odb, self.pool_size)
                self._odbs[key] = odb
        return odb

    def round_trip(self, output_remote: str | None, hash_name: str, oid: str) -> float | None:
        """The time of the fastest of a few warm metadata requests; None if the remote answered
        them with an error. A remote that cannot be reached raises RemoteUnreachable, and is
        not asked again by this run (``odb``).

        ``oid`` should exist on the remote, so that each request is a single HEAD.
        """
        odb = self.odb(output_remote, hash_name)  # DVC's own configuration errors propagate
        probe_path = odb.oid_to_path(oid)
        name = self.name_for(output_remote)
        try:
            odb.fs.exists(probe_path)  # connects
            return min(_timed(odb.fs.exists, probe_path) for _ in range(ROUND_TRIP_PROBES))
        except Exception as exc:
            if not is_unreachable(exc):
                # NOTE: a refusal of this one request (a 403 without list rights, a 500) says
                # nothing of the others: each download reports its own error.
                logger.debug("no round trip measured to remote '%s': %r", name, exc)
                return None
            self._unreachable[name] = f"remote '{name}' is unreachable: {exc}"
            raise RemoteUnreachable(self._unreachable[name]) from exc


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, says that the remote's host or port
    could not be reached (refused, reset, timed out, no route, no such host)."""
    botocore = sys.modules.get("botocore.exceptions")
    boto_connection = () if botocore is None else (botocore.ConnectionError,)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ConnectionError, TimeoutError, socket.gaierror, *boto_connection)):
            return True
        if isinstance(seen, OSError) and seen.errno in UNREACHABLE_ERRNOS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _timed(func: Callable[[str], object], arg: str) -> float:
    start = time.perf_counter()
    func(arg)
    return time.perf_counter() - start


def size_connection_pool(odb: HashFileDB, size: int) -> None:
    """Let a store's S3 client keep ``size`` connections, before it is created."""
    # NOTE: only s3fs takes botocore's `config_kwargs`; other backends keep their defaults.
    fs_args = getattr(odb.fs, "fs_args", None)
    if odb.fs.protocol != "s3" or not isinstance(fs_args, dict) or "fs" in vars(odb.fs):
        return
    config = fs_args.setdefault("config_kwargs", {})
    config["max_pool_connections"] = max(size, config.get("max_pool_connections") or 0)
