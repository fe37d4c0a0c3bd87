"""Object sizes from listings of an object store, instead of one metadata request per object.

On S3, Google Cloud Storage and Azure, a recursive listing returns up to 1,000 objects per
request, each with its size. One listing of a prefix (``files/md5/ab/``) gives an estimate of
the whole store (x256: md5 spreads objects evenly), from which the cheapest way to learn the
sizes wanted is chosen: the whole store in one listing, the prefixes of the wanted objects, or
one request per object (a large store, few objects wanted).
"""

from __future__ import annotations

import contextlib
import logging
import math
from concurrent.futures import ThreadPoolExecutor

from dvc_data.hashfile.db import HashFileDB

logger = logging.getLogger(__name__)

LISTED_PROTOCOLS = frozenset({"s3", "gs", "gcs", "azure", "abfs", "az"})
PAGE = 1000  # objects per listing request on all of them
PREFIXES = 256  # two hex digits
MIN_WANTED = 8  # fewer sizes than this: one request each, without a sample listing

ALL, BY_PREFIX, EACH = "all", "prefixes", "each"


def listable(store: object) -> bool:
    """An object store laid out by md5 (not a ``PathStore``: objects found by path and version
    id, whose listing says nothing of the version a ``.dvc`` file records)."""
    return isinstance(store, HashFileDB) and store.fs.protocol in LISTED_PROTOCOLS


def pages(objects: int) -> int:
    return max(1, math.ceil(objects / PAGE))


def plan(wanted: int, prefixes: int, per_prefix: int, whole_store: bool) -> str:
    """The way of learning ``wanted`` sizes, spread over ``prefixes`` two-hex prefixes, that
    costs the fewest requests; ``per_prefix`` objects were found in the sampled prefix."""
    costs = {EACH: wanted, BY_PREFIX: prefixes * pages(per_prefix)}
    if whole_store:
        costs[ALL] = pages(per_prefix * PREFIXES)
    return min(costs, key=lambda way: (costs[way], way != ALL))


class StoreListing:
    """What the listings of one store taught: sizes by oid, and which prefixes were listed
    (an object absent from a listed prefix is absent from the store)."""

    def __init__(self, odb: HashFileDB, jobs: int):
        self.odb = odb
        self.jobs = jobs
        self.per_prefix: int | None = None  # objects in the sampled prefix
        self.listed: set[str] = set()
        self.everything = False
        self.refused = False  # a listing failed: one request per size from then on

    @property
    def path(self) -> str:
        return self.odb.path

    def covers(self, oid: str) -> bool:
        return self.everything or oid[:2] in self.listed

    def sample(self, oid: str) -> dict[str, int]:
        sizes = self.list_prefixes([oid[:2]])
        self.per_prefix = len(sizes)
        return sizes

    def list_prefixes(self, prefixes: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(self.jobs, len(prefixes)))) as pool:
            for sizes in pool.map(self._list, [f"{self.odb.path}/{p}" for p in prefixes]):
                found.update(sizes)
        self.listed.update(prefixes)
        return found

    def list_all(self) -> dict[str, int]:
        sizes = self._list(self.odb.path)
        self.everything = True
        return sizes

    def _list(self, path: str) -> dict[str, int]:
        fs = self.odb.fs.fs
        try:
            infos = fs.find(path, detail=True)
        finally:
            _forget_listing(fs, path)
        root = self.odb.path.rstrip("/") + "/"
        sizes = {}
        for name, info in infos.items():
            oid = _oid_of(name, root)
            if oid is not None and info.get("type") == "file" and info.get("size") is not None:
                sizes[oid] = int(info["size"])
        logger.debug("listed '%s': %d objects", path, len(sizes))
        return sizes


def _oid_of(name: str, root: str) -> str | None:
    # NOTE: only `<root>/<2 chars>/<rest>` is an object of this store: a legacy store at the
    # remote's root also holds `files/md5/...`, which is another store.
    if not name.startswith(root):
        return None
    parts = name[len(root) :].split("/")
    if len(parts) != 2 or len(parts[0]) != 2 or not parts[1]:
        return None
    return parts[0] + parts[1]


def _forget_listing(fs, path: str) -> None:
    # NOTE: fsspec keeps listings in `dircache`, where they would later answer `info` and
    # `exists` without asking the store: an object pushed meanwhile would look missing.
    path = fs._strip_protocol(path).rstrip("/")
    try:
        for key in [k for k in list(fs.dircache) if k == path or k.startswith(path + "/")]:
            fs.dircache.pop(key, None)
    except RuntimeError:  # changed by another thread meanwhile
        fs.invalidate_cache()
    with contextlib.suppress(Exception):
        fs.invalidate_cache(path)
