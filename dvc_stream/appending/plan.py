"""``dvc append``: grow a tracked directory without pulling it.

``append()`` first builds a ``_Plan``: the output, its old tree (only the ``.dir`` object is read),
the new files with their hashes, every refusal and conflict checked. Nothing is written until the
plan is complete. ``_apply()`` then stores the objects and the new tree in the cache (harmless if
anything fails later), stages the new workspace files under temporary names, rewrites the ``.dvc``
file, and only then renames the files into place. Pushing comes last; the sources are removed
(``--move``) only when everything else succeeded.
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager, suppress
from copy import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dvc.exceptions import OutputNotFoundError
from dvc.repo import Repo, lock_repo
from dvc_data.hashfile.meta import Meta
from dvc_data.hashfile.tree import Tree
from dvc_objects.fs.local import localfs

from dvc_stream.appending import sources as append_sources
from dvc_stream.appending.push import PushError, push_objects
from dvc_stream.appending.sources import NewFile
from dvc_stream.errors import AppendError
from dvc_stream.workspace import dirs, trees

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from dvc.output import Output
    from dvc.stage import Stage
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.hash_info import HashInfo


logger = logging.getLogger(__name__)


@dataclass
class AppendResult:
    """What ``append()`` did; relpaths are posix and relative to the tracked directory."""

    target: str
    dvcfile: str
    added: list[str]
    replaced: list[str]
    nfiles: int
    size: int | None
    pushed: int = 0


@dataclass
class _Plan:
    repo: Repo
    out: Output
    old_tree: Tree
    files: list[NewFile]
    replaced: list[str]
    sources: list[str]  # top-level sources, removed at the end with --move
    size: int | None
    remote: HashFileDB | None = None
    staged: list[tuple[str, str]] = field(default_factory=list)  # (tmp, dest)
    created_dirs: list[str] = field(default_factory=list)


def append(
    target: str | os.PathLike[str],
    sources: Sequence[str | os.PathLike[str]],
    *,
    repo: str | os.PathLike[str] | Repo = ".",
    dest: str | None = None,
    move: bool = False,
    force: bool = False,
    push: bool = False,
    remote: str | None = None,
    jobs: int | None = None,
) -> AppendResult:
    """Add ``sources`` (files or directories) to the tracked directory ``target``.

    ``target`` is the directory's workspace path or its ``.dvc`` file. Nothing is written unless
    every check passes. With ``push``, only the new objects and the new ``.dir`` are uploaded; if
    that fails, the ``.dvc`` file is already updated, the objects are in the local cache, and
    ``PushError`` says to run ``dvc push``.
    """
    with _open_repo(repo) as dvc_repo, dvc_repo.scm_context():
        with lock_repo(dvc_repo):
            plan = _plan(dvc_repo, target, sources, dest, force=force, push=push, remote=remote)
            _apply(plan)
        result = _result(plan)
        failure = _push(plan, result, jobs) if plan.remote is not None else None
        if move and failure is None:
            _remove_sources(plan.sources)
        _log_summary(result, pushing=push)
    if failure is not None:
        raise PushError(_push_failure_message(result, failure, move), failure.failed) from failure
    return result


@contextmanager
def _open_repo(repo: str | os.PathLike[str] | Repo) -> Iterator[Repo]:
    if isinstance(repo, Repo):
        yield repo
        return
    opened = Repo(os.fspath(repo))
    try:
        yield opened
    finally:
        opened.close()


# --- plan ---------------------------------------------------------------------------------------


def _plan(
    repo: Repo,
    target: str | os.PathLike[str],
    sources: Sequence[str | os.PathLike[str]],
    dest: str | None,
    *,
    force: bool,
    push: bool,
    remote: str | None,
) -> _Plan:
    out = _find_output(repo, os.fspath(target))
    _check_output(out)
    push_odb = _push_remote(out, remote) if push else None
    dest_parts = append_sources.dest_parts(dest)
    old_tree = _load_old_tree(out, remote)
    if not sources:
        raise AppendError("nothing to append: no sources given")
    files = append_sources.collect_sources(repo, out, [os.fspath(s) for s in sources], dest_parts)
    old = {"/".join(key): hi for key, _, hi in old_tree}
    replaced = append_sources.check_conflicts(str(out), old, files, force)
    append_sources.check_workspace(out, files, set(replaced))
    files = _hash_files(repo, out, files)
    return _Plan(
        repo=repo,
        out=out,
        old_tree=old_tree,
        files=files,
        replaced=replaced,
        sources=[os.path.abspath(os.path.expanduser(os.fspath(s))) for s in sources],
        size=_new_size(out, old, files, replaced),
        remote=push_odb,
    )


def _find_output(repo: Repo, target: str) -> Output:
    candidates = [os.path.abspath(target)]
    if not os.path.isabs(target):
        candidates.append(os.path.join(repo.root_dir, target))
    for path in dict.fromkeys(candidates):
        if path.endswith(".dvc") and os.path.isfile(path):
            return _output_of_dvcfile(repo, target, path)
        with suppress(OutputNotFoundError):
            (out,) = repo.find_outs_by_path(path)
            return out
    raise AppendError(_not_tracked_message(repo, target, candidates[0]))


def _output_of_dvcfile(repo: Repo, target: str, path: str) -> Output:
    stages = [stage for stage in repo.index.stages if stage.path == path]
    if not stages or not stages[0].outs:
        raise AppendError(f"'{target}' has no output to append to")
    dir_outs = [out for out in stages[0].outs if out.hash_info.isdir]
    if len(stages[0].outs) > 1 and len(dir_outs) != 1:
        raise AppendError(f"'{target}' has several outputs; name the directory instead")
    return dir_outs[0] if dir_outs else stages[0].outs[0]


def _not_tracked_message(repo: Repo, target: str, path: str) -> str:
    with suppress(OutputNotFoundError):
        outs = repo.find_outs_by_path(path, strict=False)
        inner = [o for o in outs if o.fs.isin(path, o.fs_path)]
        if inner:
            sub = inner[0].fs.relpath(path, inner[0].fs_path)
            return (
                f"'{target}' is inside the tracked directory '{inner[0]}'; "
                f"use `dvc append {inner[0]} --dest {sub} ...`"
            )
    return f"'{target}' is not tracked by DVC: no .dvc file has it as an output"


def _check_output(out: Output) -> None:
    from dvc.stage import PipelineStage

    stage: Stage = out.stage
    if isinstance(stage, PipelineStage):
        raise AppendError(
            f"'{out}' is an output of the pipeline stage '{stage.addressing}' in "
            f"'{stage.relpath}': `dvc repro` would overwrite the appended files"
        )
    if stage.is_import:
        raise AppendError(
            f"'{out}' is imported from '{stage.deps[0]}' by '{stage.relpath}': appending would "
            "break the import (DVC fetches it from its source, which lacks the new files, and "
            f"`dvc update` replaces it); add them to the source, then run `dvc update {out}`"
        )
    if not out.use_cache:
        raise AppendError(f"'{out}' is not cached by DVC (cache: false)")
    if not out.hash_info:
        raise AppendError(f"'{out}' has no recorded hash yet; run `dvc add {out}` first")
    if not out.hash_info.isdir:
        raise AppendError(f"'{out}' is tracked as a single file, not as a directory")
    if out.files is not None:
        raise AppendError(
            f"'{out}' is tracked with cloud versioning, which append does not support"
        )


def _push_remote(out: Output, remote: str | None) -> HashFileDB:
    if not out.can_push:
        raise AppendError(f"'{out}' has `push: false` in '{out.stage.relpath}'; cannot --push it")
    from dvc.config import NoRemoteError

    try:
        return trees.remote_odb(out, remote, "push")
    except NoRemoteError:
        raise AppendError(
            f"--push needs a remote: '{out}' has no `remote:`, no default remote is set, "
            "and -r was not given"
        ) from None


def _load_old_tree(out: Output, remote: str | None) -> Tree:
    # NOTE: a fetched .dir is not written to the cache: a refusal later in the plan must leave
    # the cache byte-identical.
    return trees.load_tree(out, remote, cache=False)


def _hash_files(repo: Repo, out: Output, files: list[NewFile]) -> list[NewFile]:
    from dvc.ui import ui
    from dvc_data.hashfile.hash import hash_file

    hashed = []
    with ui.progress(total=len(files), desc="Hashing", unit="file", leave=False) as pbar:
        for new in files:
            try:
                meta, hash_info = hash_file(new.source, localfs, out.hash_name, state=repo.state)
            except OSError as exc:
                raise AppendError(f"cannot read source file '{new.source}': {exc}") from None
            hashed.append(NewFile(new.source, new.relpath, meta.size, hash_info))
            pbar.update()
    return hashed


def _new_size(
    out: Output, old: dict[str, HashInfo], files: list[NewFile], replaced: list[str]
) -> int | None:
    size = out.meta.size if out.meta else None
    if size is None or any(new.size is None for new in files):
        return None
    size += sum(new.size or 0 for new in files)
    for relpath in replaced:
        oid = old[relpath].value
        try:
            size -= os.path.getsize(out.cache.oid_to_path(oid))
        except OSError:
            return None  # the replaced object's size is unknown without a download
    return size


# --- apply --------------------------------------------------------------------------------------


def _apply(plan: _Plan) -> None:
    cache = plan.out.cache
    _store_objects(cache, plan.files)
    tree = _build_tree(plan)
    from dvc_data.hashfile.db import add_update_tree

    add_update_tree(cache, tree)
    try:
        _stage_workspace(plan, cache)
        _dump(plan, tree)
    except BaseException:
        _discard_workspace(plan)
        raise
    _commit_workspace(plan)


def _store_objects(cache: HashFileDB, files: list[NewFile]) -> None:
    unique = {new.hash_info.value: new.source for new in files if new.hash_info}
    cache.add(list(unique.values()), localfs, list(unique))


def _build_tree(plan: _Plan) -> Tree:
    tree = Tree()
    for key, meta, hash_info in plan.old_tree:
        tree.add(key, meta, hash_info)
    for new in plan.files:
        tree.add(tuple(new.relpath.split("/")), Meta(size=new.size), new.hash_info)
    tree.digest()
    assert tree.hash_info
    tree.hash_info.name = plan.out.hash_name
    return tree


def _stage_workspace(plan: _Plan, cache: HashFileDB) -> None:
    """Link or copy the new files next to their destinations under temporary names."""
    from dvc_objects.fs import generic
    from dvc_objects.fs.utils import tmp_fname

    root = plan.out.fs_path
    for new in plan.files:
        dest = os.path.join(root, *new.relpath.split("/"))
        plan.created_dirs += dirs.make_dirs(os.path.dirname(dest))
        plan.staged.append((tmp_fname(dest), dest))
    assert all(new.hash_info for new in plan.files)
    generic.transfer(
        cache.fs,
        [cache.oid_to_path(new.hash_info.value) for new in plan.files],  # type: ignore[union-attr]
        localfs,
        [tmp for tmp, _ in plan.staged],
        links=copy(cache.cache_types),
    )


def _discard_workspace(plan: _Plan) -> None:
    for tmp, _ in plan.staged:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
    dirs.remove_created(plan.created_dirs)


def _dump(plan: _Plan, tree: Tree) -> None:
    out = plan.out
    out.hash_info = tree.hash_info
    out.obj = tree
    out.files = None
    out.meta = Meta(isdir=True, nfiles=len(tree), size=plan.size)
    out.stage.dump()


def _commit_workspace(plan: _Plan) -> None:
    for tmp, dest in plan.staged:
        os.replace(tmp, dest)
    by_dest = {dest: new.hash_info for (_, dest), new in zip(plan.staged, plan.files, strict=True)}
    plan.repo.state.save_many(((d, hi, None) for d, hi in by_dest.items()), localfs)


def _remove_sources(sources: list[str]) -> None:
    for path in sources:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


# --- push and report ----------------------------------------------------------------------------


def _push(plan: _Plan, result: AppendResult, jobs: int | None) -> PushError | None:
    from dvc.ui import ui

    assert plan.remote is not None
    oids = [new.hash_info.value for new in plan.files if new.hash_info]
    tree_oid = plan.out.hash_info.value
    with ui.progress(desc="Pushing", unit="file", leave=True) as pbar:
        try:
            result.pushed = push_objects(
                plan.out.cache, plan.remote, oids, tree_oid, jobs=jobs, callback=pbar.as_callback()
            )
        except PushError as exc:
            return exc
    return None


def _result(plan: _Plan) -> AppendResult:
    return AppendResult(
        target=str(plan.out),
        dvcfile=plan.out.stage.relpath,
        added=[new.relpath for new in plan.files if new.relpath not in set(plan.replaced)],
        replaced=list(plan.replaced),
        nfiles=plan.out.meta.nfiles or 0,
        size=plan.size,
    )


def _log_summary(result: AppendResult, *, pushing: bool) -> None:
    replaced = f" ({len(result.replaced)} replaced)" if result.replaced else ""
    count = len(result.added) + len(result.replaced)
    logger.info(
        "Appended %d file%s to %s%s: now %d files.",
        count,
        "" if count == 1 else "s",
        result.target,
        replaced,
        result.nfiles,
    )
    if pushing:
        logger.info("%d new objects pushed.", result.pushed)
    else:
        logger.info("To upload the new files, run:\n\n\tdvc push %s", result.dvcfile)


def _push_failure_message(result: AppendResult, exc: PushError, move: bool) -> str:
    kept = " The sources were not removed." if move else ""
    return (
        f"{result.dvcfile} is updated, but pushing failed: {exc}. "
        f"The new objects are in the local cache; run `dvc push {result.dvcfile}` to finish."
        f"{kept}"
    )
