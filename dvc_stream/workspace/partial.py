"""Which outputs DVC must see as partial, and the tracked version their absent files stand for.

An output is partial when dvc-stream placed files into it (it is in the record, ``record.py``),
or, inside ``dvc stream`` (the broker's socket is in the environment), when it is any tracked
output with a cache of the repository the broker serves: there, absent files are fetched on
first use, so none is missing. An experiment's copy of the workspace (``dvc exp run --temp``, a
queued run) is another repository, which that broker does not serve: it gets a broker of its own
while it reproduces (``stream/nested.py``). A partial output's absent entries are "not fetched
yet", never "deleted". A stage dependency on a path of a partial output is partial too, with that
output's tracked tree as its version. Outputs of a stage that is running its command are recorded
as usual: the command made them.
"""

from __future__ import annotations

import contextlib
import json
import os
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dvc_stream.hooks.protocol import ENV_OPTIONS, ENV_ROOT, ENV_SOCKET
from dvc_stream.workspace import record

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from dvc.output import Output
    from dvc.repo import Repo

_made_by_command: ContextVar[frozenset[int]] = ContextVar("made_by_command", default=frozenset())


@dataclass(frozen=True)
class Partial:
    """A partial output, and where an output or dependency that views it sits inside it."""

    out: Output  # the tracked output (of a ``.dvc`` file or ``dvc.lock``)
    prefix: tuple[str, ...] = ()  # () for the output itself


def streaming(repo: Repo) -> bool:
    """Whether this process runs inside ``dvc stream`` for ``repo`` (its files are fetched on
    first use)."""
    return ENV_SOCKET in os.environ and streamed_root(repo) is None


def streamed_root(repo: Repo) -> str | None:
    """Inside ``dvc stream`` for another repository than ``repo``, that repository's root."""
    root = os.environ.get(ENV_ROOT)
    if root is None or os.path.realpath(root) == os.path.realpath(repo.root_dir):
        return None
    return root


def stream_options() -> dict[str, Any]:
    """The broker options given to the running ``dvc stream`` (``remote``, ``jobs``...)."""
    return json.loads(os.environ.get(ENV_OPTIONS) or "{}")


def find(item: Output) -> Partial | None:
    """The partial output that ``item`` (an output or a dependency) views; None if none."""
    repo = item.repo
    if repo is None or id(item) in _made_by_command.get() or not local(item):
        return None
    claims = None if streaming(repo) else record.load(repo.tmp_dir)
    if claims == {}:
        return None
    if not item.IS_DEPENDENCY:
        tracked = _tracked(item) and (claims is None or relpath(repo, item.fs_path) in claims)
        return Partial(item) if tracked else None
    found = _owner(repo, item.fs_path)
    if found is None or (claims is not None and relpath(repo, found.fs_path) not in claims):
        return None
    inside = found.fs.relparts(item.fs_path, found.fs_path)
    return Partial(found, tuple(part for part in inside if part != "."))


def claimed_inside(repo: Repo, fs_path: str) -> list[Output]:
    """Recorded outputs strictly inside ``fs_path`` (a dependency on a whole tree of them)."""
    claims = record.load(repo.tmp_dir)
    if not claims:
        return []
    prefix = relpath(repo, fs_path) + "/"
    inside = [
        os.path.join(repo.root_dir, *path.split("/"))
        for path in claims
        if path.startswith(prefix) or prefix == "./"
    ]
    return [out for path in inside if (out := _owner(repo, path)) is not None]


def claimed_outputs(repo: Repo) -> list[Output]:
    """Every partial output of ``repo``'s workspace."""
    if streaming(repo):
        return [out for out in repo.index.outs if local(out) and _tracked(out)]
    claims = record.load(repo.tmp_dir)
    paths = [os.path.join(repo.root_dir, *path.split("/")) for path in claims]
    return [out for path in paths if (out := _owner(repo, path)) is not None]


@contextlib.contextmanager
def made_by_command(outs: Iterable[Output]) -> Iterator[None]:
    """Within the block, ``outs`` are recorded as usual: their stage is running its command."""
    token = _made_by_command.set(_made_by_command.get() | {id(out) for out in outs})
    try:
        yield
    finally:
        _made_by_command.reset(token)


def release(repo: Repo, outs: Iterable[Output]) -> None:
    """Take ``outs`` out of the record: they are whole again, or a command remade them."""
    claims = record.load(repo.tmp_dir)
    paths = [p for out in outs if (p := relpath(repo, out.fs_path)) in claims]
    if paths:
        record.release(repo.tmp_dir, paths)


def relpath(repo: Repo, fs_path: str) -> str:
    """The record's key of a path: posix, relative to the repo root."""
    rel = os.path.relpath(os.path.abspath(fs_path), os.path.abspath(repo.root_dir))
    return rel.replace(os.sep, "/")


def local(item: Output) -> bool:
    """Whether ``item`` is a path of this workspace."""
    return item.fs.protocol == "local" and bool(item.is_in_repo)


def _tracked(out: Output) -> bool:
    return bool(out.use_cache and out.hash_info and out.hash_info.value)


def _owner(repo: Repo, fs_path: str) -> Output | None:
    """The tracked output that holds ``fs_path`` (or is it)."""
    found = repo.index.outs_trie.shortest_prefix(repo.fs.parts(fs_path))
    if not found:
        return None
    out = found.value
    return out if local(out) and _tracked(out) else None
