"""Private scratch directories under ``.dvc/tmp`` for files on their way to the cache or the
workspace, named ``<pid>.<unique>`` so that a run can remove what a killed run left behind
without touching the files of another run still alive in the same repo."""

from __future__ import annotations

import os
import uuid
from contextlib import suppress


def prepare(directory: str) -> str:
    """Create ``directory`` and delete the files of writers that are no longer running."""
    os.makedirs(directory, exist_ok=True)
    for entry in os.scandir(directory):
        if owner_gone(entry.name.partition(".")[0]):
            with suppress(FileNotFoundError):
                os.unlink(entry.path)
    return directory


def owner_gone(pid: str) -> bool:
    """Whether ``pid`` (a name's pid field) is a process id, and that process has exited."""
    return pid.isdigit() and not _alive(int(pid))


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
