"""The one table of the DVC functions patched so that DVC understands a partial workspace.

Each entry replaces a function at the layer where DVC decides, so every command and the Python
API that go through it are covered (``dvc status``, ``repro``, ``exp run``, ``Repo().reproduce()``
alike):

- ``Output._get_hash_meta``, ``changed_cache``, ``workspace_status``: what a partial output or a
  dependency on one is (its view, ``view.py``), and that its absent files are not missing.
- ``Output.save``, ``commit``, ``add``: record the view, never the present files alone; a
  partial output DVC 2 wrote is refused when DVC hashes it again with DVC 3's md5.
- ``check_missing_outputs`` (the "missing data 'source'" check), ``Stage.run`` and the
  reproduction loop: a data source that is partial is not missing; a stage command never runs
  over a partial dependency outside ``dvc stream`` (``dvc repro`` refuses before its first stage,
  so nothing upstream is recommitted either), and under it the outputs the command makes are
  recorded as usual. An experiment's copy reproduced under ``dvc stream`` is served by a broker
  of its own for the loop (``stream/nested.py``).
- ``build_data_index``, ``checkout`` and dvc-data's checkout ``apply``: the workspace index of
  ``dvc data status``, ``dvc diff`` and ``dvc checkout`` (``workspace_index.py``).
- ``lock_repo`` (every locked ``Repo`` operation) and ``build_data_index``: in a process with
  its own hooks installed (a notebook), DVC works on the real workspace (``unhooked.py``).

``install`` runs through the ``dvc.cli_hooks`` entry point when DVC's CLI loads, and through
``dvc.repo_hooks`` when ``dvc.repo`` is imported (the Python API); it records every original and
is idempotent, and ``uninstall`` restores them in reverse order.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any, NamedTuple

from dvc_stream.errors import PartialRehashError, PartialWorkspaceError
from dvc_stream.workspace import entry_sizes, partial, view, workspace_index
from dvc_stream.workspace.unhooked import unhooked

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from dvc.output import Output
    from dvc.repo import Repo
    from dvc.stage import Stage

__all__ = ["PATCHES", "Patch", "install", "installed", "uninstall"]

LEGACY = "md5-dos2unix"  # DVC 2's md5, as DVC 3 names it
_saved: list[tuple[Any, str, Any]] = []  # (owner, attribute, original); in install order


class Patch(NamedTuple):
    """One entry of ``PATCHES``: ``target`` is a module or ``module:Class``;
    ``factory(original)`` returns the replacement of ``target.name``."""

    target: str
    name: str
    factory: Callable[[Any], Any]


def _get_hash_meta(original: Callable) -> Callable:
    def _get_hash_meta(self: Output):
        seen = _view(self)
        return original(self) if seen is None else (seen.meta, seen.hash_info)

    return _get_hash_meta


def _changed_cache(original: Callable) -> Callable:
    def changed_cache(self: Output, filter_info=None) -> bool:
        if not self.use_cache or not self.hash_info or partial.find(self) is None:
            return original(self, filter_info)
        # NOTE: absent files are not fetched yet: their objects need not be in the cache.
        if self.hash_info.isdir:
            return view.tracked_tree(self) is None
        return original(self, filter_info) if self.exists else False

    return changed_cache


def _workspace_status(original: Callable) -> Callable:
    def workspace_status(self: Output) -> dict[str, str]:
        if self.exists or partial.find(self) is None:
            return original(self)
        if self.changed_checksum():
            return {str(self): "modified"}
        return {} if self.hash_info else {str(self): "new"}

    return workspace_status


def _save(original: Callable) -> Callable:
    def save(self: Output) -> None:
        seen = _view(self)
        if seen is None:
            return original(self)
        self.ignore()
        # NOTE: DVC records a size beside each hash; a view of absent files gets it here only,
        # not on every status check.
        meta = entry_sizes.with_size(self, self.fs_path, seen.meta, seen.obj)
        self.hash_info, self.meta, self.obj, self.files = seen.hash_info, meta, seen.obj, None
        return None

    return save


def _commit(original: Callable) -> Callable:
    def commit(self: Output, filter_info=None, relink=True) -> None:
        seen = _view(self) if self.use_cache else None
        if seen is None:
            return original(self, filter_info=filter_info, relink=relink)
        view.store(self, seen, relink=relink)
        return None

    return commit


def _add(original: Callable) -> Callable:
    def add(self: Output, path=None, no_commit=False, relink=True):
        seen = _view(self) if path in (None, self.fs_path) else None
        if seen is None:
            return original(self, path, no_commit=no_commit, relink=relink)
        self.hash_info, self.meta, self.obj, self.files = seen.hash_info, seen.meta, seen.obj, None
        self.ignore()
        if not no_commit and self.use_cache:
            view.store(self, seen, relink=relink)
        return seen.built

    return add


def _view(item: Output) -> view.View | None:
    found = partial.find(item)
    if found is None:
        return None
    if _rehashed(item) and view.missing(found):
        raise PartialRehashError(str(item))
    return view.of(item, found)


def _rehashed(item: Output) -> bool:
    """Whether DVC moved ``item`` from DVC 2's hash to DVC 3's md5 (``update_legacy_hash_name``,
    forced by ``dvc cache migrate --dvc-files``): the tracked tree holds DVC 2's hashes, which
    would be recorded as md5s for the absent files."""
    return bool(item.hash_info) and item.hash_info.name == LEGACY and item.hash_name != LEGACY


def _check_missing_outputs(original: Callable) -> Callable:
    def check_missing_outputs(stage: Stage) -> None:
        absent = [out for out in stage.outs if not out.exists]
        if not any(partial.find(out) is not None for out in absent):
            return original(stage)
        from dvc.stage.exceptions import MissingDataSource

        missing = [str(out) for out in absent if partial.find(out) is None]
        if missing:
            raise MissingDataSource(missing)
        return None

    return check_missing_outputs


def _run(original: Callable) -> Callable:
    def run(self: Stage, *args, **kwargs) -> None:
        dry = kwargs.get("dry", args[0] if args else False)
        if not self.cmd or self.frozen or dry:
            return original(self, *args, **kwargs)
        if not partial.streaming(self.repo):
            _refuse_partial_deps(self)
        with partial.made_by_command(self.outs):
            original(self, *args, **kwargs)
        partial.release(self.repo, self.outs)
        return None

    return run


def _refuse_partial_deps(stage: Stage) -> None:
    if (name := _partial_dep(stage)) is not None:
        raise PartialWorkspaceError(name)


def _partial_dep(stage: Stage) -> str | None:
    """The first dependency of ``stage`` that is partial with files absent, if any."""
    for dep in stage.deps:
        found = partial.find(dep)
        if found is not None and view.missing(found):
            return str(dep)
        if partial.local(dep):
            for out in partial.claimed_inside(stage.repo, dep.fs_path):
                if view.missing(partial.Partial(out)):
                    return str(out)
    return None


def _reproduce(original: Callable) -> Callable:
    def _reproduce(stages: list[Stage], *args, **kwargs):
        from dvc_stream.stream import nested

        with nested.serving(stages[0].repo if stages else None):
            # NOTE: refuse before the first stage runs: a data source upstream of the refused
            # stage would otherwise be recommitted first (with an edit or another version's file).
            if stages and not partial.streaming(stages[0].repo) and not kwargs.get("dry"):
                for stage in stages:
                    if _would_run_over_partial(stage, kwargs.get("force", False)):
                        _refuse_reproducing(stage)
            return original(stages, *args, **kwargs)

    return _reproduce


def _refuse_reproducing(stage: Stage) -> None:
    """Raise as DVC's reproduction loop reports a stage that failed."""
    from dvc.exceptions import ReproductionError

    try:
        _refuse_partial_deps(stage)
    except PartialWorkspaceError as exc:
        raise ReproductionError(f"failed to reproduce {stage.addressing!r}") from exc


