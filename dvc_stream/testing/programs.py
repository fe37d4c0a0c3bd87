"""Running programs under ``dvc stream`` in tests: scripts, their JSON output, process groups."""

from __future__ import annotations

import functools
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from dvc_stream.testing.repos import DvcRepo


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def write_script(directory: str | os.PathLike[str], name: str, text: str) -> Path:
    path = Path(directory) / name
    path.write_text(text)
    return path


def last_json(proc: subprocess.CompletedProcess[str]):
    """The JSON document a program printed on its last stdout line."""
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output\nstderr:\n{proc.stderr}"
    return json.loads(lines[-1])


def stream(
    repo: DvcRepo,
    *command: str | os.PathLike[str],
    options: tuple[str, ...] = ("--prefetch", "none"),
    **kw,
) -> subprocess.CompletedProcess[str]:
    """``dvc stream [options] -- command...`` in ``repo``; ``kw`` goes to ``DvcRepo.dvc``."""
    if kw.get("env") is None:
        kw.pop("env", None)
    return repo.dvc("stream", *options, "--", *map(str, command), **kw)


def spawn_stream(
    repo: DvcRepo,
    *command: str | os.PathLike[str],
    options: tuple[str, ...] = ("--prefetch", "none"),
    new_session: bool = True,
    sigint: signal.Handlers = signal.SIG_DFL,
) -> subprocess.Popen[str]:
    """``dvc stream`` started in the background (by default in a new session, so that a test can
    signal its whole process group), with SIGINT's disposition ``sigint`` (default: the default
    action, whatever this process has: pytest run as a background job ignores SIGINT)."""
    return subprocess.Popen(
        [sys.executable, "-m", "dvc", "stream", *options, "--", *map(str, command)],
        cwd=repo.root,
        env=repo.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, sigint),
    )


def wait_for(
    condition: Callable[[], object],
    timeout: float = 60,
    what: str = "condition",
    proc: subprocess.Popen | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` or if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None:
            assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def run(
    repo: DvcRepo, *command: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A command without ``dvc stream`` (on a pulled clone, say), in ``repo``'s environment;
    fails the test unless it succeeds."""
    proc = subprocess.run(
        list(map(str, command)),
        cwd=cwd or repo.root,
        env=repo.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc
