"""A partial output in DVC's workspace index (``build_data_index``), and in ``dvc checkout``.

``dvc data status``, ``dvc diff`` and ``dvc checkout`` compare an index built from the workspace
with the tracked one (``repo.index.data["repo"]``). A partial output's absent files have no entry
in the first, so they would read as deleted: they get their tracked entries, and the output's root
its tracked hash when no present file changed. ``dvc checkout`` instead adds what the cache has:
only the absent entries whose objects the cache lacks are filled in (left absent, unchanged), and
creating a file whose object is missing (a present file of another version) leaves it absent
instead of failing the output, which DVC would answer by removing the whole directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
from contextvars import ContextVar
from typing import TYPE_CHECKING

from dvc_stream.workspace import partial

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from dvc.repo import Repo
    from dvc.repo.index import Index, IndexView
    from dvc_data.index import BaseDataIndex, DataIndex, DataIndexEntry

logger = logging.getLogger(__name__)

Key = tuple[str, ...]


class _Checkout:
    """What one ``dvc checkout`` knows of the partial outputs it touches."""

    def __init__(self, paths: list[str]):
        self.paths = paths  # fs paths of the partial outputs
        self.left_absent: set[str] = set()

    def owner(self, path: str) -> str | None:
        for out_path in self.paths:
            if path == out_path or path.startswith(out_path + os.sep):
                return out_path
        return None


_checkout: ContextVar[_Checkout | None] = ContextVar("partial_checkout", default=None)


def fill(data: DataIndex, index: Index | IndexView) -> None:
    """Give the partial outputs of ``data`` (a built workspace index) their absent entries."""
    keys = _partial_keys(index)
    if not keys:
        return
    tracked = index.data["repo"]
    checking_out = _checkout.get() is not None
    for key in keys:
        _fill_key(data, tracked, key, only_uncached=checking_out)


def _partial_keys(index: Index | IndexView) -> list[Key]:
    outs = [out.index_key[1] for out in index.outs if partial.find(out) is not None]
    if not outs:
        return []
    keys = index.data_keys.get("repo", set())
    return [key for key in keys if any(key[: len(out)] == out for out in outs)]


def _fill_key(data: DataIndex, tracked: BaseDataIndex, key: Key, only_uncached: bool) -> None:
    root = tracked.get(key)
    if root is None:
        return
    if not root.isdir:
        if data.get(key) is None and not (only_uncached and _cached(tracked, root)):
            data.add(root)
        return
    built = data.get(key)
    if built is not None and not built.isdir:
        return  # NOTE: a file where a directory is tracked: a change, as DVC sees it
    present = {}
    if data.has_node(key):
        present = {k: e for k, e in data.iteritems(key) if k != key and not e.isdir}
    same, creating, to_create, dirs = 0, 0, set(), []
    for entry_key, entry in tracked.iteritems(key):
        if entry_key == key or (entry.isdir and data.get(entry_key) is not None):
            continue
        found = present.get(entry_key)
        if entry.isdir:
            dirs.append(entry)
        elif found is not None:
            same += _same(found, entry)
        elif only_uncached and _cached(tracked, entry):
            creating += 1
            to_create.update(entry_key[:depth] for depth in range(len(key) + 1, len(entry_key)))
        else:
            data.add(entry)
    # NOTE: an absent directory is not fetched yet either, unless checkout fills it now.
    for entry in dirs:
        if entry.key not in to_create:
            data.add(entry)
    _set_root(data, root, unchanged=same == len(present) and not creating)


def _set_root(data: DataIndex, root: DataIndexEntry, unchanged: bool) -> None:
    from dvc_data.index import DataIndexEntry
    from dvc_data.index.save import build_tree

    assert root.key is not None
    if not unchanged and not data.has_node(root.key):
        return  # NOTE: nothing present, nothing left absent: checkout creates the whole output
    entry = data.get(root.key)
    if entry is None:
        entry = DataIndexEntry(key=root.key, loaded=True)
    if unchanged:
        entry.meta, entry.hash_info = root.meta, root.hash_info
    else:
        name = root.hash_info.name if root.hash_info and root.hash_info.name else "md5"
        entry.meta, tree = build_tree(data, root.key, name=name)
        entry.hash_info = tree.hash_info
    entry.loaded = True
    data.add(entry)


def _same(built: DataIndexEntry, tracked: DataIndexEntry) -> bool:
    return bool(
        built.hash_info and tracked.hash_info and built.hash_info.value == tracked.hash_info.value
    )


def _cached(tracked: BaseDataIndex, entry: DataIndexEntry) -> bool:
    try:
        return tracked.storage_map.cache_exists(entry)
    except Exception:  # no cache for it: nothing to add
        return False


@contextlib.contextmanager
def checking_out(repo: Repo) -> Iterator[_Checkout | None]:
    """The block is a checkout of ``repo``: partial outputs keep their absent files."""
    outs = partial.claimed_outputs(repo)
    if not outs:
        yield None
        return
    state = _Checkout([os.path.abspath(out.fs_path) for out in outs])
    token = _checkout.set(state)
    try:
        yield state
    finally:
        _checkout.reset(token)


def keep_absent(onerror: Callable | None) -> Callable | None:
    """``onerror`` for dvc-data's checkout ``apply``: a file of a partial output that cannot be
    created for want of its object stays absent, and its output is not reported as failed."""
    state = _checkout.get()
    if state is None or onerror is None:
        return onerror

    def on_error(src_path: str, dest_path: str, exc: BaseException) -> None:
        owner = state.owner(os.path.abspath(dest_path))
        if owner is None or not isinstance(exc, FileNotFoundError):
            onerror(src_path, dest_path, exc)
            return
        logger.debug("'%s' stays absent: '%s' is not in the cache", dest_path, src_path)
        state.left_absent.add(owner)

    return on_error


def release_complete(repo: Repo, state: _Checkout) -> None:
    """After a checkout, the recorded outputs it left whole leave the record."""
    from dvc_stream.workspace import view

    if partial.streaming(repo):
        return
    whole = [
        out
        for out in partial.claimed_outputs(repo)
        if os.path.abspath(out.fs_path) not in state.left_absent
        and (found := partial.find(out)) is not None
        and not view.missing(found)
    ]
    partial.release(repo, whole)