def _would_run_over_partial(stage: Stage, force: bool) -> bool:
    if not stage.cmd or stage.frozen or _partial_dep(stage) is None:
        return False
    return force or stage.changed()


def _build_data_index(original: Callable) -> Callable:
    def build_data_index(index, path, fs, workspace="repo", compute_hash=False, **kwargs):
        with unhooked():
            data = original(
                index, path, fs, workspace=workspace, compute_hash=compute_hash, **kwargs
            )
        if workspace == "repo" and compute_hash:
            workspace_index.fill(data, index)
        return data

    return build_data_index


def _lock_repo(original: Callable) -> Callable:
    @contextlib.contextmanager
    def lock_repo(repo: Repo) -> Iterator[None]:
        with original(repo), unhooked():
            yield

    return lock_repo


def _checkout(original: Callable) -> Callable:
    def checkout(self, *args, **kwargs):
        with workspace_index.checking_out(self) as state:
            result = original(self, *args, **kwargs)
        if state is not None:
            workspace_index.release_complete(self, state)
        return result

    return checkout


def _apply(original: Callable) -> Callable:
    def apply(diff, path, fs, *args, onerror=None, **kwargs):
        onerror = workspace_index.keep_absent(onerror)
        return original(diff, path, fs, *args, onerror=onerror, **kwargs)

    return apply


PATCHES: tuple[Patch, ...] = (
    Patch("dvc.output:Output", "_get_hash_meta", _get_hash_meta),
    Patch("dvc.output:Output", "changed_cache", _changed_cache),
    Patch("dvc.output:Output", "workspace_status", _workspace_status),
    Patch("dvc.output:Output", "save", _save),
    Patch("dvc.output:Output", "commit", _commit),
    Patch("dvc.output:Output", "add", _add),
    Patch("dvc.stage", "check_missing_outputs", _check_missing_outputs),
    Patch("dvc.stage:Stage", "run", _run),
    Patch("dvc.repo.reproduce", "_reproduce", _reproduce),
    Patch("dvc.repo.index", "build_data_index", _build_data_index),
    # NOTE: `locked` looks `lock_repo` up at each call.
    Patch("dvc.repo", "lock_repo", _lock_repo),
    # NOTE: `Repo.checkout` is bound at class creation; `dvc exp` imports the module's own.
    Patch("dvc.repo:Repo", "checkout", _checkout),
    Patch("dvc.repo.checkout", "checkout", _checkout),
    Patch("dvc_data.index.checkout", "apply", _apply),
)


def install() -> None:
    """Apply every entry of ``PATCHES``; does nothing if they are applied already."""
    if _saved:
        return
    try:
        for patch in PATCHES:
            module, _, cls = patch.target.partition(":")
            owner = importlib.import_module(module)
            if cls:
                owner = getattr(owner, cls)
            original = vars(owner)[patch.name]
            _saved.append((owner, patch.name, original))
            setattr(owner, patch.name, patch.factory(original))
    except BaseException:
        uninstall()
        raise


def uninstall() -> None:
    """Restore every original, in reverse order."""
    while _saved:
        owner, name, original = _saved.pop()
        setattr(owner, name, original)


def installed() -> bool:
    return bool(_saved)
