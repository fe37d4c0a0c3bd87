"""After a version switch, the present files of an output are brought to its tracked version.

``git checkout`` changes the ``.dvc`` files, not the workspace. A run that served the files left
there for the previous version would read them as the new one's, since the local copy wins. So
at start-up, before the first request is answered, every output whose present files may hold
another version than the tracked one is reconciled by DVC's own overwrite rule (the one
``dvc checkout`` applies): a file whose current bytes are in the cache is replaced by the tracked
version's file in one rename, or removed when that version lacks it or its object is not in the
cache (it is then streamed on demand); a file whose bytes are in no cache holds the user's unsaved
change: it is kept, with one warning naming it. Absent files stay absent. An output that changed
kind goes by the same rule: a file where the tracked version has a directory is removed like any
file it lacks, and a directory where it has a file goes once no file is left in it. "The cache"
is both of DVC 3's: ``files/md5`` and the root, where outputs DVC 2 wrote keep their objects
(``md5-dos2unix``), so a switch between a version DVC 2 wrote and one DVC 3 wrote is one too
(``other_cache.py``: asked only for a file whose bytes are not in its output's own cache).

Only the present files are walked, each looked up in the tracked tree and its md5 read from DVC's
state database (hashed only when the state has no entry for it), so the cost follows the files
present, not the size of the dataset.

An output "may hold another version" when the version its present files are known to hold (the
record's claim, else what ``checked.py`` remembers) is not the tracked one, or when DVC's own
link entry for the output (rewritten by every ``dvc checkout`` that changes it) moved since. An
output with files present and neither is checked once, whoever filled it (``dvc pull``, a user).

Outputs leave the record here when they are no longer tracked, and when a check finds every
entry of the tracked tree present: DVC's usual meaning of an absent file then applies again. An
incomplete output joins it when the check removed a file, or when an absent entry was never in
the workspace (``_never_here``): a ``dvc pull`` of one version, then a ``git checkout`` of one
that adds files, leaves those files "not fetched yet", and ``dvc add`` must keep them.
"""

from __future__ import annotations

import errno
import logging
import os
from contextlib import closing, suppress
from copy import copy
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING

from dvc_stream.errors import ManifestError
from dvc_stream.workspace import checked, record, scratch
from dvc_stream.workspace.other_cache import OtherCache
from dvc_stream.workspace.placement import IN_PLACE_SUFFIX

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from dvc.repo import Repo
    from dvc_data.hashfile.db import HashFileDB

    from dvc_stream.workspace.manifest import Manifest, TrackedOutput

logger = logging.getLogger(__name__)

SCRATCH = "stream-reconcile"
MAX_NAMED = 10  # unsaved files named one per line; the rest are counted
NEVER_HERE_CHECKS = 1000  # absent entries looked up in DVC's state database, at most
OK, KEEP, REPLACE, REMOVE = "ok", "keep", "replace", "remove"


@dataclass
class Reconciled:
    """What a reconcile did, as posix paths relative to the repo root."""

    checked: list[str] = field(default_factory=list)  # outputs whose present files were checked
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[tuple[str, bool]] = field(default_factory=list)  # (file, tracked now)
    released: list[str] = field(default_factory=list)  # outputs that left the record
    claimed: list[str] = field(default_factory=list)  # outputs that entered it


def reconcile(repo: Repo, manifest: Manifest) -> Reconciled:
    """Bring the present files of every output whose version may have changed to its tracked
    version; a run that finds it already done (by another run, say) does nothing."""
    reconciler = _Reconciler(repo, manifest)
    done = Reconciled()
    todo = reconciler.pending(record.load(repo.tmp_dir), checked.load(repo.tmp_dir))
    if not todo:
        return done
    for rel, output in todo.items():
        if output is not None:
            _load_tree(rel, output)  # NOTE: may read the remote: not under the lock
    scratch.prepare(reconciler.staging)
    with record.editing(repo.tmp_dir) as claims, closing(reconciler.other):
        seen = checked.load(repo.tmp_dir)
        for rel, output in reconciler.pending(claims, seen).items():
            reconciler.settle(rel, output, claims, seen, done)
        checked.save(repo.tmp_dir, seen)
    _warn_kept(done.kept)
    return done


