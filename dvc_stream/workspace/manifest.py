"""What is tracked: workspace path -> output, file object or directory, as after ``dvc pull``.

Built from the workspace's ``.dvc`` files and ``dvc.lock`` (``repo.index``), not from any git
revision. A directory output's tree is loaded on first use, from the cache or, failing that, from
its ``.dir`` object alone, and is checked before use (``trees.parse_entries``). Ancestors of
outputs are directories too, so listing ``data/`` shows ``images`` before it exists.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dvc_stream.hooks.resolver import DIR, FILE
from dvc_stream.workspace.kinds import reads_source, unstreamable
from dvc_stream.workspace.trees import load_entries

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from dvc.output import Output
    from dvc.repo import Repo
    from dvc_data.hashfile.db import HashFileDB

    from dvc_stream.workspace.trees import TreeEntry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackedFile:
    """A tracked file: where it belongs in the workspace and which object holds it."""

    path: str
    oid: str
    output: TrackedOutput
    isexec: bool = False
    size: int | None = None

    @property
    def reldir(self) -> str:
        """The posix directory of this file inside its output ("" at the top, and for a file
        output)."""
        # NOTE: ``path`` is the output's path joined with the file's relpath (see
        # ``TrackedOutput.file``); os.path.relpath would cost as much as the rest of a read.
        parent = os.path.dirname(self.path)
        return parent[len(self.output.path) + 1 :].replace(os.sep, "/")


@dataclass
class DirTree:
    """A directory output's files and the children of each of its subdirectories."""

    files: dict[str, tuple[str, bool]]  # relpath -> (md5, isexec)
    children: dict[str, dict[str, str]]  # reldir ("" for the top) -> name -> FILE or DIR
    sizes: dict[str, int] = field(default_factory=dict)  # relpath -> size, where recorded

    @classmethod
    def from_entries(cls, entries) -> DirTree:
        files: dict[str, tuple[str, bool]] = {}
        children: dict[str, dict[str, str]] = {"": {}}
        sizes: dict[str, int] = {}
        for entry in entries:
            files[entry.relpath] = (entry.md5, entry.isexec)
            if entry.size is not None:
                sizes[entry.relpath] = entry.size
            parent, _, name = entry.relpath.rpartition("/")
            children.setdefault(parent, {})[name] = FILE
            while parent:
                grand, _, dirname = parent.rpartition("/")
                siblings = children.setdefault(grand, {})
                if dirname in siblings:
                    break
                siblings[dirname] = DIR
                children.setdefault(parent, {})
                parent = grand
        return cls(files, children, sizes)


@dataclass
class TrackedOutput:
    """One output of a ``.dvc`` file or ``dvc.lock``."""

    path: str  # absolute workspace path
    out: Output = field(repr=False)
    isdir: bool
    oid: str
    mtime: float
    remote: str | None
    read_entries: Callable[[TrackedOutput], list[TreeEntry]] | None = field(
        default=None, repr=False
    )
    _tree: DirTree | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cache: HashFileDB | None = field(default=None, repr=False)

    @property
    def cache(self) -> HashFileDB:
        """The output's cache. NOTE: DVC's ``Output.cache`` checks the output's path against
        the repository's at every call (about 30 us): once per output is enough."""
        if self._cache is None:
            self._cache = self.out.cache
        return self._cache

    @property
    def tree(self) -> DirTree:
        if self._tree is None:
            with self._lock:
                if self._tree is None:
                    self._tree = DirTree.from_entries(self._load_entries())
        return self._tree

    def _load_entries(self) -> list[TreeEntry]:
        if self.read_entries is not None:
            return self.read_entries(self)
        return load_entries(self.out, self.remote)

    def file(self, relpath: str) -> TrackedFile | None:
        if not self.isdir:
            if relpath:
                return None
            return TrackedFile(self.path, self.oid, self, False, self.out.meta.size)
        tree = self.tree
        found = tree.files.get(relpath)
        if found is None:
            return None
        path = os.path.join(self.path, relpath)
        return TrackedFile(path, found[0], self, found[1], tree.sizes.get(relpath))

    def children(self, relpath: str) -> dict[str, str] | None:
        if not self.isdir:
            return None
        return self.tree.children.get(relpath)

    def files_in(self, reldir: str) -> Iterator[TrackedFile]:
        """The files directly in the directory ``reldir``, in name order."""
        prefix = f"{reldir}/" if reldir else ""
        for name, kind in sorted((self.children(reldir) or {}).items()):
            if kind == FILE and (tracked := self.file(prefix + name)) is not None:
                yield tracked


