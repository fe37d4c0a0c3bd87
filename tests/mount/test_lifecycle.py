"""When ``dvc stream --mount`` mounts, what, and that it always unmounts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from dvc_stream.testing.programs import spawn_stream, wait_for

from .conftest import mounts_under, shell, stream_mounted

pytestmark = pytest.mark.mount

DATA = "data/images"

READ_THEN_WAIT = r"""
import sys, time
with open(sys.argv[1], "rb") as fobj:
    fobj.read()
open(sys.argv[2], "w").close()
time.sleep(120)
"""


def test_unmounted_when_the_child_crashes(images):
    repo, dataset = images
    rel = sorted(dataset.files)[0]
    proc = shell(repo, f"cat {DATA}/{rel} > /dev/null; kill -SEGV $$", check=False)
    assert proc.returncode == 128 + signal.SIGSEGV, proc.stderr
    assert mounts_under(repo.root) == []
    assert repo.tracked_files(DATA) == {rel: dataset.files[rel]}


def test_unmounted_on_sigint(images, tmp_path):
    repo, dataset = images
    rel = sorted(dataset.files)[0]
    script, ready = tmp_path / "wait.py", tmp_path / "ready"
    script.write_text(READ_THEN_WAIT)
    proc = spawn_stream(
        repo,
        sys.executable,
        script,
        f"{DATA}/{rel}",
        ready,
        options=("--mount", "--prefetch", "none"),
        new_session=False,
    )
    try:
        wait_for(ready.exists, what="the reader", proc=proc)
        assert mounts_under(repo.root) == [str(repo.root / DATA)]
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert mounts_under(repo.root) == []
    assert repo.tracked_files(DATA) == {rel: dataset.files[rel]}


def test_nothing_is_mounted_over_a_complete_directory(images, tmp_path):
    repo, dataset = images
    repo.dvc("pull", "-q")
    proc = shell(repo, f"grep ' {repo.root}/' /proc/self/mounts; exit 0")
    assert proc.stdout == ""
    assert repo.tracked_files(DATA) == dataset.files


def test_mount_target_must_be_a_tracked_directory(images, tmp_path):
    repo, _dataset = images
    repo.add_file("data/labels.csv", b"a,b\n")
    os.remove(repo.root / "data" / "labels.csv")
    marker = tmp_path / "ran"
    for target, message in [
        ("data/nope", "--mount-target 'data/nope' is not a tracked output"),
        ("data/labels.csv", "--mount-target 'data/labels.csv' is a single file"),
    ]:
        proc = stream_mounted(
            repo, "touch", marker, options=("--mount-target", target), check=False
        )
        assert proc.returncode != 0
        assert message in proc.stderr
        assert not marker.exists()
        assert mounts_under(repo.root) == []


def test_named_target_is_mounted_even_when_complete(images, tmp_path):
    repo, dataset = images
    repo.dvc("pull", "-q")
    proc = shell(
        repo, f"grep -c ' {repo.root}/{DATA} ' /proc/self/mounts", options=("--mount-target", DATA)
    )
    assert proc.stdout.strip() == "1"
    assert repo.tracked_files(DATA) == dataset.files


def test_a_mount_target_implies_mount(images):
    repo, _dataset = images
    proc = repo.dvc(
        "stream",
        "--mount-target",
        DATA,
        "--",
        "grep",
        "-c",
        f" {repo.root}/{DATA} ",
        "/proc/self/mounts",
    )
    assert proc.stdout.strip() == "1"
    assert mounts_under(repo.root) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FUSE is looked up on Linux")
def test_without_fuse_the_error_says_what_to_install(dvc_repo, tmp_path):
    dvc_repo.make_dataset(DATA, nfiles=3, size=10, depth=0)
    dvc_repo.wipe()
    # NOTE: a PATH with git and sh only: no fusermount3
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh", "touch"):
        os.symlink(subprocess.check_output(["which", tool], text=True).strip(), bin_dir / tool)
    env = {**dvc_repo.env, "PATH": str(bin_dir)}
    marker = tmp_path / "ran"
    proc = stream_mounted(dvc_repo, "touch", marker, check=False, env=env)
    assert proc.returncode != 0
    assert "dvc stream --mount needs" in proc.stderr
    assert "apt-get install fuse3" in proc.stderr
    assert "pip install 'dvc-stream[mount]'" in proc.stderr
    assert not marker.exists()
    # hooks mode keeps working without FUSE
    read = f"open('{DATA}/f00000.bin', 'rb').read(); open('{marker}', 'w').close()"
    dvc_repo.dvc("stream", "--", sys.executable, "-c", read, env=env)
    assert marker.exists()
