"""``dvc import`` outputs: read from the source repository's own storage.

``dvc pull`` reads them through the import's ``DVCFileSystem`` (``RepoDependency``, at
``rev_lock``), never from the project's remote, which ``dvc push`` never fills for them. That
filesystem costs three requests per file (two existence checks, then the GET). Here each file's
storage is looked up instead in the source repo's own ``repo.index.data``, as DVC opened it for
the import, and the file is read from there: by md5 from an object store, by path and version id
from a cloud-versioned remote, one request each. An import of an import is followed to the
storage at the end of the chain. Only a file that the source keeps in git is read through DVC's
filesystem, from the clone DVC made of the source.

The tree comes from the cache, else from the source's ``.dir`` object (one request), else by
listing DVC's filesystem at the end of the chain; either way it must be the tree the ``.dvc``
file records.

An import made with ``--no-download`` records no hash, only ``rev_lock``; ``dvc pull`` reads it
through the same filesystem at ``rev_lock``. ``resolve_hash`` finds the hash there, as
``dvc update`` would record it (the source's own hash of the path, else the tree of its files
listed at ``rev_lock``), and the import then streams like any other: every file is checked
against the md5 the source records for it.
"""

from __future__ import annotations

import logging
import posixpath
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from dvc_stream.errors import ManifestError
from dvc_stream.stream import fs_cache
from dvc_stream.stream.remotes import size_connection_pool
from dvc_stream.stream.sources import PathStore, Source
from dvc_stream.workspace.trees import entries_of_tree, load_entries

if TYPE_CHECKING:
    from dvc.fs import DVCFileSystem
    from dvc.output import Output
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.obj import HashFile
    from dvc_data.hashfile.tree import Tree
    from dvc_data.index import DataIndex

    from dvc_stream.workspace.manifest import TrackedFile, TrackedOutput
    from dvc_stream.workspace.trees import TreeEntry

logger = logging.getLogger(__name__)

MAX_CHAIN = 8  # imports of imports followed to their storage


class RepoImportSource(Source):
    def __init__(self, output: TrackedOutput, pool_size: int, *, no_download: bool = False):
        out = output.out
        # NOTE: where `dvc pull` copies a --no-download import, and DVC's commands look for it
        self._fs_cache = fs_cache.path_of(out) if no_download else None
        dep = out.stage.deps[0]
        self._hash_name = out.hash_name
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._stores: dict[int, object] = {}  # id(storage or filesystem) -> its store
        self._files: dict[str, object] = {}  # relpath -> store, when files differ
        found = _follow(dep.fs, dep.fs_path, str(out))
        self._fs, self._path = found.fs, found.path
        self._root_hash = getattr(_entry(found.index, found.key), "hash_info", None)
        self._shared = self._whole_import_store(found.storage, found.key)
        url = dep.def_repo["url"]
        shared = self._shared
        self.name = url if shared is None else f"{shared.fs.unstrip_protocol(shared.path)} ({url})"
        self._where = str(out)

    def store(self, tracked: TrackedFile):
        if self._shared is not None:
            return self._shared
        relpath = tracked.path[len(tracked.output.path) + 1 :].replace("\\", "/")
        found = self._files.get(relpath)
        if found is None:
            with self._lock:
                found = self._files.get(relpath)
                if found is None:
                    path = posixpath.join(self._path, relpath) if relpath else self._path
                    found = self._files[relpath] = self._store_of(path, tracked.oid)
        return found

    def placed(self, tracked: TrackedFile) -> None:
        if self._fs_cache is not None:
            fs_cache.link(tracked, self._fs_cache)

    def entries(self, output: TrackedOutput) -> list[TreeEntry]:
        out = output.out
        if out.cache.exists(output.oid):
            return load_entries(out)
        if self._shared is not None and self._root_hash == out.hash_info:
            return load_entries(out, odb=self._shared)  # the source's own .dir object
        return entries_of_tree(out, self._listed_tree())

    # -- resolution ----------------------------------------------------------------------------

    def _whole_import_store(self, storage, key: tuple[str, ...]):
        """The store of every file of the import, when one object store holds them all."""
        from dvc_data.index import ObjectStorage

        if not isinstance(storage, ObjectStorage) or storage.odb.hash_name != self._hash_name:
            return None
        # NOTE: outputs never nest, so every file below an output's key belongs to it.
        if not storage.key or tuple(storage.key) != key[: len(storage.key)]:
            return None
        return self._object_store(storage)

    def _store_of(self, path: str, oid: str):
        """The store to read the file at ``path`` (at the end of the chain) from."""
        from dvc_data.index import FileStorage, ObjectStorage

        found = _follow(self._fs, path, self._where)
        storage = found.storage
        if isinstance(storage, ObjectStorage) and storage.odb.hash_name == self._hash_name:
            return self._object_store(storage)
        if isinstance(storage, FileStorage) and storage.fs.version_aware:
            entry = _entry(found.index, found.key)
            if entry is not None:
                store = self._path_store(storage.fs, storage.path)
                store.add(oid, storage.get(entry)[1])
                return store
        # NOTE: kept in git by the source (or in storage we cannot address): DVC's filesystem
        store = self._path_store(found.fs, found.path)
        store.add(oid, found.path)
        return store

    def _object_store(self, storage):
        store = self._stores.get(id(storage.odb))
        if store is None:
            store = self._stores[id(storage.odb)] = storage.odb
            size_connection_pool(store, self._pool_size)
        return store

    def _path_store(self, fs, path: str) -> PathStore:
        store = self._stores.get(id(fs))
        if store is None:
            store = self._stores[id(fs)] = PathStore(fs, path)
            size_connection_pool(store, self._pool_size)
        return store

    def _listed_tree(self) -> Tree:
        """The import's tree as DVC's filesystem lists it at the end of the chain."""
        return _build(self._fs, self._path, self._hash_name)[1]


