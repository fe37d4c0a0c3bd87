"""Where each output's files are read from: wherever ``dvc pull`` reads them.

DVC decides it per output when it builds ``repo.index.data`` (``dvc/repo/index.py``,
``_load_storage_from_out`` and ``_load_storage_from_import``):

- the project's remote, objects by md5: ``dvc add``, stage outputs, and ``dvc import-url``
  outputs, which ``dvc push`` pushes like any other;
- a cloud-versioned remote (``version_aware`` or ``worktree``): each file by its path and the
  version id the ``.dvc`` file records (``files:``);
- the source repository of a ``dvc import``, which ``dvc push`` never pushes
  (``repo_imports.py``).

Each source hands the fetcher a store with ``fs`` and ``oid_to_path``, as an object store has,
so that every file is still read with one request. A source is resolved on first use of its
output: a run that never touches an import never opens its source repository.
"""

from __future__ import annotations

import errno
import logging
import threading
from typing import TYPE_CHECKING

from dvc_stream.dvc_remotes import get_remote
from dvc_stream.errors import ManifestError
from dvc_stream.stream.remotes import RemoteUnreachable, size_connection_pool
from dvc_stream.workspace.trees import entries_of_tree, load_entries

if TYPE_CHECKING:
    from dvc.output import Output
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree
    from dvc_data.index import FileStorage
    from dvc_objects.fs.base import FileSystem

    from dvc_stream.stream.remotes import Remotes
    from dvc_stream.workspace.manifest import TrackedFile, TrackedOutput
    from dvc_stream.workspace.trees import TreeEntry

logger = logging.getLogger(__name__)


class PathStore:
    """Objects found by path (and version id) instead of by md5: an output's files on a
    cloud-versioned remote, or in an import's source."""

    mismatch: str | None = None  # why fetched bytes may not hash to their oid, for messages

    def __init__(self, fs: FileSystem, path: str):
        self.fs = fs
        self.path = path
        self._paths: dict[str, str] = {}
        self._missing: dict[str, str] = {}

    def add(self, oid: str, path: str) -> None:
        self._paths.setdefault(oid, path)

    def add_missing(self, oid: str, reason: str) -> None:
        self._missing.setdefault(oid, reason)

    def oid_to_path(self, oid: str) -> str:
        try:
            return self._paths[oid]
        except KeyError:
            reason = self._missing.get(oid, f"object {oid} has no recorded location")
            raise FileNotFoundError(errno.ENOENT, reason) from None


class Source:
    """Where one output's files come from."""

    name: str  # the remote or source, for messages

    def store(self, tracked: TrackedFile):
        raise NotImplementedError

    def entries(self, output: TrackedOutput) -> list[TreeEntry]:
        raise NotImplementedError

    def placed(self, tracked: TrackedFile) -> None:
        """``tracked`` was placed in the workspace from the cache."""

    def state_hash(self, tracked: TrackedFile) -> HashInfo | None:
        """The hash DVC's index holds for ``tracked``, where it is not its md5: what
        ``dvc checkout`` records in DVC's state for the placed file."""
        return None


class RemoteSource(Source):
    """The project's remote: objects by md5, and ``.dir`` objects for directories."""

    def __init__(self, remotes: Remotes, output: TrackedOutput):
        self._remotes = remotes
        self._remote = output.remote
        self._hash_name = output.out.hash_name
        self.name = remotes.name_for(output.remote)

    def store(self, tracked: TrackedFile | None = None):
        return self._remotes.odb(self._remote, self._hash_name)

    def entries(self, output: TrackedOutput) -> list[TreeEntry]:
        from dvc.config import NoRemoteError

        try:
            odb = None if output.out.cache.exists(output.oid) else self.store()
        except NoRemoteError:
            odb = None  # NOTE: loading the tree says so, naming the output
        except RemoteUnreachable:
            raise ManifestError(
                f"the tree of '{output.out}' ({output.oid}) is not in the cache and remote "
                f"'{self.name}' could not be reached",
                str(output.out),
            ) from None
        return load_entries(output.out, output.remote, odb=odb)


class VersionedSource(Source):
    """A cloud-versioned remote: each file by its path and the version id that the ``.dvc``
    file records (``files:``, or ``cloud:`` for a single file)."""

    def __init__(self, name: str, storage: FileStorage, output: TrackedOutput):
        self.name = name
        # NOTE: built from `files:`; from the cache for a directory never pushed to this remote
        self._tree = output.out.get_obj() if output.isdir else None
        self._store = PathStore(storage.fs, storage.path)
        for key, entry in _index_entries(output, self._tree):
            oid = entry.hash_info.value
            try:
                self._store.add(oid, storage.get(entry)[1])
            except ValueError:  # NOTE: what DVC calls "missing cloud version information"
                where = "/".join((str(output.out), *key))
                self._store.add_missing(oid, f"'{where}' was never pushed to '{name}'")

    def store(self, tracked: TrackedFile | None = None) -> PathStore:
        return self._store

    def entries(self, output: TrackedOutput) -> list[TreeEntry]:
        if self._tree is None:
            where = str(output.out)
            raise ManifestError(
                f"the tree of '{where}' is not in the cache and was never pushed to '{self.name}'",
                where,
            )
        return entries_of_tree(output.out, self._tree)


def _causes(exc: BaseException) -> str:
    """``exc`` and what caused it, joined as DVC's CLI shows an error."""
    messages = []
    while exc is not None and len(messages) < 5:
        text = str(exc)
        if text and text not in messages:
            messages.append(text)
        exc = exc.__cause__
    return " - ".join(messages)


