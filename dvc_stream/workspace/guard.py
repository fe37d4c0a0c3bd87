"""Keeps ``dvc add`` and ``dvc commit`` from shrinking a dataset that ``dvc stream`` left partial.

After a run, every tracked directory the run placed files into but left incomplete is recorded
in a marker file under ``.dvc/tmp`` with the ``.dir`` object it was streamed from. When DVC's CLI
runs ``add`` or ``commit`` on such a directory (``commit`` without targets: on all of them) while
entries of that tree are still absent, the command is refused unless ``-f/--force`` is given:
recording the directory as it is would silently drop the absent files from the dataset. A
directory found complete drops off the marker. Files a user deletes from a directory that
``dvc stream`` never touched are not our business: only marked outputs are checked.

``install`` runs when DVC's parser is imported (entry-point group ``dvc.cli_hooks``), so this
module imports nothing heavy at the top.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from dvc.repo import Repo

    from dvc_stream.workspace.manifest import TrackedOutput

logger = logging.getLogger(__name__)

MARKER = "stream-partial.json"
MARKER_LOCK = "stream-partial.lock"
GERUNDS = {"add": "adding", "commit": "committing"}


@dataclass(frozen=True)
class Incomplete:
    """What ``record`` found for one output at the end of a run."""

    partial: Partial
    absent: int
    total: int
    cached: bool  # every absent file's object is in the cache

    def hint(self) -> str:
        """One line for the end-of-run summary: how to complete it, what not to do meanwhile."""
        path = self.partial.path
        how = (
            f"`dvc checkout {path}` completes it from the cache"
            if self.cached
            else f"`dvc pull {path}` completes it (`dvc checkout` would remove it: objects are "
            "missing from the cache)"
        )
        return (
            f"'{path}' is incomplete ({self.absent:,} of {self.total:,} files absent): {how}. "
            "Until then `dvc add` and `dvc commit` refuse it, as they would drop the absent "
            "files; `dvc append` adds new ones."
        )


@dataclass(frozen=True)
class Partial:
    """A tracked directory ``dvc stream`` left incomplete: where it is, which tree it streamed."""

    path: str  # posix, relative to the repo root
    oid: str
    tree_path: str  # the ``.dir`` object in the cache

    def missing(self, root: str) -> tuple[int, int] | None:
        """(absent entries, all entries); None if the tree can no longer be read."""
        from dvc_stream.workspace.trees import parse_entries

        try:
            with open(self.tree_path, "rb") as fobj:
                entries = parse_entries(fobj.read(), self.path)
        except Exception:
            return None
        base = os.path.join(root, self.path)
        absent = sum(not os.path.lexists(os.path.join(base, e.relpath)) for e in entries)
        return absent, len(entries)


# -- the marker --------------------------------------------------------------------------------


def _marker_path(repo: Repo) -> str:
    return os.path.join(repo.tmp_dir, MARKER)


def load(repo: Repo) -> dict[str, Partial]:
    try:
        with open(_marker_path(repo), encoding="utf-8") as fobj:
            items = json.load(fobj)
        return {i["path"]: Partial(i["path"], i["oid"], i["tree_path"]) for i in items}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def _save(repo: Repo, partials: dict[str, Partial]) -> None:
    path = _marker_path(repo)
    if not partials:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fobj:
            json.dump([p.__dict__ for p in sorted(partials.values(), key=lambda p: p.path)], fobj)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def record(repo: Repo, outputs: Iterable[TrackedOutput]) -> list[Incomplete]:
    """Mark the directories among ``outputs`` that are incomplete; unmark the complete ones.

    Never raises: a run's result must not depend on this bookkeeping."""
    try:
        with _marker_locked(repo):
            return _record(repo, outputs)
    except Exception as exc:
        logger.warning("could not record the incomplete outputs: %s", exc)
        return []


