"""``dvc import-url`` outputs that ``dvc pull`` reads from their URL: made with ``--no-download``
(no hash of the output is recorded) or ``--version-aware`` (``push: false``; ``dvc push`` never
pushes them).

``dvc pull`` copies them from the URL by path (and version id) into ``.dvc/cache/fs/`` without
hashing them (``_load_storage_from_import`` in ``dvc/repo/index.py``). Streaming needs the md5 of
every file before it is read, to check it and to keep it in the md5 cache. A local path or an
http(s) URL is hashed with dvc-data (``url_sources.py``). On a cloud store, what DVC records per
file is an etag (``files:`` with ``--version-aware``), or nothing (a plain ``--no-download``, read
once by listing the URL at start). On S3 the etag of an object uploaded in one part is the md5 of
its bytes, so the etags are taken as md5s, and trusted only when DVC recorded something to check
them against:

- the tree of ``(relpath, etag)`` must be the tree the ``.dvc`` file records (the output's hash,
  or the dependency's for ``--no-download``), which DVC computed from the bytes;
- with ``--no-download --version-aware`` no md5 is recorded: the version ids pin the bytes, and
  each file is checked against its recorded etag as it lands in the cache.

An etag that is not an md5 (a multipart upload, another store) leaves the output unstreamed, with
one line saying so. A file changed at the URL since the import fails its check when fetched: the
program gets an ``OSError``, never different bytes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dvc_stream.errors import ManifestError
from dvc_stream.stream import fs_cache, url_sources
from dvc_stream.stream.remotes import size_connection_pool
from dvc_stream.stream.sources import PathStore, Source
from dvc_stream.workspace.trees import entries_of_tree

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from dvc.dependency import Dependency
    from dvc.output import Output
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    from dvc_stream.workspace.manifest import TrackedFile, TrackedOutput
    from dvc_stream.workspace.trees import TreeEntry

_MD5 = re.compile(r"[0-9a-f]{32}")


def resolve_hash(out: Output) -> list[TreeEntry]:
    """Give ``out``, in memory only, the hash of the files at its URL, checked against what the
    ``.dvc`` file records; its entries (with sizes) if it is a directory. Raises ManifestError
    saying why it cannot."""
    if url_sources.hashes_bytes(out):
        return url_sources.resolve_hash(out)
    dep = out.stage.deps[0]
    where = str(out)
    recorded = out.hash_info if out.hash_info else None
    if not (dep.files or (dep.meta and dep.meta.isdir) or dep.hash_info.isdir):
        from dvc_data.hashfile.meta import Meta

        meta = dep.meta or Meta()
        out.hash_info, out.meta = recorded or _etag_hash(meta, where, where), meta
        return []
    files = list(_files(dep))
    if not dep.files and dep.hash_info and dep.hash_info.value:
        _check_unchanged(dep, files, where)
    meta, tree = _tree(files, where)
    if recorded and recorded.value != tree.hash_info.value:
        raise ManifestError(
            f"'{where}' is not streamed: the etags recorded for its files at "
            f"'{dep.def_path}' are not the md5s of the files imported (uploaded in parts?); "
            f"run `dvc pull {where}` instead",
            where,
        )
    out.hash_info, out.meta = tree.hash_info, meta
    return entries_of_tree(out, tree)  # NOTE: checks the tree and caches its .dir object


def _check_unchanged(dep: Dependency, files: list[tuple[str, Meta]], where: str) -> None:
    """The files listed at the URL must be the ones imported: ``--no-download`` records the
    hash of their tree of etags (the dependency's hash, ``etag`` entries in its ``.dir``)."""
    from dvc_data.hashfile.hash_info import HashInfo

    tree = _tree_of(files, lambda _relpath, meta: HashInfo("etag", meta.etag))
    if tree.hash_info.value != dep.hash_info.value:
        raise ManifestError(
            f"'{where}' is not streamed: the files at '{dep.def_path}' changed since they were "
            f"imported; `dvc update {where}` records the new ones",
            where,
        )


def _tree(files: list[tuple[str, Meta]], where: str) -> tuple[Meta, Tree]:
    from dvc_data.hashfile.meta import Meta

    tree = _tree_of(files, lambda relpath, meta: _etag_hash(meta, f"{where}/{relpath}", where))
    size = sum(meta.size or 0 for _, meta in files)
    return Meta(isdir=True, nfiles=len(files), size=size), tree


def _tree_of(files: list[tuple[str, Meta]], hash_of: Callable[[str, Meta], HashInfo]) -> Tree:
    """The digested tree of ``files``, each entry's hash given by ``hash_of(relpath, meta)``."""
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for relpath, meta in files:
        tree.add(tuple(relpath.split("/")), meta, hash_of(relpath, meta))
    tree.digest()
    return tree


def _files(dep: Dependency) -> Iterator[tuple[str, Meta]]:
    """(relpath, meta) of each file: as ``files:`` records them, else listed at the URL now."""
    from dvc_data.hashfile.meta import Meta

    if dep.files:
        for item in dep.files:
            yield item["relpath"], Meta.from_dict(item)
        return
    fs = dep.fs
    for path, info in sorted(fs.fs.find(dep.fs_path, detail=True).items()):
        if info.get("type") == "file":
            yield fs.relpath(path, dep.fs_path), Meta.from_info(info, fs.protocol)


def _etag_hash(meta: Meta, path: str, where: str) -> HashInfo:
    from dvc_data.hashfile.hash_info import HashInfo

    etag = (meta.etag or "").strip('"')
    if not _MD5.fullmatch(etag):
        raise ManifestError(
            f"'{where}' is not streamed: DVC recorded no md5 of '{path}' and its etag "
            f"({etag or 'none'}) is not one, so a fetched file could not be checked; "
            f"run `dvc pull {where}` instead",
            where,
        )
    return HashInfo("md5", etag)


class UrlImportSource(Source):
    """Each file read from the URL by path, and by the version id DVC recorded, if any."""

    def __init__(
        self, output: TrackedOutput, entries: list[TreeEntry], pool_size: int, unhashed: bool
    ):
        out = output.out
        dep = out.stage.deps[0]
        fs, root = url_sources.store_root(out)
        self.name = dep.def_path
        self._store = PathStore(fs, root)
        self._store.mismatch = f"changed at '{dep.def_path}' since it was imported"
        self._fs_cache = fs_cache.path_of(out)
        # NOTE: as `dvc pull`: by version only from a version-aware URL, else what is there now
        versioned = bool(getattr(fs, "version_aware", False))
        files = dep.files if versioned else ()
        versions = {item["relpath"]: item.get("version_id") for item in files or ()}
        self._entries = entries
        # NOTE: DVC's index holds the dependency's hash (an etag, a checksum) for a single file
        # whose .dvc file records no hash of its own: `dvc checkout` records that in its state
        self._index_hash = None if output.isdir or not unhashed else dep.hash_info
        if not output.isdir:
            version = dep.meta.version_id if versioned and dep.meta else None
            self._store.add(output.oid, _versioned(fs, root, version))
        else:
            for entry in entries:
                path = fs.join(root, *entry.relpath.split("/"))
                self._store.add(entry.md5, _versioned(fs, path, versions.get(entry.relpath)))
        size_connection_pool(self._store, pool_size)

    def store(self, tracked: TrackedFile | None = None) -> PathStore:
        return self._store

    def entries(self, output: TrackedOutput) -> list[TreeEntry]:
        return self._entries

    def placed(self, tracked: TrackedFile) -> None:
        fs_cache.link(tracked, self._fs_cache)

    def state_hash(self, tracked: TrackedFile) -> HashInfo | None:
        return self._index_hash


def _versioned(fs, path: str, version_id: str | None) -> str:
    return fs.version_path(path, version_id) if version_id else path
