"""What ``--mount`` needs from the system: libfuse 3 through mfusepy, its options, and
unmounting."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from dvc_stream.errors import MountError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "install fuse3 (Debian/Ubuntu: apt-get install fuse3) and `pip install 'dvc-stream[mount]'`"
)
ATTR_TIMEOUT = 60  # NOTE: the view's tree and content never change during a run


def load_fuse() -> ModuleType:
    """The ``mfusepy`` module on libfuse 3, or a ``MountError`` that says what to install."""
    missing = _missing_system_parts()
    if missing:
        raise MountError(f"dvc stream --mount needs {missing}: {INSTALL_HINT}")
    # NOTE: mfusepy takes libfuse 2 when both are installed; the view is written for libfuse 3.
    saved = os.environ.get("FUSE_LIBRARY_NAME")
    if sys.platform.startswith("linux"):
        os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    try:
        import mfusepy
    except ImportError:
        raise MountError(f"dvc stream --mount needs the mfusepy package: {INSTALL_HINT}") from None
    except OSError as exc:
        raise MountError(
            f"dvc stream --mount cannot load libfuse ({exc}): {INSTALL_HINT}"
        ) from None
    finally:
        if saved is None:
            os.environ.pop("FUSE_LIBRARY_NAME", None)
    return mfusepy


def _missing_system_parts() -> str | None:
    if sys.platform == "darwin":
        return None  # NOTE: macFUSE has no /dev/fuse until loaded; importing mfusepy tells.
    if not sys.platform.startswith("linux"):
        return "Linux or macOS with FUSE"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse (the fuse kernel module, or --device /dev/fuse in a container)"
    if shutil.which("fusermount3") is None:
        return "fusermount3"
    return None


def fuse_options(jobs: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "foreground": True,
        "nothreads": False,
        "ro": True,
        "default_permissions": True,
        "fsname": "dvc-stream",
        "kernel_cache": True,  # NOTE: objects are immutable: page cache survives reopening
        "attr_timeout": ATTR_TIMEOUT,
        # NOTE: the kernel keeps the entries it found (the broker looks at the hidden directory
        # itself: Broker.present), but not the names it did not: the view answers the broker's
        # own lookups of tracked files that are not fetched yet with ENOENT.
        "entry_timeout": ATTR_TIMEOUT,
        "negative_timeout": 0,
    }
    if sys.platform.startswith("linux"):
        options["subtype"] = "dvc-stream"
        # NOTE: fusermount3 stays behind and unmounts if this process dies without doing it.
        options["auto_unmount"] = True
        options["max_threads"] = max(16, jobs + 4)  # demand fetches block a thread each
        options["max_idle_threads"] = options["max_threads"]
    return options


def device_of(path: str) -> int | None:
    try:
        return os.lstat(path).st_dev
    except OSError:
        return None


@contextlib.contextmanager
def process_state_kept() -> Iterator[None]:
    # NOTE: libfuse's fuse_main changes the whole process: it chdirs to "/" even in the
    # foreground, and takes SIGHUP and SIGTERM where they had the default action (they would
    # then end the view, not dvc). Both are put back once the view is live.
    cwd = os.open(".", os.O_RDONLY)
    try:
        yield
    finally:
        os.fchdir(cwd)
        os.close(cwd)
        _restore_default_signals()


def _restore_default_signals() -> None:
    for signum in (signal.SIGHUP, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not on the main thread
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)


class Captured:
    text = ""


@contextlib.contextmanager
def captured_stderr() -> Iterator[Captured]:
    # NOTE: libfuse and fusermount3 report mount errors on fd 2 only; the auto_unmount helper
    # also keeps this fd, and would otherwise print "not mounted" on the terminal at exit.
    # What others wrote meanwhile is replayed.
    captured = Captured()
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.text = tmp.read().decode(errors="replace")
    if captured.text:
        sys.stderr.write(captured.text)


def unmount(path: str) -> None:
    """Unmount ``path``, lazily if it is busy; a stale mount (dead server) is removed too."""
    linux = sys.platform.startswith("linux")
    command = ["fusermount3", "-u"] if linux else ["umount"]
    lazy = [*command, "-z"] if linux else ["umount", "-f"]
    for args in (command, lazy):
        proc = subprocess.run([*args, path], capture_output=True, text=True, check=False)
        if proc.returncode == 0 or not is_mounted(path):
            return
        logger.debug("'%s' failed: %s", " ".join(args), proc.stderr.strip())
    logger.warning("could not unmount '%s': run `%s %s`", path, " ".join(command), path)


def is_mounted(path: str) -> bool:
    """True if ``path`` is a mount point, even one whose server died (``stat`` fails there)."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fobj:
            points = [line.split()[1] for line in fobj]
    except OSError:
        return os.path.ismount(path)
    # NOTE: /proc/self/mounts escapes space, tab, newline and backslash in octal.
    escaped = path.translate({32: "\\040", 9: "\\011", 10: "\\012", 92: "\\134"})
    return escaped in points