def hand_back(repo: Repo, outputs: Iterable[TrackedOutput]) -> None:
    """At the end of a run, for the outputs it placed files into: where the record names another
    version than the run's own (a ``git checkout`` and another run's start meanwhile), name the
    run's version again, so that the next run reconciles what this one placed since."""
    reconciler = _Reconciler(repo, None)
    mine = {reconciler.rel(o.path): o.oid for o in outputs}
    if not _stale_versions(mine, record.load(repo.tmp_dir), checked.load(repo.tmp_dir)):
        return
    try:
        with record.editing(repo.tmp_dir) as claims:
            for rel in _stale_versions(mine, claims, checked.load(repo.tmp_dir)):
                logger.debug("'%s' was reconciled to another version during this run", rel)
                claims[rel] = record.Claim(rel, mine[rel])
    except OSError as exc:
        _warn(f"could not record the version of the files this run placed: {exc}")


def _stale_versions(
    mine: dict[str, str], claims: dict[str, record.Claim], seen: dict[str, checked.Checked]
) -> list[str]:
    stale = []
    for rel, oid in mine.items():
        known = claims[rel].oid if rel in claims else seen[rel].oid if rel in seen else oid
        if known != oid:
            stale.append(rel)
    return stale


def _load_tree(rel: str, output: TrackedOutput) -> None:
    if not output.isdir:
        return
    try:
        output.tree  # noqa: B018
    except ManifestError as exc:
        raise ManifestError(
            f"cannot check the files present in '{rel}' against its tracked version: {exc}", rel
        ) from exc


class _Reconciler:
    def __init__(self, repo: Repo, manifest: Manifest | None):
        self.repo = repo
        self.root = os.path.abspath(repo.root_dir)
        outputs = manifest.outputs.values() if manifest is not None else ()
        self.outputs = {self.rel(o.path): o for o in outputs}
        self.staging = os.path.join(repo.tmp_dir, SCRATCH)
        self.other = OtherCache(repo)

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    def pending(
        self, claims: dict[str, record.Claim], seen: dict[str, checked.Checked]
    ) -> dict[str, TrackedOutput | None]:
        """Outputs to check (relpath -> output), and the untracked ones to forget (-> None)."""
        todo: dict[str, TrackedOutput | None] = {
            rel: None for rel in {*claims, *seen} if rel not in self.outputs
        }
        for rel, output in self.outputs.items():
            if self._may_differ(output, claims.get(rel), seen.get(rel)):
                todo[rel] = output
        return todo

    def _may_differ(
        self, output: TrackedOutput, claim: record.Claim | None, last: checked.Checked | None
    ) -> bool:
        if not os.path.lexists(output.path):
            return False
        if claim is not None and not output.isdir:
            return True  # NOTE: one lookup, and a placed file leaves the record once checked
        oid = claim.oid if claim is not None else last.oid if last is not None else None
        return oid != output.oid or (last.link if last else None) != self._link(output)

    def _link(self, output: TrackedOutput) -> list | None:
        """DVC's link entry for the output: ``dvc checkout`` rewrites it when it changes files."""
        links = getattr(self.repo.state, "links", None)
        if links is None:
            return None
        value = links.get(os.path.relpath(output.path, self.repo.root_dir))
        return None if value is None else list(value)

    def settle(
        self,
        rel: str,
        output: TrackedOutput | None,
        claims: dict[str, record.Claim],
        seen: dict[str, checked.Checked],
        done: Reconciled,
    ) -> None:
        """Reconcile one output and update the record (``claims``) and ``seen`` after it."""
        if output is None:
            seen.pop(rel, None)
            if claims.pop(rel, None) is not None:
                done.released.append(rel)
            return
        removed, present = self._reconcile(output, done)
        complete = len(present) == (len(output.tree.files) if output.isdir else 1)
        logger.debug("checked '%s' against %s: complete=%s", rel, output.oid, complete)
        done.checked.append(rel)
        if complete:
            if claims.pop(rel, None) is not None:
                done.released.append(rel)
        # NOTE: what we removed is absent, not deleted; and so is what was never here
        elif removed or rel in claims or self._never_here(output, present):
            if rel not in claims:
                done.claimed.append(rel)
            claims[rel] = record.Claim(rel, output.oid)
        seen[rel] = checked.Checked(output.oid, self._link(output))

    def _never_here(self, output: TrackedOutput, present: set[str]) -> bool:
        """Whether an absent entry of the tracked tree was never in this workspace, so that its
        absence is "not fetched yet" (a file new in this version: a ``git checkout`` of a grown
        dataset over a pulled one), not the user's deletion.

        DVC's state database holds an entry for every path it checked out or hashed, and
        placement saves one for every file it places; a path it has no entry for was never
        here. Without that database, or when the first ``NEVER_HERE_CHECKS`` absent entries
        were all here once (a user who deleted files), the absence keeps DVC's meaning.
        """
        hashes = getattr(self.repo.state, "hashes", None)
        if hashes is None or not output.isdir:
            return False
        paths = (os.path.join(output.path, *relpath.split("/")) for relpath in output.tree.files)
        absent = (path for path in paths if path not in present)
        return any(hashes.get(path) is None for path in islice(absent, NEVER_HERE_CHECKS))

    def _reconcile(self, output: TrackedOutput, done: Reconciled) -> tuple[bool, set[str]]:
        """Apply the overwrite rule to the present files; (removed any, the paths of the
        tracked entries present now)."""
        from dvc_data.hashfile.hash_info import HashInfo
        from dvc_objects.fs.local import localfs

        entries = dict(self._present(output))
        md5s = _hashes(self.repo.state, list(entries), output.out.hash_name)
        cache, other = output.cache, self.other.of(output.out.hash_name)
        saved, present, removed = [], set(), False
        for path, md5 in md5s.items():
            entry = entries[path]
            elsewhere = partial(self.other.holds, other, path)
            action = _decide(cache, entry, md5, elsewhere)
            if action == REPLACE and entry is not None and self._replace(path, output, *entry):
                saved.append((path, HashInfo(output.out.hash_name, entry[0]), None))
                done.replaced.append(self.rel(path))
            elif action in (REPLACE, REMOVE):
                _remove(path, output.path)
                done.removed.append(self.rel(path))
                removed = True
                continue
            elif action == KEEP:
                done.kept.append((self.rel(path), entry is not None))
            if entry is not None:
                present.add(path)
        self.repo.state.save_many(saved, localfs)
        if not output.isdir:
            _remove_empty_dirs(output.path)  # NOTE: a file that was a directory where placed
        return removed, present

    def _present(self, output: TrackedOutput) -> Iterator[tuple[str, tuple[str, bool] | None]]:
        """Every file present in the output, with its entry in the tracked version (None if it
        has none); files DVC ignores aside."""
        if not os.path.isdir(output.path):
            yield output.path, _entry(output, "")
            return
        start = len(output.path) + 1
        for top, _dirs, names in os.walk(output.path):
            for name in names:
                path = os.path.join(top, name)
                entry = _entry(output, path[start:].replace(os.sep, "/"))
                # NOTE: a tracked entry is never ignored, and asking costs a lookup per directory
                if entry is not None or not self._skipped(path, name):
                    yield path, entry

    def _skipped(self, path: str, name: str) -> bool:
        """A live run's file being placed, or a file DVC ignores (``.dvcignore``)."""
        return name.endswith(IN_PLACE_SUFFIX) or self.repo.dvcignore.is_ignored_file(path)

    def _replace(self, path: str, output: TrackedOutput, oid: str, isexec: bool) -> bool:
        """Put the tracked file in the place of ``path`` in one rename; False if it cannot be
        (the output is on another filesystem than ``.dvc/tmp``)."""
        from dvc_objects.fs import generic
        from dvc_objects.fs.local import localfs

        cache = output.cache
        tmp = scratch.new_name(self.staging)
        try:
            links = copy(cache.cache_types)
            generic.transfer(cache.fs, cache.oid_to_path(oid), localfs, tmp, links=links)
            if isexec:
                cache.set_exec(tmp)
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            return False
        finally:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
        return True


