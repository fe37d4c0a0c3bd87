"""Ctrl-C and SIGKILL in the middle of a download: nothing partial, nothing left behind."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios
import time

import pytest

from .conftest import (
    DOWNLOADS,
    READ,
    group_members,
    kill_group,
    last_json,
    md5,
    partial_files,
    spawn_stream,
    stream,
    temp_files,
    wait_for,
    write_script,
)

BIG = 8 * 1024 * 1024

OPEN_ONE = r"""
import os, sys
with open(sys.argv[1], "w") as fobj:
    fobj.write(os.environ["DVC_STREAM_SOCKET"])
open(sys.argv[2], "rb").read()
"""

WAIT_INTERRUPTED = r"""
import sys, time
open(sys.argv[1], "w").close()
time.sleep(120)
"""


@pytest.fixture
def one_big(dvc_repo, latency_proxy):
    dataset = dvc_repo.make_dataset("data/big", nfiles=2, size=BIG, depth=0)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    rel = sorted(dataset.files)[0]
    return dvc_repo, dataset, rel


def _gets(proxy, oid: str) -> int:
    return sum(1 for method, path in proxy.request_log if method == "GET" and oid[2:] in path)


@pytest.mark.parametrize("target", ["terminal", "group", "dvc"])
def test_ctrl_c_mid_fetch(one_big, latency_proxy, tmp_path, target):
    """Ctrl-C typed in a terminal, SIGINT to the process group, SIGINT to dvc alone."""
    repo, dataset, rel = one_big
    oid = md5(dataset.files[rel])
    latency_proxy.add_fault("stall", method="GET", path_contains=oid[2:], stall_s=20, times=10)
    script = write_script(tmp_path, "open.py", OPEN_ONE)
    socket_file = tmp_path / "socket"
    command = (sys.executable, script, socket_file, f"data/big/{rel}")
    master = None
    if target == "terminal":
        master, proc = _spawn_on_terminal(repo, *command)
    else:
        proc = spawn_stream(repo, *command)
    try:
        wait_for(lambda: _gets(latency_proxy, oid) > 0, what="the GET")
        socket_dir = os.path.dirname(socket_file.read_text())
        assert os.path.isdir(socket_dir)
        start = time.monotonic()
        if target == "terminal":
            os.write(master, b"\x03")
        elif target == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        kill_group(proc)
        if master is not None:
            os.close(master)
    print(f"exit {proc.returncode} after {took:.1f}s")
    assert proc.returncode == 130, err
    assert took < 10, err
    assert group_members(proc.pid) == []
    assert not os.path.exists(socket_dir)
    assert temp_files(repo) == []
    assert partial_files(repo, "data/big", dataset.files) == []


def _spawn_on_terminal(repo, *command) -> tuple[int, subprocess.Popen]:
    """``dvc stream`` as the foreground job of a new pseudo-terminal: Ctrl-C typed there reaches
    the whole foreground process group, as in a shell."""
    master, slave = pty.openpty()

    def take_terminal() -> None:
        # NOTE: as a shell starts a foreground job: SIGINT at its default action, whatever ours.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "stream", "--prefetch", "none", "--", *map(str, command)],
        cwd=repo.root,
        env=repo.env,
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=take_terminal,
    )
    os.close(slave)
    return master, proc


def test_sigint_stops_a_background_job_of_a_script(dvc_repo, tmp_path):
    """``cmd &`` in a script starts ``dvc stream`` with SIGINT ignored; ``kill -INT`` still stops
    the command, and ``dvc stream`` exits as the command did."""
    dvc_repo.make_dataset("data/images", nfiles=2, size=100)
    ready = tmp_path / "ready"
    script = write_script(tmp_path, "wait.py", WAIT_INTERRUPTED)
    proc = spawn_stream(dvc_repo, sys.executable, script, ready, sigint=signal.SIG_IGN)
    try:
        wait_for(ready.exists, what="the command", proc=proc)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert "KeyboardInterrupt" in err
    assert proc.returncode == 130, err
    assert group_members(proc.pid) == []


def test_sigkill_mid_download_then_rerun(one_big, latency_proxy, tmp_path):
    repo, dataset, rel = one_big
    latency_proxy.bandwidth_mbit = 16  # about 4 s for the object
    script = write_script(tmp_path, "open.py", OPEN_ONE)
    path = f"data/big/{rel}"
    proc = spawn_stream(repo, sys.executable, script, tmp_path / "socket", path)
    downloads = repo.root / DOWNLOADS
    try:
        wait_for(
            lambda: any(p.stat().st_size > BIG // 8 for p in downloads.glob("*")),
            what="half a download",
        )
    finally:
        kill_group(proc)
    assert group_members(proc.pid) == []
    assert not os.path.lexists(repo.root / path)
    assert partial_files(repo, "data/big", dataset.files) == []
    assert [p.name for p in downloads.glob("*")], "the killed download left no temp file?"

    latency_proxy.bandwidth_mbit = None
    got = last_json(stream(repo, sys.executable, write_script(tmp_path, "read.py", READ), path))
    assert got[path] == ["ok", BIG, md5(dataset.files[rel])]
    assert (repo.root / path).read_bytes() == dataset.files[rel]
    assert partial_files(repo, "data/big", dataset.files) == []
    assert temp_files(repo) == []
