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
# NOTE: what an OSError's errno says when no connection to the remote's host could be made, as
# opposed to one that was made and then failed (a reset, a stall: that object's bad luck) or a
# remote that answered with a refusal (403, 404, 500...).
UNREACHABLE_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}
)


class RemoteUnreachable(DvcStreamError):
    """The remote could not be reached by the run's first contact with it (the start-up probe,
    or without it the first download); it is not asked again in that run."""


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
        self._names: dict[int, str] = {}  # id of a store above -> its remote's name
        self._answered: set[str] = set()  # remotes that answered this run at least once
        self._unreachable: dict[str, str] = {}  # remote name -> why it is not asked again
        self._lock = threading.Lock()

    def name_for(self, output_remote: str | None) -> str:
        name = self.override or output_remote or self.repo.config["core"].get("remote")
        return name or "default"

    def odb(self, output_remote: str | None, hash_name: str) -> HashFileDB:
        """The store of a remote; RemoteUnreachable for one that could not be reached (see
        ``gave_up``): each download from it would wait out the connection's retries, seconds
        per file, only to fail."""
        if self._unreachable:  # NOTE: no name looked up otherwise: this runs for every file
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
                self._names[id(odb)] = self.name_for(output_remote)
        return odb

    def answered(self, odb: HashFileDB) -> None:
        """A download from ``odb`` succeeded."""
        name = self._names.get(id(odb))
        if name is not None:
            self._answered.add(name)

    def gave_up(self, odb: HashFileDB, exc: BaseException) -> bool:
        """A request to ``odb`` failed for good with ``exc``. If the remote has not answered
        this run and ``exc`` says it cannot be reached, it is not asked again (said once, as
        a warning): return whether it is given up.

        NOTE: a remote that answered before is only having a bad moment (a transient outage
        in a long run): its later downloads are still tried.
        """
        name = self._names.get(id(odb))
        if name is None or name in self._answered or not is_unreachable(exc):
            return False
        with self._lock:
            if name in self._unreachable:
                return True
            self._unreachable[name] = f"remote '{name}' is unreachable: {_root_cause(exc)}"
        logger.warning("%s; only the files in the cache can be read", self._unreachable[name])
        return True

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
            rtt = min(_timed(odb.fs.exists, probe_path) for _ in range(ROUND_TRIP_PROBES))
        except Exception as exc:
            if self.gave_up(odb, exc):
                raise RemoteUnreachable(self._unreachable[name]) from exc
            # NOTE: a refusal of this one request (a 403 without list rights, a 500) says
            # nothing of the others: each download reports its own error.
            logger.debug("no round trip measured to remote '%s': %r", name, exc)
            rtt = None
        self._answered.add(name)
        return rtt


def _root_cause(exc: BaseException) -> BaseException:
    """What ``exc`` was raised from, first of all: the connection's own error."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, says that no connection to the
    remote could be made (refused, no route, no such host, connect timed out)."""
    botocore = sys.modules.get("botocore.exceptions")
    # NOTE: botocore's ConnectionError: could not connect (EndpointConnectionError,
    # ConnectTimeoutError, a proxy's); a connection lost later is an HTTPClientError.
    boto_connection = () if botocore is None else (botocore.ConnectionError,)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ConnectionRefusedError, socket.gaierror, *boto_connection)):
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
