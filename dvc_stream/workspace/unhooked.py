"""DVC's own work in a process that streams: it must see the real workspace.

A notebook that calls ``install_hooks()`` and then DVC's Python API (``Repo().status()``,
``Repo().add()``) runs DVC under its own hooks: DVC would list absent tracked files as present,
then fail to ``stat`` them (``dvc_data`` keeps its own reference to ``os.stat``) or fetch every
one to hash it. While DVC works on a repository (a locked operation, or a workspace index
built for ``dvc data status``), the hooks of the calling thread call straight through, as they
do for the broker's own threads. The CLI needs none of this: it removes the hooks at start.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack

# NOTE: the hooks as a program loads them under `dvc stream` (site/sitecustomize.py), and as
# `install_hooks()` does
HOOK_MODULES = ("_dvc_stream_hooks.patches", "dvc_stream.hooks.patches")


def unhooked() -> ExitStack:
    """Context manager: in this thread, the installed hooks call straight through."""
    stack = ExitStack()
    for name in HOOK_MODULES:
        hooks = sys.modules.get(name)
        if hooks is not None and hooks.installed():
            stack.enter_context(hooks.use_original())
    return stack
