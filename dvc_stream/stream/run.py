"""``dvc stream``: start the broker, run the command under hooks, report, shut down.

The repo lock is never held while the command runs: the broker reads the index and the cache
without it, as ``dvc status`` does, so the command may itself run ``dvc``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dvc_stream.errors import DvcStreamError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dvc.repo import Repo

    from dvc_stream.stream.broker import Broker

logger = logging.getLogger(__name__)

HOOKS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hooks")
SITE_DIR = os.path.join(HOOKS_DIR, "site")
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
COMMAND_NOT_FOUND = 127


def child_env(
    address: str,
    root: str,
    base: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The environment that installs the hooks in every Python process of the command; with the
    broker's ``options`` that were given, for the broker of an experiment's copy (``nested``)."""
    env = dict(os.environ if base is None else base)
    from dvc_stream.hooks.protocol import ENV_HOOKS_DIR, ENV_OPTIONS, ENV_ROOT, ENV_SOCKET

    env[ENV_SOCKET] = address
    env[ENV_ROOT] = os.path.abspath(root)
    env[ENV_HOOKS_DIR] = HOOKS_DIR
    given = {name: value for name, value in (options or {}).items() if value is not None}
    if given:
        env[ENV_OPTIONS] = json.dumps(given)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SITE_DIR, env.get("PYTHONPATH")) if p)
    return env


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` holds ``env`` for the block (for what runs in this process and the
    processes it starts), and is restored after it."""
    saved = {key: os.environ.get(key) for key in env if os.environ.get(key) != env[key]}
    os.environ.update({key: env[key] for key in saved})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_streaming(
    repo: Repo,
    command: list[str],
    *,
    remote: str | None = None,
    jobs: int | None = None,
    stats_file: str | None = None,
    prefetch: str | None = None,
    prefetch_budget: int | None = None,
    mount: bool = False,
    mount_targets: list[str] | None = None,
    quiet: bool = False,
) -> int:
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise DvcStreamError("no command given: usage is `dvc stream [options] -- command ...`")
    if shutil.which(command[0]) is None:
        logger.error("command not found: '%s'", command[0])
        return COMMAND_NOT_FOUND
    if jobs is not None and jobs < 1:
        raise DvcStreamError(f"invalid number of jobs: {jobs}")
    from dvc_stream.stream.broker import Broker

    options = {
        "remote": remote,
        "jobs": jobs,
        "prefetch": prefetch,
        "prefetch_budget": prefetch_budget,
    }
    broker = Broker(repo, **options)
    try:
        with serving(broker) as address, _mounted(broker, mount, mount_targets):
            env = child_env(address, repo.root_dir, options=options)
            returncode = _run_child(command, env)
    finally:
        broker.close()
    hints = [p.hint() for p in broker.incomplete]
    _report(broker, stats_file, quiet, returncode, hints)
    # NOTE: under --mount, C readers see the view: nothing to suggest.
    c_hint = None if mount else broker.c_readers_hint()
    if c_hint:
        logger.warning("%s", c_hint)
    return returncode


@contextmanager
def serving(broker: Broker) -> Iterator[str]:
    """The broker's socket address, for the block."""
    from dvc_stream.stream.server import BrokerServer

    server = BrokerServer(broker).start()
    try:
        yield server.address
    finally:
        server.stop()


@contextmanager
def _mounted(broker: Broker, mount: bool, targets: list[str] | None) -> Iterator[None]:
    if not mount:
        yield
        return
    from dvc_stream.mount import mounted

    with mounted(broker, targets):
        yield


def _run_child(command: list[str], env: dict[str, str]) -> int:
    """Run the command; Ctrl-C reaches it through the terminal, other signals are forwarded."""
    signals = _Forwarding()
    # NOTE: a terminal's Ctrl-C already reaches the child, which shares our foreground process
    # group; forwarding it too would interrupt the child's own clean-up. Without a terminal,
    # SIGINT is forwarded, and caught before the child starts: exec then gives the child
    # SIGINT's default action even where we were started with it ignored (a background job of
    # a script), so that `kill -INT` stops the run instead of being forwarded to no effect.
    terminal = _terminal_delivers_interrupts()
    if not terminal:
        signals.take(signal.SIGINT)
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as exc:
        signals.restore()
        raise DvcStreamError(f"failed to run '{command[0]}': {exc.strerror}") from exc
    try:
        signals.forward_to(child)
        for sig in FORWARDED_SIGNALS:
            signals.take(sig)
        if terminal:
            signals.take(signal.SIGINT, signal.SIG_IGN)
        returncode = child.wait()
    finally:
        signals.restore()
    return 128 - returncode if returncode < 0 else returncode


class _Forwarding:
    """Handlers that pass signals on to the child, and the handlers they replaced."""

    def __init__(self) -> None:
        self.child: subprocess.Popen | None = None
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}

    def take(self, signum: int, handler: Any = None) -> None:
        previous = signal.signal(signum, self._forward if handler is None else handler)
        self.previous.setdefault(signum, previous)

    def forward_to(self, child: subprocess.Popen) -> None:
        """Forward from now on, and what arrived while the child was starting."""
        self.child = child
        while self.pending:
            child.send_signal(self.pending.pop(0))

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _forward(self, signum: int, _frame: object) -> None:
        if self.child is None:
            self.pending.append(signum)
        else:
            self.child.send_signal(signum)


def _terminal_delivers_interrupts() -> bool:
    try:
        return os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _report(
    broker: Broker, stats_file: str | None, quiet: bool, returncode: int, hints: list[str]
) -> None:
    if stats_file:
        broker.stats.write_json(
            stats_file,
            jobs=broker.jobs,
            prefetch=broker.prefetcher.policy,
            background_window=broker.prefetcher.background_window,
            background_bytes=broker.prefetcher.background_bytes,
            exit_code=returncode,
        )
    if quiet:
        return
    from dvc.ui import ui

    ui.error_write(broker.stats.summary())
    for hint in hints:
        ui.error_write(hint)