@contextlib.contextmanager
def _marker_locked(repo: Repo):
    """Serialize the marker's read-modify-write between runs that end at the same time.

    Without it, two ``dvc stream`` runs of one repo finishing together could each write back
    what they read, and one run's partial directory would go unrecorded (and unguarded).
    """
    import fcntl

    os.makedirs(repo.tmp_dir, exist_ok=True)
    fd = os.open(os.path.join(repo.tmp_dir, MARKER_LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _record(repo: Repo, outputs: Iterable[TrackedOutput]) -> list[Incomplete]:
    partials = load(repo)
    root = os.path.abspath(repo.root_dir)
    left = []
    for output in outputs:
        if not output.isdir:
            continue
        rel = os.path.relpath(output.path, root).replace(os.sep, "/")
        files = output.tree.files
        absent = [md5 for r, (md5, _x) in files.items() if not _lexists(output.path, r)]
        if absent:
            cache = output.out.cache
            partial = partials[rel] = Partial(rel, output.oid, cache.oid_to_path(output.oid))
            cached = all(os.path.exists(cache.oid_to_path(md5)) for md5 in absent)
            left.append(Incomplete(partial, len(absent), len(files), cached))
        else:
            partials.pop(rel, None)
    _save(repo, partials)
    return left


def _lexists(base: str, relpath: str) -> bool:
    return os.path.lexists(os.path.join(base, relpath))


# -- the check ---------------------------------------------------------------------------------


class PartialWorkspaceError(Exception):
    def __init__(self, partial: Partial, absent: int, total: int, command: str):
        self.partial = partial
        self.absent = absent
        self.total = total
        path = partial.path
        verb = GERUNDS[command]
        super().__init__(
            f"'{path}' is only partly in the workspace after `dvc stream` "
            f"({absent:,} of {total:,} files missing): {verb} it would drop them from the "
            f"dataset. Run `dvc pull {path}` first, or add new files with `dvc append`; "
            f"use -f/--force to {command} it anyway."
        )


def check(repo: Repo, targets: list[str] | None, command: str) -> None:
    """Raise PartialWorkspaceError for the first target (None: every marked output) that is a
    marked directory still incomplete; marked directories found complete are unmarked."""
    partials = load(repo)
    if not partials:
        return
    root = os.path.abspath(repo.root_dir)
    chosen = partials.values() if targets is None else _matching(partials, targets, root)
    complete = []
    try:
        for partial in chosen:
            counts = partial.missing(root)
            if counts is None or counts[0] == 0:
                complete.append(partial.path)
            else:
                raise PartialWorkspaceError(partial, *counts, command)
    finally:
        if complete:
            _save(repo, {k: v for k, v in partials.items() if k not in complete})


def _matching(partials: dict[str, Partial], targets: list[str], root: str) -> list[Partial]:
    found = []
    for target in targets:
        path = os.path.abspath(target)
        if path.endswith(".dvc") and not os.path.isdir(path):
            path = path.removesuffix(".dvc")
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        # NOTE: a target that contains a marked directory records it too; one inside it
        # (`dvc add data/images/new.png`) adds a single file to the tree, which is safe.
        found += [p for k, p in partials.items() if k == rel or k.startswith(f"{rel}/")]
        if rel == ".":
            found += partials.values()
    return list({p.path: p for p in found}.values())


# -- the hook into DVC's CLI -------------------------------------------------------------------


def install() -> None:
    """Wrap ``dvc add`` and ``dvc commit``; safe to call again."""
    from dvc.commands.add import CmdAdd
    from dvc.commands.commit import CmdCommit

    _wrap(CmdAdd, "add", lambda args: list(args.targets))
    _wrap(CmdCommit, "commit", lambda args: [t for t in args.targets or [] if t] or None)


def _wrap(cls: type, command: str, targets_of: Callable) -> None:
    run = cls.run
    if getattr(run, "_dvc_stream_guard", False):
        return

    def guarded_run(self) -> int:
        if not getattr(self.args, "force", False) and _refuses(self, targets_of, command):
            return 1
        return run(self)

    guarded_run._dvc_stream_guard = True  # type: ignore[attr-defined]
    cls.run = guarded_run


def _refuses(cmd, targets_of: Callable, command: str) -> bool:
    targets = targets_of(cmd.args)
    if targets and getattr(cmd.args, "glob", False):
        import glob

        targets = [m for t in targets for m in (glob.glob(t) or [t])]
    try:
        check(cmd.repo, targets, command)
    except PartialWorkspaceError as exc:
        # NOTE: DVC's CLI formats only its own loggers ("ERROR: ..."), as for DVC's messages.
        logging.getLogger("dvc").error("%s", exc)
        return True
    return False