def _index_entries(output: TrackedOutput, tree: Tree | None):
    """(key in the output, data-index entry) of each file, keyed as in ``repo.index.data``."""
    from dvc_data.index import DataIndexEntry

    out = output.out
    _, out_key = out.index_key
    if not output.isdir:
        yield (), DataIndexEntry(key=out_key, meta=out.meta, hash_info=out.hash_info)
        return
    for key, meta, hash_info in tree or ():
        if hash_info is not None and hash_info.value:
            yield key, DataIndexEntry(key=(*out_key, *key), meta=meta, hash_info=hash_info)


class Sources:
    """The source of each output, resolved on first use and kept for the run."""

    def __init__(self, repo: Repo, remotes: Remotes):
        self.repo = repo
        self.remotes = remotes
        self._sources: dict[str, Source | ManifestError] = {}
        self._lock = threading.Lock()
        self._url_entries: dict[str, list[TreeEntry]] = {}  # out path -> its files at its URL
        # Out paths of the imports whose .dvc file records no hash of the output, by kind:
        # `dvc import --no-download` (its placed files are linked into .dvc/cache/fs/) ...
        self._no_download_repo_imports: set[str] = set()
        # ... and `dvc import-url --no-download` (DVC's index holds a file's dependency hash)
        self._unhashed_url_imports: set[str] = set()

    def of(self, output: TrackedOutput) -> Source:
        found = self._sources.get(output.path)
        if found is None:
            # NOTE: one lock for every resolution: they share DVC's repo objects, and each
            # happens once per output.
            with self._lock:
                found = self._sources.get(output.path)
                if found is None:
                    found = self._sources[output.path] = self._resolve_or_error(output)
        if isinstance(found, ManifestError):
            raise found
        return found

    def entries(self, output: TrackedOutput) -> list[TreeEntry]:
        return self.of(output).entries(output)

    def store(self, tracked: TrackedFile):
        return self.of(tracked.output).store(tracked)

    def placed(self, tracked: TrackedFile) -> None:
        self.of(tracked.output).placed(tracked)

    def state_hash(self, tracked: TrackedFile) -> HashInfo | None:
        return self.of(tracked.output).state_hash(tracked)

    def name(self, output: TrackedOutput) -> str:
        return self.of(output).name

    def resolve_hash(self, out: Output) -> str | None:
        """Give an import that ``dvc pull`` reads from its source (``--no-download``, or
        ``dvc import-url --version-aware``) the hash of its files there, in memory only; if it
        cannot be found, why the import is not streamed."""
        from dvc_stream.stream import repo_imports, url_imports

        try:
            if out.stage.is_repo_import and not out.hash_info:
                repo_imports.resolve_hash(out)
                self._no_download_repo_imports.add(str(out.fs_path))
            elif not out.stage.is_repo_import:
                unhashed = not out.hash_info
                self._url_entries[str(out.fs_path)] = url_imports.resolve_hash(out)
                if unhashed:
                    self._unhashed_url_imports.add(str(out.fs_path))
        except ManifestError as exc:
            return str(exc)
        except Exception as exc:
            logger.debug("resolving the hash of '%s' failed", out, exc_info=True)
            return (
                f"'{out}' is not streamed: it is read from its source, which cannot be read: "
                f"{_causes(exc)}"
            )
        return None

    def reads_remote(self, output: TrackedOutput) -> bool:
        """Whether ``output`` is read by md5 from the project's remote, told from the
        configuration alone (``dvc import-url`` outputs are, but need not be: leave them out)."""
        if output.out.stage.is_import:
            return False
        remote = self._project_remote(output)
        return remote is None or not remote.fs.version_aware

    def _resolve_or_error(self, output: TrackedOutput) -> Source | ManifestError:
        try:
            return self._resolve(output)
        except ManifestError as exc:
            return exc
        except Exception as exc:
            logger.debug("resolving the source of '%s' failed", output.out, exc_info=True)
            where = str(output.out)
            return ManifestError(f"cannot read the source of '{where}': {_causes(exc)}", where)

    def _resolve(self, output: TrackedOutput) -> Source:
        out = output.out
        if out.stage.is_repo_import:
            from dvc_stream.stream.repo_imports import RepoImportSource

            no_download = str(out.fs_path) in self._no_download_repo_imports
            return RepoImportSource(output, self.remotes.pool_size, no_download=no_download)
        if out.stage.is_import and str(out.fs_path) in self._url_entries:
            from dvc_stream.stream.url_imports import UrlImportSource

            entries = self._url_entries[str(out.fs_path)]
            unhashed = str(out.fs_path) in self._unhashed_url_imports
            return UrlImportSource(output, entries, self.remotes.pool_size, unhashed)
        remote = self._project_remote(output)
        if remote is None or not remote.fs.version_aware:
            return RemoteSource(self.remotes, output)
        from dvc_data.index import FileStorage

        _, key = out.index_key
        storage = FileStorage(key, remote.fs, remote.path, prefix=())
        source = VersionedSource(self.remotes.name_for(output.remote), storage, output)
        size_connection_pool(source.store(), self.remotes.pool_size)
        return source

    def _project_remote(self, output: TrackedOutput):
        from dvc.config import NoRemoteError

        try:
            return get_remote(self.repo, output.remote, "stream")
        except NoRemoteError:
            return None  # NOTE: the object store says so on first use, as it always did
