"""Directory trees of tracked outputs: loaded from the cache or, failing that, only the ``.dir``
object from the remote; and checked before anything trusts them.

A ``.dir`` object comes from the remote, which the user may not control. Its relpaths decide where
files are written, so every relpath is checked: no absolute paths, no ``..``, no empty or ``.``
parts, no duplicates, no file that is also a directory. DVC itself does not check this.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dvc_stream.dvc_remotes import get_remote_odb
from dvc_stream.errors import ManifestError

if TYPE_CHECKING:
    from dvc.output import Output
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.tree import Tree

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TreeEntry:
    relpath: str  # posix, relative to the output
    md5: str
    isexec: bool = False
    size: int | None = None  # known when the tree comes from ``files:`` entries, not a ``.dir``


def remote_odb(out: Output, remote: str | None = None, command: str = "fetch") -> HashFileDB:
    """The remote object store for ``out``: ``remote``, else the output's own, else the default."""
    return get_remote_odb(out.repo, remote or out.remote, command, out.hash_name)


def read_dir_object(
    out: Output,
    remote: str | None = None,
    *,
    odb: HashFileDB | None = None,
    cache: bool = True,
) -> bytes:
    """The raw ``.dir`` object of a directory output, from the cache or else the remote.

    Only this one object is downloaded, from ``odb`` if given (an already open store of the
    remote), and it is checked against its md5; with ``cache``, it is then added to the cache.
    """
    oid = out.hash_info.value
    cache_path = out.cache.oid_to_path(oid)
    try:
        with open(cache_path, "rb") as fobj:
            return fobj.read()
    except FileNotFoundError:
        pass
    raw = _fetch_dir_object(out, remote, odb)
    if cache:
        out.cache.add_bytes(oid, raw)
        out.cache.protect(cache_path)
    return raw


def _fetch_dir_object(out: Output, remote: str | None, odb: HashFileDB | None) -> bytes:
    from dvc.config import NoRemoteError

    oid = out.hash_info.value
    try:
        odb = odb or remote_odb(out, remote)
    except NoRemoteError:
        raise ManifestError(
            f"the tree of '{out}' ({oid}) is not in the cache and no remote is set",
            str(out),
        ) from None
    try:
        raw = odb.fs.cat_file(odb.oid_to_path(oid))
    except FileNotFoundError:
        raise ManifestError(
            f"the tree of '{out}' ({oid}) is neither in the cache nor on the remote", str(out)
        ) from None
    if hashlib.md5(raw).hexdigest() != oid.removesuffix(".dir"):
        raise ManifestError(f"the tree object {oid} of '{out}' is corrupted on the remote")
    return raw


def parse_entries(raw: bytes, where: str) -> list[TreeEntry]:
    """Parse and check a ``.dir`` object; raises ManifestError naming the first bad entry."""
    try:
        items = json.loads(raw)
    except ValueError:
        raise ManifestError(f"the tree of '{where}' is not valid JSON", where) from None
    if not isinstance(items, list):
        raise ManifestError(f"the tree of '{where}' is not a list of entries", where)
    entries = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("relpath"), str):
            raise ManifestError(f"the tree of '{where}' has a malformed entry: {item!r}", where)
        md5 = item.get("md5")
        if not isinstance(md5, str) or not md5:
            raise ManifestError(f"the tree of '{where}' has an entry without md5: {item!r}", where)
        entries.append(TreeEntry(item["relpath"], md5, bool(item.get("isexec", False))))
    check_relpaths([e.relpath for e in entries], where)
    return entries


def check_relpaths(relpaths: list[str], where: str) -> None:
    """Refuse relpaths that could escape the output or that collide."""
    files: set[str] = set()
    dirs: set[str] = set()
    for relpath in relpaths:
        parts = relpath.split("/")
        if relpath.startswith("/") or "\\" in relpath or any(p in ("", ".", "..") for p in parts):
            raise ManifestError(f"unsafe path '{relpath}' in the tree of '{where}'", where)
        if relpath in files:
            raise ManifestError(f"duplicate path '{relpath}' in the tree of '{where}'", where)
        files.add(relpath)
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    if clash := files & dirs:
        path = min(clash)
        raise ManifestError(
            f"'{path}' is both a file and a directory in the tree of '{where}'", where
        )


def load_entries(
    out: Output,
    remote: str | None = None,
    *,
    odb: HashFileDB | None = None,
    cache: bool = True,
) -> list[TreeEntry]:
    """Checked entries of a directory output, reading only its ``.dir`` object."""
    return parse_entries(read_dir_object(out, remote, odb=odb, cache=cache), str(out))


def entries_of_tree(out: Output, tree: Tree, *, cache: bool = True) -> list[TreeEntry]:
    """Checked entries of a tree built without its ``.dir`` object (from ``files:`` entries, or
    by listing an import's source), which must be the tree ``out`` records.

    With ``cache``, its ``.dir`` object is then added to the cache, as ``dvc pull`` leaves it.
    """
    where = str(out)
    entries = []
    for key, meta, hash_info in tree:
        if hash_info is None or not hash_info.value:
            raise ManifestError(f"'{'/'.join(key)}' has no recorded hash in '{where}'", where)
        isexec = bool(meta and meta.isexec)
        size = meta.size if meta else None
        entries.append(TreeEntry("/".join(key), hash_info.value, isexec, size))
    check_relpaths([e.relpath for e in entries], where)
    raw = tree.as_bytes()
    oid = out.hash_info.value
    if hashlib.md5(raw).hexdigest() != oid.removesuffix(".dir"):
        raise ManifestError(f"the files found for '{where}' are not its tree {oid}", where)
    if cache and not out.cache.exists(oid):
        out.cache.add_bytes(oid, raw)
        out.cache.protect(out.cache.oid_to_path(oid))
    return entries


def load_tree(out: Output, remote: str | None = None, *, cache: bool = True) -> Tree:
    """A checked dvc-data ``Tree`` of a directory output."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for entry in load_entries(out, remote, cache=cache):
        meta = Meta(isexec=entry.isexec)
        tree.add(tuple(entry.relpath.split("/")), meta, HashInfo(out.hash_name, entry.md5))
    tree.digest()
    return tree
