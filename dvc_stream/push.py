"""Push exactly the objects of an append: new file objects first, their ``.dir`` tree last.

DVC's own push checks every entry of a tree against the remote (or lists the remote). Here the
caller already knows which objects are new, so the requests depend only on how many there are:
one existence check per object, one upload per missing object.
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
    """Upload the objects ``oids`` and then the tree ``tree_oid`` if ``remote`` lacks them.

    The tree goes last, so a remote never holds a ``.dir`` whose new entries are missing.
    Returns how many objects were uploaded; raises PushError naming those that failed.
    """
    wanted = sorted(set(oids))
    present = set(remote.list_oids_exists([*wanted, tree_oid], jobs=jobs))
    missing = [oid for oid in wanted if oid not in present]
    logger.debug("pushing %d of %d new objects to '%s'", len(missing), len(wanted), remote.path)
    pushed = _upload(cache, remote, missing, jobs=jobs, callback=callback)
    if tree_oid not in present:
        pushed += _upload(cache, remote, [tree_oid], jobs=jobs, callback=callback)
    return pushed


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
