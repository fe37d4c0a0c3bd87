"""The view of a partial output: its tracked tree with the files present in the workspace over it.

A present file that differs from its tracked entry (edited, new, or of another version) is a
real change; an absent one is unchanged. So an output whose present files are unchanged views as
its tracked version, hash for hash, and a user's edit is recorded on top of the tracked tree, the
way ``dvc add dir/file`` merges one file (``Output.apply``), never as a smaller tree. Only the
present files are hashed (through DVC's state database), and the tracked tree is DVC's own
``Tree``, loaded once per output.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dvc_stream.workspace import entry_sizes

if TYPE_CHECKING:
    from dvc.output import Output
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.obj import HashFile
    from dvc_data.hashfile.tree import Tree

    from dvc_stream.workspace.partial import Partial

logger = logging.getLogger(__name__)

Key = tuple[str, ...]


@dataclass
class View:
    """What a partial output or dependency is: ``obj`` (a ``Tree`` or a file object)."""

    meta: Meta
    obj: HashFile
    changes: list[tuple[Key, Meta, HashInfo]] = field(default_factory=list)
    staging: HashFileDB | None = None  # where the present files were built
    built: Tree | None = None  # the present files alone

    @property
    def hash_info(self) -> HashInfo:
        return self.obj.hash_info


def of(item: Output, partial: Partial) -> View | None:
    """The view of ``item``; None where DVC's own hash of the workspace is already it (a
    present file, or a file where a directory is tracked) or the tracked tree is unreadable."""
    tracked = _tracked_version(partial)
    if tracked is None:
        return None
    meta, obj = tracked
    if not item.exists:
        return View(meta, obj)
    if not _is_tree(obj):
        return None
    staging, _, built = _build(item)
    if not _is_tree(built):
        return None
    changes = [
        (key, entry_meta, hi)
        for key, entry_meta, hi in built
        if (old := obj.get(key)) is None or old[1] is None or old[1].value != hi.value
    ]
    if not changes:
        return View(meta, obj, [], staging, built)
    merged = _merge(obj, changes)
    return View(_meta(item, meta, obj, merged, changes), merged, changes, staging, built)


def store(out: Output, view: View, relink: bool = True) -> None:
    """Put a view that is not in the cache there, as ``dvc add``/``dvc commit`` do: the objects
    of the present files, then the merged ``.dir``; then link the present files from the cache."""
    from dvc import prompt
    from dvc.fs.callbacks import TqdmCallback
    from dvc_data.hashfile.db import add_update_tree
    from dvc_data.hashfile.transfer import transfer

    if view.staging is None or view.built is None:
        return
    # NOTE: after `Output.save` the view is the saved one: its tree may not be in the cache yet.
    if not view.changes and out.cache.exists(view.hash_info.value):
        return
    hardlink = relink and next(iter(out.cache.cache_types), None) == "hardlink"
    # NOTE: every present file, not only the changed ones: relinking replaces each of them.
    oids = {hi for _, _, hi in view.built}
    with TqdmCallback(desc=f"Committing {out} to cache", unit="file") as callback:
        transfer(view.staging, out.cache, oids, shallow=True, hardlink=hardlink, callback=callback)
    add_update_tree(out.cache, view.obj)
    _reclaim(out, view.hash_info.value)
    if relink:
        out._checkout(
            out.fs_path,
            out.fs,
            view.built,
            out.cache,
            relink=True,
            state=out.repo.state,
            prompt=prompt.confirm,
            old=view.built,
        )


def _reclaim(out: Output, oid: str) -> None:
    """The present files are now those of the recorded version ``oid``: no switch to reconcile."""
    from dvc_stream.workspace import record
    from dvc_stream.workspace.partial import relpath

    rel = relpath(out.repo, out.fs_path)
    if rel in record.load(out.repo.tmp_dir):
        record.claim(out.repo.tmp_dir, rel, oid)


def missing(partial: Partial) -> bool:
    """Whether any tracked file of the viewed part is absent from the workspace."""
    tracked = _tracked_version(partial)
    if tracked is None:
        return True
    _, obj = tracked
    base = os.path.join(partial.out.fs_path, *partial.prefix)
    if not _is_tree(obj):
        return not os.path.lexists(base)
    return any(not os.path.lexists(os.path.join(base, *key)) for key, _, _ in obj)


def tracked_tree(out: Output) -> Tree | None:
    """The tracked ``.dir`` tree of ``out`` (cached on it, as DVC does); None if unreadable."""
    from dvc_data.hashfile.tree import Tree

    from dvc_stream.workspace.partial import stream_options

    obj = out.obj
    if isinstance(obj, Tree) and obj.hash_info and obj.hash_info.value == out.hash_info.value:
        return obj
    # NOTE: `get_dir_cache` returns whatever `out.obj` holds; a built tree must not pass for it.
    out.obj = None
    try:
        # NOTE: from the remote `dvc stream -r` names, as its broker does.
        tree = out.get_dir_cache(remote=stream_options().get("remote"))
    except Exception as exc:  # an unreadable tree leaves DVC's own behaviour
        logger.debug("could not load the tree of '%s': %s", out, exc)
        tree = None
    if tree is None:
        out.obj = obj
    return tree


def _tracked_version(partial: Partial) -> tuple[Meta, HashFile] | None:
    """(meta, object) of the tracked version of the viewed part."""
    out = partial.out
    if not out.hash_info.isdir:
        return (out.meta, out.cache.get(out.hash_info.value)) if not partial.prefix else None
    tree = tracked_tree(out)
    if tree is None:
        return None
    if not partial.prefix:
        return out.meta, tree
    return _inside(out, tree, partial.prefix)


def _inside(out: Output, tree: Tree, prefix: Key) -> tuple[Meta, HashFile] | None:
    from dvc_data.hashfile.meta import Meta

    entry = tree.get(prefix)
    if entry is not None:
        meta, hi = entry
        return (meta or Meta()), out.cache.get(hi.value)
    sub = tree.get_obj(out.cache, prefix)
    if sub is None or not len(sub):
        return None
    return Meta(isdir=True, nfiles=len(sub)), sub


def _build(item: Output) -> tuple[HashFileDB, Meta, HashFile]:
    """The present files, built as ``Output._get_hash_meta`` builds them."""
    odb = item.cache if item.use_cache else item.local_cache
    return item._build(
        odb,
        item.fs_path,
        item.fs,
        item.hash_name,
        ignore=item.dvcignore,
        dry_run=not item.use_cache,
    )


def _merge(tree: Tree, changes: list[tuple[Key, Meta, HashInfo]]) -> Tree:
    """``tree`` with ``changes`` over it, as ``Output.apply`` merges a file into a tree."""
    from dvc_data.hashfile.tree import Tree

    trie = tree.as_trie()
    for key, meta, hi in changes:
        for depth in range(1, len(key)):
            trie.pop(key[:depth], None)  # a tracked file where a directory is now
        if trie.has_subtrie(key):
            del trie[key:]  # a tracked directory where a file is now
        trie[key] = (meta, hi)
    merged = Tree.from_trie(trie)
    merged.digest()
    return merged


def _meta(item: Output, tracked: Meta, tree: Tree, merged: Tree, changes) -> Meta:
    """The merged tree's meta: the tracked size with each change's difference applied."""
    from dvc_data.hashfile.meta import Meta

    added = sum(tree.get(key) is None for key, _, _ in changes)
    size = None
    # NOTE: a file where a tracked directory was (or the reverse) drops entries: size unknown.
    if tracked.size is not None and len(merged) == len(tree) + added:
        size = tracked.size
        for key, meta, _ in changes:
            old = tree.get(key)
            old_size = 0 if old is None else _entry_size(item, key, *old)
            if old_size is None or meta is None or meta.size is None:
                size = None
                break
            size += meta.size - old_size
    return Meta(isdir=True, nfiles=len(merged), size=size)


def _entry_size(item: Output, key: Key, meta: Meta | None, hi: HashInfo) -> int | None:
    return entry_sizes.file_size(item, os.path.join(item.fs_path, *key), hi, meta)


def _is_tree(obj: object) -> bool:
    from dvc_data.hashfile.tree import Tree

    return isinstance(obj, Tree)
