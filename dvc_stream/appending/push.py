"""Push exactly the objects of an append: new file objects first, their ``.dir`` tree last.

DVC's own push checks every entry of a tree against the remote (or lists the remote). Here the
caller already knows which objects are new, so the requests depend only on how many there are.
Small objects are uploaded without asking first (a PUT costs about what a HEAD costs, and
s3fs's ``exists`` of a missing key is a HEAD plus a LIST); large ones are checked first so that
content the remote already has is not sent again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fsspec.callbacks import DEFAULT_CALLBACK

from dvc_stream.errors import DvcStreamError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dvc_data.hashfile.db import HashFileDB
    from fsspec import Callback

logger = logging.getLogger(__name__)

CHECK_EXISTS_MIN_SIZE = 1 << 20


class PushError(DvcStreamError):
    """Some objects could not be uploaded; they stay in the local cache."""

    def __init__(self, msg: str, failed: list[str]):
        self.failed = failed
        super().__init__(msg)


def push_objects(
    cache: HashFileDB,
    remote: HashFileDB,
    oids: Iterable[str],
    tree_oid: str,
    *,
    jobs: int | None = None,
    callback: Callback = DEFAULT_CALLBACK,
) -> int:
    """Upload the objects ``oids`` that ``remote`` may lack, then the tree ``tree_oid``.

    The tree goes last, so a remote never holds a ``.dir`` whose new entries are missing.
    Returns how many objects were uploaded; raises PushError naming those that failed.
    """
    wanted = sorted(set(oids))
    large = [oid for oid in wanted if _size(cache, oid) >= CHECK_EXISTS_MIN_SIZE]
    present = set(remote.list_oids_exists(large, jobs=jobs)) if large else set()
    missing = [oid for oid in wanted if oid not in present]
    logger.debug("pushing %d of %d new objects to '%s'", len(missing), len(wanted), remote.path)
    pushed = _upload(cache, remote, missing, jobs=jobs, callback=callback)
    # NOTE: the tree is new by construction (it differs from the old one), so it is not checked.
    return pushed + _upload(cache, remote, [tree_oid], jobs=jobs, callback=callback)


def _size(cache: HashFileDB, oid: str) -> int:
    return cache.fs.size(cache.oid_to_path(oid))


def _upload(
    cache: HashFileDB, remote: HashFileDB, oids: list[str], *, jobs: int | None, callback: Callback
) -> int:
    if not oids:
        return 0
    failed: dict[str, BaseException] = {}

    def on_error(oid: str, exc: BaseException) -> None:
        logger.debug("failed to upload '%s'", oid, exc_info=exc)
        failed[oid] = exc

    remote.add(
        [cache.oid_to_path(oid) for oid in oids],
        cache.fs,
        oids,
        check_exists=False,
        on_error=on_error,
        batch_size=jobs,
        callback=callback,
    )
    if failed:
        oid, exc = next(iter(failed.items()))
        raise PushError(
            f"failed to upload {len(failed)} of {len(oids)} objects (first: {oid}: {exc})",
            sorted(failed),
        )
    return len(oids)
