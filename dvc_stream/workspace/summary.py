"""The end of a ``dvc stream`` run: which directories it left incomplete, and how to complete them.

Nothing needs guarding meanwhile: DVC sees these directories through their tracked trees
(``dvc_patches.py``). The summary says so, and how to make them whole.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dvc_stream.workspace.manifest import TrackedOutput

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incomplete:
    """A directory a run placed files into and left with absent files."""

    path: str  # posix, relative to the repo root
    absent: int
    total: int
    cached: bool  # every absent file's object is in the cache

    def hint(self) -> str:
        """One line for the end-of-run summary."""
        how = (
            f"`dvc checkout {self.path}` completes it from the cache"
            if self.cached
            else f"`dvc pull {self.path}` completes it"
        )
        return (
            f"'{self.path}' is incomplete ({self.absent:,} of {self.total:,} files absent): "
            f"{how}. Until then DVC keeps its absent files as tracked (`dvc add` and "
            "`dvc commit` record them, `dvc checkout` leaves them absent), and a stage that "
            "depends on it runs only under `dvc stream`."
        )


def incomplete(root: str, outputs: Iterable[TrackedOutput]) -> list[Incomplete]:
    """The directories among ``outputs`` that have absent files. Never raises: a run's result
    must not depend on its summary."""
    try:
        return [found for output in outputs if (found := _check(root, output)) is not None]
    except Exception as exc:
        logger.warning("could not list the incomplete outputs: %s", exc)
        return []


def _check(root: str, output: TrackedOutput) -> Incomplete | None:
    if not output.isdir:
        return None
    files = output.tree.files
    absent = [md5 for rel, (md5, _x) in files.items() if not _lexists(output.path, rel)]
    if not absent:
        return None
    cache = output.cache
    cached = all(os.path.exists(cache.oid_to_path(md5)) for md5 in absent)
    rel = os.path.relpath(output.path, root).replace(os.sep, "/")
    return Incomplete(rel, len(absent), len(files), cached)


def _lexists(base: str, relpath: str) -> bool:
    return os.path.lexists(os.path.join(base, relpath))
