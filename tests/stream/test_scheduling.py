"""The fetcher's scheduling, on local object stores: what a blocked reader waits behind."""

from __future__ import annotations

import threading

from dvc_data.hashfile.db import HashFileDB
from dvc_objects.fs.local import LocalFileSystem

from dvc_stream.stream.fetcher import BACKGROUND, DEMAND, Fetcher, ObjectRef

from .conftest import md5

LIVENESS_TIMEOUT = 30  # seconds: only a hang would reach it


class _StuckCache:
    """A cache that waits to be released before it stores an object: prefetches being added."""

    def __init__(self, db: HashFileDB):
        self.db = db
        self.hash_name = db.hash_name
        self.entered = threading.Event()
        self.release = threading.Event()

    def oid_to_path(self, oid: str) -> str:
        return self.db.oid_to_path(oid)

    def makedirs(self, path: str) -> None:
        self.entered.set()
        self.release.wait(LIVENESS_TIMEOUT)
        self.db.makedirs(path)

    def protect(self, path: str) -> None:
        self.db.protect(path)


def _object(remote: HashFileDB, data: bytes) -> str:
    oid = md5(data)
    path = remote.oid_to_path(oid)
    remote.fs.makedirs(remote.fs.parent(path), exist_ok=True)
    remote.fs.pipe_file(path, data)
    return oid


def _ref(oid: str, cache, remote: HashFileDB) -> ObjectRef:
    return ObjectRef(oid, "md5", cache, lambda: remote, remote_name="local", display=oid)


def test_demand_miss_is_not_held_behind_prefetches_being_added(tmp_path):
    fs = LocalFileSystem()
    remote = HashFileDB(fs, str(tmp_path / "remote"))
    cache = HashFileDB(fs, str(tmp_path / "cache"))
    stuck = _StuckCache(cache)
    prefetched = _object(remote, b"prefetched by the background fill")
    wanted = _object(remote, b"the file the program is blocked on")

    fetcher = Fetcher(jobs=4, tmp_dir=str(tmp_path / "tmp"))
    try:
        background = fetcher.submit(_ref(prefetched, stuck, remote), BACKGROUND)
        assert stuck.entered.wait(LIVENESS_TIMEOUT)

        demand = fetcher.submit(_ref(wanted, cache, remote), DEMAND)
        assert demand.result(LIVENESS_TIMEOUT) == cache.oid_to_path(wanted)
        assert not background.done()  # the prefetch batch was still being added meanwhile

        stuck.release.set()
        assert background.result(LIVENESS_TIMEOUT) == cache.oid_to_path(prefetched)
    finally:
        stuck.release.set()
        fetcher.close()
