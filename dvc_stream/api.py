"""Streaming inside an existing Python process: notebooks, scripts, test suites.

``install_hooks()`` runs the broker in this process, on threads, and points the hooks straight at
it: no socket, no child process. Its worker threads bypass the hooks, so DVC's own file access
never recurses into them.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dvc.repo import Repo

    from dvc_stream.stream.broker import Broker
    from dvc_stream.stream.stats import Stats

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_active: dict[str, object] = {}


def install_hooks(
    repo: str | os.PathLike | Repo = ".",
    *,
    remote: str | None = None,
    jobs: int | None = None,
    prefetch: str | None = None,
    prefetch_budget: int | None = None,
) -> Broker:
    """Make every tracked file of ``repo`` readable in this process as if it were pulled.

    Options default to the ``DVC_STREAM_PREFETCH`` and ``DVC_STREAM_PREFETCH_BUDGET`` environment
    variables, then to the ``dvc stream`` defaults. Calling it again replaces the previous broker.
    """
    from dvc.repo import Repo

    from dvc_stream.hooks import patches
    from dvc_stream.stream.broker import Broker

    with _lock:
        _shutdown_locked()
        with patches.use_original():
            owned = not isinstance(repo, Repo)
            dvc_repo = Repo(os.fspath(repo)) if owned else repo
            broker = Broker(
                dvc_repo,
                remote=remote,
                jobs=jobs,
                prefetch=prefetch,
                prefetch_budget=prefetch_budget,
                thread_context=patches.use_original,
            )
        patches.install(broker)
        _active.update(broker=broker, repo=dvc_repo if owned else None)
        return broker


def uninstall_hooks() -> Stats | None:
    """Restore every patched function and stop the broker; returns its statistics."""
    with _lock:
        return _shutdown_locked()


def _shutdown_locked() -> Stats | None:
    from dvc_stream.hooks import patches

    broker = _active.pop("broker", None)
    repo = _active.pop("repo", None)
    patches.uninstall()
    if broker is None:
        return None
    broker.close()  # type: ignore[attr-defined]
    if repo is not None:
        repo.close()  # type: ignore[attr-defined]
    return broker.stats  # type: ignore[attr-defined]


@contextmanager
def streaming(repo: str | os.PathLike | Repo = ".", **options) -> Iterator[Broker]:
    """``with streaming(): ...``: hooks installed for the block, removed after it."""
    broker = install_hooks(repo, **options)
    try:
        yield broker
    finally:
        uninstall_hooks()


def prefetch(paths) -> None:
    """Hint that these tracked files will be read soon, in this order.

    Works in-process after ``install_hooks()`` and in programs run by ``dvc stream``.
    """
    resolver = _resolver()
    if resolver is None:
        return
    resolver.prefetch([os.path.abspath(os.fspath(p)) for p in paths])


def _resolver():
    broker = _active.get("broker")
    if broker is not None:
        return broker
    import sys

    # NOTE: under `dvc stream`, the hooks were loaded at start-up under a private name.
    hooks = sys.modules.get("_dvc_stream_hooks.patches")
    return hooks._current_resolver() if hooks is not None else None