def resolve_hash(out: Output) -> None:
    """Give a ``--no-download`` repo import, in memory only, the hash of its source path at
    ``rev_lock`` (the ``.dvc`` file is left as it is)."""
    dep = out.stage.deps[0]
    found = _follow(dep.fs, dep.fs_path, str(out))
    entry = _entry(found.index, found.key)
    hash_info = getattr(entry, "hash_info", None)
    if hash_info is not None and hash_info.value and hash_info.name == out.hash_name:
        out.hash_info, out.meta = hash_info, entry.meta
        return
    meta, obj = _build(found.fs, found.path, out.hash_name)
    out.hash_info, out.meta = obj.hash_info, meta
    if obj.hash_info.isdir:
        entries_of_tree(out, obj)  # NOTE: checks the tree and caches its .dir object


def _build(fs: DVCFileSystem, path: str, hash_name: str) -> tuple[Meta, HashFile]:
    """The object of ``path`` as DVC's filesystem lists it, where the hashes come from the
    source's own trees and no file is read."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.memory import MemoryFileSystem

    staging = HashFileDB(MemoryFileSystem(), "/dvc-stream-staging")
    _, meta, obj = build(staging, path, fs, hash_name)
    return meta, obj


class _Found(NamedTuple):
    """Where a path of an import leads: DVC's filesystem and path, and its storage there."""

    fs: DVCFileSystem
    path: str
    index: DataIndex | None
    key: tuple[str, ...]
    storage: Any


def _follow(fs: DVCFileSystem, path: str, where: str) -> _Found:
    """Look ``path`` up in the source repo's index, following imports of imports."""
    from dvc.fs import DVCFileSystem
    from dvc_data.index import DataIndexEntry, FileStorage

    for _ in range(MAX_CHAIN):
        index, key = _locate(fs, path)
        storage = _storage(index, key)
        if not (isinstance(storage, FileStorage) and isinstance(storage.fs, DVCFileSystem)):
            return _Found(fs, path, index, key, storage)
        fs, path = storage.get(DataIndexEntry(key=key))
    raise ManifestError(f"'{where}' is imported through more than {MAX_CHAIN} imports", where)


def _locate(fs: DVCFileSystem, path: str) -> tuple[DataIndex | None, tuple[str, ...]]:
    """The data index of the (sub)repo that holds ``path``, and the path's key in it."""
    # NOTE: DVCFileSystem's own lookup, as its open() does it (dvc/fs/dvc.py).
    dvcfs = fs.fs
    key = dvcfs._get_key_from_relative(path)
    _, datafs, subkey = dvcfs._get_subrepo_info(key)
    return (datafs.fs.index if datafs is not None else None), tuple(subkey)


def _storage(index: DataIndex | None, key: tuple[str, ...]):
    from dvc_data.index import StorageKeyError

    if index is None:
        return None
    try:
        return index.storage_map[key].remote
    except StorageKeyError:
        return None


def _entry(index: DataIndex | None, key: tuple[str, ...]):
    if index is None:
        return None
    try:
        return index[key]
    except KeyError:
        return None
