"""Odd ways of opening files, the process tree, signals, remotes and cache types."""

from __future__ import annotations

import json
import signal
import sys

import pytest

from dvc_stream.testing.programs import spawn_stream, wait_for

from .conftest import last_json, md5, stream, stream_python, write_script

READ = r"""
import hashlib, json, sys
out = {}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as fobj:
            data = fobj.read()
        out[path] = ["ok", len(data), hashlib.md5(data).hexdigest()]
    except OSError as exc:
        out[path] = [type(exc).__name__, exc.errno, str(exc)]
print(json.dumps(out))
"""

# NOTE: faults on the way from the remote and corrupted objects: tests/reliability/.


OPENERS = r"""
import hashlib, io, json, os, shutil, sys
a, b, c, d = sys.argv[1:5]
out = {}
fd = os.open(a, os.O_RDONLY)
chunks = []
while True:
    chunk = os.read(fd, 65536)
    if not chunk:
        break
    chunks.append(chunk)
os.close(fd)
out["os.open"] = hashlib.md5(b"".join(chunks)).hexdigest()
with io.FileIO(b, "r") as fobj:
    out["FileIO"] = hashlib.md5(fobj.read()).hexdigest()
shutil.copy(c, "copy.bin")
out["shutil.copy"] = hashlib.md5(open("copy.bin", "rb").read()).hexdigest()
with open(d, encoding="latin-1", newline="") as fobj:
    out["text"] = hashlib.md5(fobj.read().encode("latin-1")).hexdigest()
print(json.dumps(out))
"""


def test_other_ways_to_open(dvc_repo, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=4, size=5000, depth=0)
    dvc_repo.wipe()
    rels = sorted(dataset.files)
    script = write_script(tmp_path, "openers.py", OPENERS)
    got = last_json(stream_python(dvc_repo, script, *(f"data/images/{r}" for r in rels)))
    digests = [md5(dataset.files[r]) for r in rels]
    assert got == dict(zip(["os.open", "FileIO", "shutil.copy", "text"], digests, strict=True))


NESTED = r"""
import json, subprocess, sys
script = sys.argv[1]
paths = sys.argv[2:]
child = subprocess.run([sys.executable, script, *paths], capture_output=True, text=True)
print(child.stdout.strip().splitlines()[-1] if child.returncode == 0 else json.dumps(child.stderr))
"""


def test_grandchild_processes_are_served(dvc_repo, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=4, size=700, depth=0)
    dvc_repo.wipe()
    rel = sorted(dataset.files)[3]
    reader = write_script(tmp_path, "read.py", READ)
    nested = write_script(tmp_path, "nested.py", NESTED)
    path = f"data/images/{rel}"
    # through a shell too: the environment reaches every descendant
    got = last_json(
        stream(dvc_repo, "sh", "-c", f'"{sys.executable}" "$@"', "sh", nested, reader, path)
    )
    assert got == {path: ["ok", 700, md5(dataset.files[rel])]}


SLEEPER = r"""
import os, signal, sys, time
def bye(signum, frame):
    with open(sys.argv[1], "w") as f:
        f.write(f"got {signum}")
    sys.exit(42)
signal.signal(signal.SIGTERM, bye)
with open(sys.argv[2], "w") as f:
    f.write("ready")
time.sleep(60)
"""


def test_sigterm_is_forwarded(dvc_repo, tmp_path):
    dvc_repo.make_dataset("data/images", nfiles=2, size=10, depth=0)
    script = write_script(tmp_path, "sleeper.py", SLEEPER)
    marker, ready = tmp_path / "marker", tmp_path / "ready"
    proc = spawn_stream(
        dvc_repo, sys.executable, script, marker, ready, options=("-q",), new_session=False
    )
    try:
        wait_for(ready.exists, what="the child", proc=proc)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert marker.read_text() == f"got {signal.SIGTERM.value}"
    assert proc.returncode == 42, err


def test_remote_option(dvc_repo, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=3, size=100, depth=0)
    dvc_repo.wipe()
    rel = sorted(dataset.files)[0]
    path = f"data/images/{rel}"
    script = write_script(tmp_path, "read.py", READ)
    got = last_json(stream_python(dvc_repo, script, path, options=("-r", "storage")))
    assert got[path][0] == "ok"
    dvc_repo.wipe()
    # NOTE: with -j, no round trip is measured at start: the name is checked all the same
    for options in (("-r", "nosuchremote"), ("-r", "nosuchremote", "-j", "4")):
        proc = stream_python(dvc_repo, script, path, options=options, check=False)
        assert proc.returncode == 251, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            "ERROR: configuration error - config file error: remote 'nosuchremote' doesn't exist"
        ]
        assert proc.stdout == ""


@pytest.mark.parametrize("cache_type", ["symlink", "hardlink"])
def test_link_cache_types(dvc_repo, tmp_path, cache_type):
    dataset = dvc_repo.make_dataset("data/images", nfiles=3, size=100, depth=0)
    dvc_repo.wipe()
    dvc_repo.dvc("config", "--local", "cache.type", cache_type)
    rel = sorted(dataset.files)[0]
    path = f"data/images/{rel}"
    script = write_script(tmp_path, "read.py", READ)
    got = last_json(stream_python(dvc_repo, script, path))
    assert got[path] == ["ok", 100, md5(dataset.files[rel])]
    placed = dvc_repo.root / path
    assert placed.is_symlink() == (cache_type == "symlink")
    if cache_type == "hardlink":
        assert placed.stat().st_nlink == 2
    dvc_repo.dvc("pull", "-q")
    assert dvc_repo.tracked_files("data/images") == dataset.files
    assert dvc_repo.dvc("status", "-q", check=False).returncode == 0


def test_dvc_inside_the_command(dvc_repo, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=20, size=100, depth=0)
    dvc_repo.wipe()
    rel = sorted(dataset.files)[0]
    script = write_script(
        tmp_path,
        "inner.py",
        "import subprocess, sys\n"
        f"open('data/images/{rel}', 'rb').read()\n"
        "r = subprocess.run([sys.executable, '-m', 'dvc', 'status', '--json'],"
        " capture_output=True, text=True)\n"
        "print(r.returncode, r.stderr[-500:], file=sys.stderr)\n"
        "print(r.stdout.strip().splitlines()[-1])\n",
    )
    stats_file = tmp_path / "stats.json"
    proc = stream_python(
        dvc_repo, script, options=("--prefetch", "none", "--stats", str(stats_file))
    )
    inner = json.loads(proc.stdout.strip().splitlines()[-1])
    outside = json.loads(dvc_repo.dvc("status", "--json").stdout)
    assert inner == outside, proc.stderr
    # `dvc status` inside the command did not pull the dataset through the hooks
    assert json.loads(stats_file.read_text())["demand_files"] == 1
    assert len(dvc_repo.tracked_files("data/images")) == 1
