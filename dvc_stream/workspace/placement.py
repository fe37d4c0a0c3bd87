"""Cache -> workspace, as ``dvc checkout`` would place a file, without ever clobbering one.

The file is linked or copied from the cache (``cache.type``) to a temporary name in
``.dvc/tmp/stream-place``, then hard-linked to its real name, which fails instead of overwriting
if the program created that file meanwhile: the local copy always wins. Only a whole cache object
is placed (``cache_objects``), and the copy must have its size: an object that another process
removes or rewrites meanwhile raises ``IncompleteObject``, for the caller to fetch it again.
Nothing half-placed is ever in the workspace, not even under a hidden name, so no listing shows
one and a killed run leaves none behind (the next run removes its stale temporary files). Only
an output on another filesystem than ``.dvc/tmp`` gets its temporary file beside the real name;
the directories that hold such files are recorded in ``.dvc/tmp``, so that the next run removes
what a killed one left there too. Placed files are recorded in DVC's state in batches, with the
inode, size and mtime they had when placed, so ``dvc status`` does not rehash them.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import uuid
from contextlib import suppress
from copy import copy
from typing import TYPE_CHECKING

from dvc_stream.workspace import cache_objects, record, scratch

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo

    from dvc_stream.workspace.manifest import TrackedFile, TrackedOutput

logger = logging.getLogger(__name__)

STATE_BATCH = 512
IN_PLACE_SUFFIX = ".dvc-stream-tmp"
IN_PLACE_RECORD = "in-place-dirs"  # <pid>.in-place-dirs: the directories of a run's in-place files


class Placer:
    def __init__(self, repo: Repo):
        self._state = repo.state
        self._root = os.path.abspath(repo.root_dir)
        self._tmp_dir = repo.tmp_dir
        self._claimed: set[str] = set()  # outputs this run has entered in the record
        self._pending: list[tuple[str, object, dict]] = []  # (path, hash_info, info when placed)
        self._lock = threading.Lock()
        self._links: dict[tuple[str, str], list[str]] = {}  # (cache, output) -> link types
        self.placed_outputs: dict[str, TrackedOutput] = {}  # path -> output placed into
        self._staging = os.path.join(repo.tmp_dir, "stream-place")
        self._in_place: set[str] = set()  # outputs a link from the staging dir cannot reach
        self._in_place_dirs: set[str] = set()  # directories listed in our record
        # NOTE: two realpaths per file were a third of placing a small file; a directory is
        # checked at its first file (a symlink made into an output meanwhile is not seen).
        self._inside: set[str] = set()  # directories checked to be inside their output
        self._record = os.path.join(self._staging, f"{os.getpid()}.{IN_PLACE_RECORD}")
        scratch.prepare(self._staging, on_stale=_remove_in_place_files)

    def place(self, tracked: TrackedFile, state_hash: HashInfo | None = None) -> bool:
        """Put ``tracked`` in the workspace from the cache; False if something is already there.
        ``state_hash``: the hash DVC's index holds for it, if not its md5, for DVC's state."""
        from dvc_data.hashfile.hash_info import HashInfo
        from dvc_objects.fs.local import localfs

        dest = tracked.path
        if os.path.lexists(dest):
            return False
        cache = tracked.output.cache
        parent, name = os.path.split(dest)
        os.makedirs(parent, exist_ok=True)
        if tracked.output.isdir and parent not in self._inside:
            _check_inside(parent, tracked.output.path)
            self._inside.add(parent)
        output = tracked.output.path
        if output in self._in_place:
            self._record_in_place_dir(parent)
            tmp = os.path.join(parent, in_place_name(name))
        else:
            tmp = scratch.new_name(self._staging)
        links = self._links_for(cache, tracked.output.path)
        try:
            copy_object(tracked, tmp, links)
            self._claim(tracked.output)
            os.link(tmp, dest, follow_symlinks=False)
            info = localfs.info(tmp)  # NOTE: `tmp` is `dest`'s inode, and ours alone
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno != errno.EXDEV or output in self._in_place:
                raise
            self._in_place.add(output)  # NOTE: another filesystem: try once more, in place
            return self.place(tracked, state_hash)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        self._remember(dest, state_hash or HashInfo(cache.hash_name, tracked.oid), info)
        self.placed_outputs.setdefault(tracked.output.path, tracked.output)
        return True

    def _claim(self, output: TrackedOutput) -> None:
        """Enter ``output`` in the partial-workspace record before its first file is placed, so
        that even a killed run leaves the record saying which version its files belong to."""
        with self._lock:
            if output.path in self._claimed:
                return
            rel = os.path.relpath(output.path, self._root).replace(os.sep, "/")
            record.claim(self._tmp_dir, rel, output.oid)
            self._claimed.add(output.path)

    def _record_in_place_dir(self, directory: str) -> None:
        """Note ``directory`` in our record before the first temporary file is made there."""
        with self._lock:
            if directory in self._in_place_dirs:
                return
            with open(self._record, "a", encoding="utf-8") as fobj:
                fobj.write(directory + "\n")
            self._in_place_dirs.add(directory)

    def _links_for(self, cache, output_path: str) -> list[str]:
        """The link types that work from ``cache`` to this output; tested once like checkout."""
        from dvc_objects.fs.generic import test_links
        from dvc_objects.fs.local import localfs

        key = (cache.path, output_path)
        links = self._links.get(key)
        if links is None:
            try:
                links = test_links(cache.cache_types, cache.fs, cache.path, localfs, output_path)
            except OSError as exc:
                logger.debug("could not test link types for '%s': %s", output_path, exc)
            links = self._links[key] = links or list(cache.cache_types)
        return copy(links)

    def _remember(self, path: str, hash_info, info: dict) -> None:
        with self._lock:
            self._pending.append((path, hash_info, info))
            if len(self._pending) >= STATE_BATCH:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        from dvc_objects.fs.local import localfs

        batch, self._pending = self._pending, []
        if batch:
            self._state.save_many(batch, localfs)


def copy_object(tracked: TrackedFile, tmp: str, links: list[str]) -> None:
    """Link or copy the whole cache object of ``tracked`` to ``tmp``."""
    from dvc_objects.fs import generic
    from dvc_objects.fs.local import localfs

    cache = tracked.output.cache
    source = cache.oid_to_path(tracked.oid)
    size = cache_objects.whole_size(cache, tracked.oid)
    if size is None:
        raise cache_objects.IncompleteObject(source)
    try:
        if links[0] == "copy":
            # NOTE: dvc-objects' copy tries a reflink first and writes through a temporary
            # file of its own; the test already showed reflinks fail here, and `tmp` is ours.
            shutil.copyfile(source, tmp)
        else:
            generic.transfer(cache.fs, source, localfs, tmp, links=links)
    except FileNotFoundError:  # removed since it was checked
        raise cache_objects.IncompleteObject(source) from None
    if os.path.getsize(tmp) != size:  # NOTE: truncated in place while it was read
        raise cache_objects.IncompleteObject(source)
    if tracked.isexec:
        cache.set_exec(tmp)


def in_place_name(name: str) -> str:
    """``.<name>.<pid>.<unique>.dvc-stream-tmp``: a hidden temporary name beside ``name``, which
    a start-up's reconcile skips and a later run can tell the writer of."""
    return f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}{IN_PLACE_SUFFIX}"


