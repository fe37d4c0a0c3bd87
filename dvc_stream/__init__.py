"""dvc-stream: use DVC-tracked data before it is pulled, and append to it without pulling.

The public API is imported lazily: this package is imported at every interpreter start by the
command bootstrap (``dvc_stream.pth``), which must not pay for importing DVC.
"""

# NOTE: not `from typing import TYPE_CHECKING`: importing typing would cost every interpreter
# of the environment several milliseconds at start-up.
TYPE_CHECKING = False

__all__ = ["append", "install_hooks", "prefetch", "streaming", "uninstall_hooks"]

_EXPORTS = {
    "install_hooks": "dvc_stream.api",
    "uninstall_hooks": "dvc_stream.api",
    "streaming": "dvc_stream.api",
    "prefetch": "dvc_stream.api",
    "append": "dvc_stream.appending.plan",
}

if TYPE_CHECKING:
    from dvc_stream.api import install_hooks, prefetch, streaming, uninstall_hooks
    from dvc_stream.appending.plan import append


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dvc_stream' has no attribute '{name}'")
    from importlib import import_module

    return getattr(import_module(_EXPORTS[name]), name)
