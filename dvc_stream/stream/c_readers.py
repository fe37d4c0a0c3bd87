"""Programs that seem to read tracked files from C, where the hooks cannot see them.

TensorFlow, OpenCV and HDF5 open files by path in C or C++: under plain hooks such a program sees
the absent tracked files in a Python listing, then fails to open them (or opens only those the
prefetcher happened to place). The hooks tell the broker which of these libraries a process had
imported when it listed or stat'ed a tracked path (``protocol.C_READERS``); an output that was
looked at that way, from which the hooks then served no read at all, and that had files missing
from the workspace, was most likely read from C: ``dvc stream`` suggests ``--mount`` once, at the
end of the run.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from dvc_stream.hooks.protocol import C_READERS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from dvc_stream.workspace.manifest import TrackedOutput


class CReaders:
    """What the hooks reported: C readers and the outputs they looked at; outputs read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modules: set[str] = set()
        self._looked_at: dict[str, TrackedOutput] = {}
        self._read: set[str] = set()  # paths of the outputs the hooks served a read from

    def looked_at(self, modules: Iterable[str], output: TrackedOutput) -> None:
        """A process with ``modules`` imported listed or stat'ed a path in ``output``."""
        with self._lock:
            self._modules.update(modules)
            self._looked_at.setdefault(output.path, output)

    def read(self, output: TrackedOutput) -> None:
        """The hooks opened a file of ``output`` for a program."""
        self._read.add(output.path)  # NOTE: one set.add, atomic: this runs for every demand

    def hint(self, missing: Callable[[TrackedOutput], bool]) -> str | None:
        """The line to show at the end, if an output looked at with a C reader loaded was never
        read through the hooks and had files ``missing`` from the workspace at the start."""
        with self._lock:
            suspects = [o for path, o in self._looked_at.items() if path not in self._read]
            modules = [name for name in C_READERS if name in self._modules]
        if not any(missing(output) for output in suspects):
            return None
        return (
            f"this program seems to read tracked files from C code ({', '.join(modules)}), "
            "which the hooks cannot see; run it with `dvc stream --mount`"
        )
