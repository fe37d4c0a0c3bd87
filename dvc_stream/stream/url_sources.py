"""``dvc import-url --no-download`` outputs from a local path or an http(s) URL: the md5 of
each file is taken with dvc-data's own hashing before anything is served.

- A local path (a file or a directory): DVC recorded the dependency's md5 (a ``.dir`` hash for a
  directory), computed from the bytes at import. The source is hashed again, as ``dvc update``
  would (``dvc_data``'s ``build``, with DVC's state database, so an unchanged source is not read
  twice), and streams only if it gives the recorded hash: ``dvc pull`` too skips a local source
  whose md5 changed (``_filter_changed`` in ``dvc_data/index/fetch.py``). Each file is then read
  from the source path and checked against its md5.
- An http(s) URL (one file: DVC's http filesystem has no directories): DVC recorded its size and
  the server's ``ETag`` (``checksum``), no md5. As ``dvc pull``, the ``ETag`` the server gives
  now must be the recorded one (one HEAD request), then the file is copied where ``dvc pull``
  copies it (``.dvc/cache/fs/``), its size checked, and hashed there; it is served from that copy.
  The md5 is needed before the program reads the file, so an http import not yet copied there
  is fetched at start, once: later runs hash the copy (the state database remembers it).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dvc_stream.errors import ManifestError
from dvc_stream.stream import fs_cache
from dvc_stream.workspace.trees import entries_of_tree

if TYPE_CHECKING:
    from dvc.dependency import Dependency
    from dvc.output import Output
    from dvc_objects.fs.base import FileSystem

    from dvc_stream.workspace.trees import TreeEntry

HTTP = ("http", "https")


def hashes_bytes(out: Output) -> bool:
    """A ``--no-download`` import from a source this module hashes: a local path or http(s)."""
    return not out.hash_info and out.stage.deps[0].fs.protocol in ("local", *HTTP)


def resolve_hash(out: Output) -> list[TreeEntry]:
    """Give ``out``, in memory only, the md5 of its source's bytes, checked against what the
    ``.dvc`` file records; its entries if it is a directory. Raises ManifestError saying why
    it cannot."""
    dep = out.stage.deps[0]
    if dep.fs.protocol in HTTP:
        return _resolve_http(out, dep)
    return _resolve_local(out, dep)


def store_root(out: Output) -> tuple[FileSystem, str]:
    """Where the files of ``out`` are read from: the source path, or for an http(s) URL the
    copy in ``.dvc/cache/fs/``."""
    dep = out.stage.deps[0]
    if dep.fs.protocol in HTTP:
        from dvc_objects.fs.local import localfs

        return localfs, fs_cache.path_of(out)
    return dep.fs, dep.fs_path


def _resolve_local(out: Output, dep: Dependency) -> list[TreeEntry]:
    from dvc_data.hashfile.build import build

    _, meta, obj = build(
        dep.local_cache, dep.fs_path, dep.fs, dep.hash_name, ignore=dep.dvcignore, dry_run=True
    )
    if obj.hash_info.value != dep.hash_info.value:
        raise _changed(out, dep)
    out.hash_info, out.meta = obj.hash_info, meta
    if not obj.hash_info.isdir:
        return []
    return entries_of_tree(out, obj)  # NOTE: checks the tree and caches its .dir object


def _resolve_http(out: Output, dep: Dependency) -> list[TreeEntry]:
    from dvc_data.hashfile.hash import hash_file
    from dvc_data.hashfile.meta import Meta
    from dvc_objects.fs.local import localfs

    where = str(out)
    recorded = dep.meta.checksum if dep.meta else None
    now = Meta.from_info(dep.fs.info(dep.fs_path), dep.fs.protocol)
    if not (recorded and now.checksum):
        raise ManifestError(
            f"'{where}' is not streamed: '{dep.def_path}' gives no ETag to check it against "
            f"the one recorded at import (`dvc pull {where}` cannot fetch it either)",
            where,
        )
    if now.checksum != recorded or _sizes_differ(dep.meta.size, now.size):
        raise _changed(out, dep)
    path = fs_cache.path_of(out)
    if not os.path.exists(path):
        _download(out, dep, path)
    meta, hash_info = hash_file(path, localfs, "md5", state=out.repo.state)
    if _sizes_differ(dep.meta.size, meta.size):
        raise _changed(out, dep)
    out.hash_info, out.meta = hash_info, Meta(size=meta.size)
    return []


def _download(out: Output, dep: Dependency, path: str) -> None:
    """Copy the URL to ``path`` (where ``dvc pull`` copies it), whole or not at all."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with fs_cache.written_in_place(path) as tmp:
        dep.fs.get_file(dep.fs_path, tmp)
        if _sizes_differ(dep.meta.size, os.path.getsize(tmp)):
            raise _changed(out, dep)


def _sizes_differ(recorded: int | None, now: int | None) -> bool:
    return recorded is not None and now is not None and recorded != now


def _changed(out: Output, dep: Dependency) -> ManifestError:
    where = str(out)
    return ManifestError(
        f"'{where}' is not streamed: '{dep.def_path}' changed since it was imported; "
        f"`dvc update {where}` records the new one",
        where,
    )
