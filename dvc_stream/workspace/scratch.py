"""Private scratch directories under ``.dvc/tmp`` for files on their way to the cache or the
workspace, named ``<pid>.<unique>`` so that a run can remove what a killed run left behind
without touching the files of another run still alive in the same repo."""

from __future__ import annotations

import os
import uuid
from contextlib import suppress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


def prepare(directory: str, on_stale: Callable[[str], None] | None = None) -> str:
    """Create ``directory`` and delete the files of writers that are no longer running.

    ``on_stale(path)`` sees each such file just before it is deleted.
    """
    os.makedirs(directory, exist_ok=True)
    for entry in os.scandir(directory):
        pid = entry.name.partition(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            if on_stale is not None:
                on_stale(entry.path)
            with suppress(FileNotFoundError):
                os.unlink(entry.path)
    return directory


def new_name(directory: str, label: str = "") -> str:
    """A fresh path in ``directory`` owned by this process."""
    return os.path.join(directory, f"{os.getpid()}.{label}{uuid.uuid4().hex}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