def _entry(output: TrackedOutput, relpath: str) -> tuple[str, bool] | None:
    """(md5, isexec) of ``relpath`` in the tracked version; None if it has no such file."""
    if not output.isdir:
        return (output.oid, False) if not relpath else None
    return output.tree.files.get(relpath) if relpath else None


def _decide(
    cache: HashFileDB, entry: tuple[str, bool] | None, md5: str, elsewhere: Callable[[], bool]
) -> str:
    """DVC's overwrite rule: only bytes that are in the cache may go."""
    if entry is not None and md5 == entry[0]:
        return OK
    if not cache.exists(md5) and not elsewhere():
        return KEEP
    if entry is not None and cache.exists(entry[0]):
        return REPLACE
    return REMOVE  # NOTE: the tracked file, if any, is streamed on demand


def _hashes(state, paths: list[str], name: str) -> dict[str, str]:
    """path -> md5: from DVC's state while a file is unchanged since it was recorded, else
    hashed (and recorded). Files that vanish or cannot be read are left out."""
    from dvc_data.fsutils import _localfs_info
    from dvc_data.hashfile.hash import hash_file
    from dvc_objects.fs.local import localfs

    infos = {}
    for path in paths:
        try:
            infos[path] = _localfs_info(path)  # NOTE: as DVC's own build reads them
        except OSError as exc:
            logger.debug("could not stat '%s': %s", path, exc)
    found: dict[str, str] = {}
    missing = []
    for path, _meta, hash_info in state.get_many(list(infos), localfs, infos):
        if hash_info is not None and hash_info.name == name:
            found[path] = hash_info.value
        else:
            missing.append(path)
    for path in missing:
        try:
            found[path] = hash_file(path, localfs, name, state=state, info=infos[path])[1].value
        except OSError as exc:
            logger.debug("could not hash '%s': %s", path, exc)
    return found


def _remove(path: str, top: str) -> None:
    """Remove ``path``, then the directories it leaves empty inside ``top``."""
    with suppress(FileNotFoundError):
        os.unlink(path)
    parent = os.path.dirname(path)
    while parent.startswith(top + os.sep):
        try:
            os.rmdir(parent)
        except OSError:
            return
        parent = os.path.dirname(parent)


def _remove_empty_dirs(top: str) -> None:
    """Remove the directory ``top`` if no file is left in it (a directory of files kept as
    unsaved changes stays)."""
    if not os.path.isdir(top) or os.path.islink(top):
        return
    for parent, _dirs, _names in os.walk(top, topdown=False):
        with suppress(OSError):
            os.rmdir(parent)


def _warn_kept(kept: list[tuple[str, bool]]) -> None:
    for path, tracked in kept[:MAX_NAMED]:
        if tracked:
            _warn(
                f"'{path}' has unsaved changes (its content is in no cache): kept instead of the "
                "checked-out version's file; delete it to read that version"
            )
        else:
            _warn(
                f"'{path}' has unsaved changes (its content is in no cache): kept, although the "
                "checked-out version does not track it"
            )
    if len(kept) > MAX_NAMED:
        _warn(f"{len(kept) - MAX_NAMED:,} more files with unsaved changes were kept as they are")


def _warn(message: str) -> None:
    # NOTE: DVC's CLI formats only its own loggers ("WARNING: ..."); in a notebook DVC's logger
    # may have no handler at all.
    dvc_logger = logging.getLogger("dvc")
    if dvc_logger.hasHandlers():
        dvc_logger.warning("%s", message)
    else:
        import sys

        print(f"WARNING: {message}", file=sys.stderr)