def _in_place_owner(name: str) -> str | None:
    """The pid field of a name made by ``in_place_name``; None for any other name."""
    if not name.endswith(IN_PLACE_SUFFIX):
        return None
    parts = name.removesuffix(IN_PLACE_SUFFIX).rsplit(".", 2)
    return parts[1] if len(parts) == 3 else None


def _remove_in_place_files(stale: str) -> None:
    """Given a stale file of the staging dir: if it is an exited run's record, delete the
    in-place temporary files that run made in the directories it lists."""
    pid, _, kind = os.path.basename(stale).partition(".")
    if kind != IN_PLACE_RECORD:
        return
    try:
        with open(stale, encoding="utf-8") as fobj:
            directories = set(fobj.read().splitlines())
    except FileNotFoundError:  # another run, starting now, took it
        return
    for directory in directories:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if _in_place_owner(name) == pid:
                with suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, name))


def _check_inside(parent: str, output: str) -> None:
    """Refuse to write through a symlink that leads out of the output (the output itself may be
    a symlink, e.g. to a larger disk)."""
    real_parent, real_output = os.path.realpath(parent), os.path.realpath(output)
    if real_parent != real_output and not real_parent.startswith(real_output + os.sep):
        raise PermissionError(
            errno.EACCES,
            f"dvc stream: '{parent}' leads outside the tracked directory '{output}'",
            parent,
        )
