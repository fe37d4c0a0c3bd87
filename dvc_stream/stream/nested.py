"""A repository reproduced inside ``dvc stream`` of another one gets a broker of its own.

``dvc exp run --temp`` and queued experiments reproduce in a copy of the workspace
(``.dvc/tmp/exps/tmp/...``), a repository of its own that shares the cache; a monorepo's script
may run ``dvc repro`` in a second project. The broker of the running ``dvc stream`` serves its own
repository only (``DVC_STREAM_ROOT``): the copy's data sources would be missing and its stages
would read nothing. So while such a repository reproduces, a second broker serves it from the
process that reproduces it (the experiment's executor, a queue worker), with the options given to
``dvc stream`` (``-r``, ``-j``, ``--prefetch``...), and its stage commands get that broker in
their environment, as ``dvc stream`` gives its command the first one. Files are fetched into the
shared cache and placed in the copy, with the same checks; the summary line says what was fetched
for it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from dvc_stream.workspace import partial

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dvc.repo import Repo

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def serving(repo: Repo | None) -> Iterator[None]:
    """For the block, serve ``repo`` if it runs inside ``dvc stream`` of another repository."""
    if repo is None or partial.streamed_root(repo) is None:
        yield
        return
    from dvc_stream.stream import run
    from dvc_stream.stream.broker import Broker
    from dvc_stream.workspace.unhooked import unhooked

    logger.debug("dvc stream: serving '%s' for its reproduction", repo.root_dir)
    broker = Broker(repo, thread_context=unhooked, **partial.stream_options())
    try:
        with (
            run.serving(broker) as address,
            run.environment(run.child_env(address, repo.root_dir)),
        ):
            yield
    finally:
        broker.close()
        from dvc.ui import ui

        ui.error_write(f"{broker.stats.summary()}, in '{repo.root_dir}'")
