"""DVC's cache of imported files by path (``.dvc/cache/fs/``): where ``dvc pull`` copies the files
of an import it reads from its source without a recorded hash (``--no-download``, or
``dvc import-url --version-aware``), and where DVC's own commands (``dvc checkout``,
``dvc data status``) look for them. A streamed file of such an import is linked there too, so
that those commands treat a streamed clone as a pulled one: without it, ``dvc checkout`` refuses
to remove the files as unsaved.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from dvc_stream.workspace.placement import copy_object, in_place_name

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dvc.output import Output

    from dvc_stream.workspace.manifest import TrackedFile

logger = logging.getLogger(__name__)

LINKS = ["reflink", "hardlink", "copy"]


def path_of(out: Output) -> str:
    """Where ``dvc pull`` copies the files of ``out`` (``_load_storage_from_import`` in
    ``dvc/repo/index.py``)."""
    from fsspec.utils import tokenize

    dep = out.stage.deps[0]
    if dep.meta and dep.meta.isdir:
        meta_token = dep.hash_info.value
    else:
        meta_token = tokenize(dep.meta.to_dict())
    cache = out.repo.cache.fs_cache
    return cache.fs.join(cache.path, dep.fs.protocol, tokenize(dep.fs_path, meta_token))


def link(tracked: TrackedFile, root: str) -> None:
    """Link (or copy) the cached object of ``tracked`` to its place below ``root``."""
    relpath = tracked.path[len(tracked.output.path) + 1 :]
    dest = os.path.join(root, relpath) if relpath else root
    if os.path.exists(dest):
        return
    try:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with written_in_place(dest) as tmp:
            copy_object(tracked, tmp, LINKS)
    except OSError as exc:
        logger.debug("could not link '%s' into %s: %s", tracked.path, dest, exc)


@contextmanager
def written_in_place(dest: str) -> Iterator[str]:
    """A temporary name beside ``dest`` for the block to write: renamed to ``dest`` in one step
    when the block ends, removed when anything fails, so ``dest`` is only ever whole."""
    tmp = os.path.join(os.path.dirname(dest), in_place_name(os.path.basename(dest)))
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