def _has_data(out: Output) -> bool:
    """False for what ``dvc pull`` has nothing to do with: outputs never produced, or not
    in the workspace (external)."""
    if not out.is_in_repo:
        return False
    if not out.use_cache or out.stage.is_import:
        return True  # NOTE: said to be unstreamable if absent, rather than ignored
    return bool(out.hash_info and out.hash_info.value)


class Manifest:
    """Every tracked output of the workspace, and the directories that lead to them."""

    def __init__(self, outputs: list[TrackedOutput], root: str, skipped: list[str] | None = None):
        self.root = root
        self.outputs = {o.path: o for o in outputs}
        self.skipped = skipped or []  # why absent outputs are not streamed, one line each
        self.ancestors: dict[str, dict[str, str]] = {}
        for output in outputs:
            path = output.path
            while path != root and path != os.path.dirname(path):
                parent = os.path.dirname(path)
                self.ancestors.setdefault(parent, {})[os.path.basename(path)] = DIR
                path = parent
        for path, output in self.outputs.items():
            if not output.isdir:
                self.ancestors[os.path.dirname(path)][os.path.basename(path)] = FILE

    @classmethod
    def from_repo(
        cls,
        repo: Repo,
        remote: str | None = None,
        read_entries: Callable[[TrackedOutput], list[TreeEntry]] | None = None,
        resolve_hash: Callable[[Output], str | None] | None = None,
    ) -> Manifest:
        """``remote`` (``-r``) overrides every output's own ``remote:``, as in ``dvc pull``;
        ``read_entries(output)`` reads a directory's tree from where its files come from;
        ``resolve_hash(out)`` gives an import that ``dvc pull`` reads from its source the hash
        of its files there, or says why it cannot."""
        outputs = []
        skipped = []
        for out in repo.index.outs:
            if not _has_data(out):
                continue
            reason = None
            resolved = resolve_hash is not None and reads_source(out)
            if resolved:
                reason = resolve_hash(out)
            reason = reason or unstreamable(out, resolved=resolved)
            if reason is not None:
                if not os.path.lexists(out.fs_path):
                    skipped.append(reason)
                continue
            stage_file = out.stage.path
            try:
                mtime = os.stat(stage_file).st_mtime
            except OSError:
                mtime = 0.0
            outputs.append(
                TrackedOutput(
                    path=os.path.abspath(out.fs_path),
                    out=out,
                    isdir=out.hash_info.isdir,
                    oid=out.hash_info.value,
                    mtime=mtime,
                    remote=remote or out.remote,
                    read_entries=read_entries,
                )
            )
        return cls(outputs, os.path.abspath(repo.root_dir), skipped)

    def owner(self, path: str) -> tuple[TrackedOutput, str] | None:
        """The output that contains ``path`` (absolute and normalized) and the posix relpath
        inside it."""
        probe = path
        while True:
            output = self.outputs.get(probe)
            if output is not None:
                # NOTE: ``probe`` is ``path`` less its last components (os.path.relpath would
                # cost as much as the rest of a lookup).
                rel = path[len(probe) + 1 :] if probe != path else ""
                return output, rel.replace(os.sep, "/")
            parent = os.path.dirname(probe)
            if parent == probe or len(parent) < len(self.root):
                return None
            probe = parent

    def file(self, path: str) -> TrackedFile | None:
        found = self.owner(path)
        return found[0].file(found[1]) if found else None

    def kind(self, path: str) -> tuple[str, TrackedOutput | None] | None:
        """``(FILE or DIR, owning output)`` of a tracked path; None if nothing is tracked there."""
        if path in self.ancestors:
            return DIR, None
        found = self.owner(path)
        if found is None:
            return None
        output, rel = found
        if not output.isdir:
            return (FILE, output) if not rel else None
        if not rel or rel in output.tree.children:
            return DIR, output
        if rel in output.tree.files:
            return FILE, output
        return None

    def listdir(self, path: str) -> dict[str, str] | None:
        names = dict(self.ancestors.get(path, {}))
        found = self.owner(path)
        if found is not None:
            children = found[0].children(found[1])
            if children is None and not names:
                return None
            names.update(children or {})
        elif not names:
            return None
        return names

    def candidate_prefixes(self) -> tuple[list[str], list[str]]:
        """Exact paths (outputs and their ancestors) and directory prefixes the hooks check."""
        exact = sorted({*self.outputs, *self.ancestors})
        prefixes = sorted(p + os.sep for p, o in self.outputs.items() if o.isdir)
        return exact, prefixes
