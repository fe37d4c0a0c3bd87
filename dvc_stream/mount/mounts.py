"""Which outputs to mount, and the life of each mount: up before the command, down after it."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from dvc_stream.errors import ManifestError, MountError
from dvc_stream.mount import system
from dvc_stream.mount.view import make_view
from dvc_stream.workspace import dirs

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

    from dvc_stream.stream.broker import Broker
    from dvc_stream.workspace.manifest import Manifest, TrackedOutput

logger = logging.getLogger(__name__)

MOUNT_TIMEOUT = 10.0  # seconds to wait for a mount to go live
_LIVE: set[Mount] = set()  # unmounted at exit if a clean-up path was skipped


def select_outputs(manifest: Manifest, targets: list[str] | None) -> list[TrackedOutput]:
    """The named directory outputs, or every directory output incomplete in the workspace."""
    if targets:
        return [_named_output(manifest, target) for target in dict.fromkeys(targets)]
    selected = []
    for output in manifest.outputs.values():
        if not output.isdir:
            # NOTE: a file cannot be a mount point, and mounting its parent would shadow files
            # that are not ours; hooks still serve it to Python programs.
            logger.debug("not mounting the single-file output '%s'", output.path)
        elif _mountable(output) and _incomplete(output):
            selected.append(output)
    return selected


def _named_output(manifest: Manifest, target: str) -> TrackedOutput:
    output = manifest.outputs.get(os.path.abspath(target))
    if output is None:
        raise MountError(f"--mount-target '{target}' is not a tracked output")
    if not output.isdir:
        raise MountError(
            f"--mount-target '{target}' is a single file: only directory outputs can be mounted "
            "(Python programs still see it through the hooks)"
        )
    if not _mountable(output):
        raise MountError(
            f"--mount-target '{target}' exists in the workspace but is not a directory"
        )
    return output


def _mountable(output: TrackedOutput) -> bool:
    if os.path.lexists(output.path) and not os.path.isdir(output.path):
        logger.warning("not mounting '%s': it is not a directory in the workspace", output.path)
        return False
    return True


def _incomplete(output: TrackedOutput) -> bool:
    if not os.path.isdir(output.path):
        return True
    try:
        relpaths = list(output.tree.files)
    except ManifestError as exc:
        logger.warning("not mounting '%s': %s", output.path, exc)
        return False
    return any(not os.path.lexists(os.path.join(output.path, rel)) for rel in relpaths)


class Mount:
    """One output's view, served by libfuse on a background thread."""

    def __init__(self, fuse: ModuleType, broker: Broker, output: TrackedOutput):
        self.fuse = fuse
        self.broker = broker
        self.path = output.path
        self.output = output
        self._created: list[str] = []
        self._dir_fd = -1
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> Mount:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._created = dirs.make_dirs(self.path)
        self._dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        device = os.fstat(self._dir_fd).st_dev
        self.broker.shadow(self.path, self._dir_fd)
        view = make_view(self.fuse, self.broker, self.output, self._dir_fd)
        _LIVE.add(self)
        try:
            with system.captured_stderr() as captured, system.process_state_kept():
                self._thread = threading.Thread(
                    target=self._serve, args=(view,), name="dvc-stream-mount", daemon=True
                )
                self._thread.start()
                live = self._wait_live(device)
            if not live:
                raise MountError(f"failed to mount '{self.path}': {self._why(captured)}")
        except BaseException:
            self.stop()
            raise
        logger.debug("mounted a read-only view on '%s'", self.path)

    def _serve(self, view: object) -> None:
        try:
            self.fuse.FUSE(view, self.path, **system.fuse_options(self.broker.jobs))
        except BaseException as exc:
            self._error = exc

    def _wait_live(self, device: int) -> bool:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        assert self._thread is not None
        while time.monotonic() < deadline and self._thread.is_alive():
            if system.device_of(self.path) not in (device, None):
                return True
            time.sleep(0.01)
        return False

    def _why(self, captured: system.Captured) -> str:
        lines = captured.text.strip().splitlines()
        if lines:
            return lines[-1]
        return repr(self._error) if self._error is not None else "timed out"

    def stop(self) -> None:
        if self._dir_fd < 0:
            return
        if self._thread is not None:
            if system.is_mounted(self.path):
                system.unmount(self.path)
            self._thread.join(timeout=MOUNT_TIMEOUT)
        self.broker.shadow(self.path, None)
        os.close(self._dir_fd)
        self._dir_fd = -1
        _LIVE.discard(self)
        dirs.remove_created(self._created)
        logger.debug("unmounted '%s'", self.path)


@atexit.register
def _unmount_leftovers() -> None:
    for mount in list(_LIVE):
        with contextlib.suppress(Exception):
            mount.stop()


@contextlib.contextmanager
def mounted(broker: Broker, targets: list[str] | None = None) -> Iterator[list[str]]:
    """Mount a view on each selected output for the duration; yields their paths.

    Files fetched while mounted are placed in the workspace after every view is unmounted.
    """
    outputs = select_outputs(broker.manifest, targets)
    fuse = system.load_fuse()
    if not outputs:
        logger.info("dvc stream --mount: every tracked directory is complete; nothing to mount")
    with contextlib.ExitStack() as stack:
        stack.enter_context(broker.placement_deferred())
        for output in outputs:
            stack.enter_context(Mount(fuse, broker, output))
        yield [output.path for output in outputs]
