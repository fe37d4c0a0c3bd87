"""After ``dvc stream`` a tracked directory is partly present: ``dvc add`` and ``dvc commit``
must not record it as it is (the dataset would shrink) unless forced."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import READ, last_json, stream, write_script

NFILES = 12


def _stream_two(repo, tmp_path):
    dataset = repo.make_dataset("data/images", nfiles=NFILES, size=100, depth=1, fanout=2)
    repo.wipe()
    rels = sorted(dataset.files)[:2]
    paths = [f"data/images/{rel}" for rel in rels]
    proc = stream(repo, sys.executable, write_script(tmp_path, "read.py", READ), *paths)
    assert all(v[0] == "ok" for v in last_json(proc).values())
    return repo, dataset, proc


@pytest.fixture(scope="module")
def shared(tmp_path_factory, moto_server):
    """One streamed repo for the cases that must change nothing (each checks that)."""
    from dvc_stream.testing import make_repo

    base = tmp_path_factory.mktemp("partial")
    repo = make_repo(base / "repo", moto_server)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in repo.env.items():
            mp.setenv(name, value)
        yield _stream_two(repo, base)


@pytest.fixture
def streamed(dvc_repo, tmp_path):
    return _stream_two(dvc_repo, tmp_path)


def _dvcfile(repo) -> bytes:
    return (repo.root / "data/images.dvc").read_bytes()


def _one_error(proc, command: str, missing: int = NFILES - 2) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("ERROR: 'data/images' is only partly in the workspace"), line
    assert f"({missing:,} of {NFILES:,} files missing)" in line
    assert "dvc pull data/images" in line and "dvc append" in line
    assert f"-f/--force to {command} it anyway" in line
    return line


def test_summary_says_how_to_complete(shared):
    _repo, _dataset, proc = shared
    hint = [line for line in proc.stderr.splitlines() if "incomplete" in line]
    assert len(hint) == 1, proc.stderr
    assert hint[0].startswith(f"'data/images' is incomplete ({NFILES - 2} of {NFILES} files")
    assert "`dvc pull data/images` completes it" in hint[0]
    assert "`dvc checkout` would remove it" in hint[0]
    assert "`dvc add` and `dvc commit` refuse it" in hint[0]


def test_summary_offers_checkout_when_the_cache_has_everything(dvc_repo, tmp_path):
    _stream_two(dvc_repo, tmp_path)
    dvc_repo.dvc("fetch", "-q")
    proc = stream(dvc_repo, sys.executable, "-c", "open('data/images/d1/f00001.bin', 'rb').read()")
    assert "`dvc checkout data/images` completes it from the cache" in proc.stderr, proc.stderr
    dvc_repo.dvc("checkout", "-q", "data/images")
    assert dvc_repo.dvc("add", "-q", "data/images").returncode == 0


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("add", "data/images"), "add"),
        (("add", "data/images/"), "add"),
        (("add", "--glob", "data/im*"), "add"),
        (("commit",), "commit"),
        (("commit", "data/images.dvc"), "commit"),
        (("commit", "data/images"), "commit"),
    ],
)
def test_refused(shared, args, command):
    repo, _dataset, _ = shared
    before = _dvcfile(repo)
    _one_error(repo.dvc(*args, check=False), command)
    assert _dvcfile(repo) == before
    assert len(repo.tracked_files("data/images")) == 2


@pytest.mark.parametrize("args", [("add", "-f", "data/images"), ("commit", "--force")])
def test_force_overrides(streamed, args):
    repo, _dataset, _ = streamed
    before = _dvcfile(repo)
    proc = repo.dvc(*args, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "partly" not in proc.stderr
    assert _dvcfile(repo) != before  # the dataset shrank, as asked


def test_complete_output_is_released(streamed):
    repo, dataset, _ = streamed
    repo.dvc("pull", "-q")
    assert repo.tracked_files("data/images") == dataset.files
    before = _dvcfile(repo)
    assert repo.dvc("add", "-q", "data/images").returncode == 0
    assert repo.dvc("commit", "-q").returncode == 0
    assert _dvcfile(repo) == before
    assert not (repo.root / ".dvc/tmp/stream-partial.json").exists()


def test_other_outputs_and_single_files_are_not_guarded(streamed):
    repo, _dataset, _ = streamed
    repo.make_dataset("data/other", nfiles=4, size=10, depth=0, seed=1)
    # a directory dvc stream never touched: deleting and re-adding is the user's business
    (repo.root / "data/other/f00000.bin").unlink()
    assert repo.dvc("add", "-q", "data/other").returncode == 0
    # one new file inside the partial directory is DVC's own tree edit: nothing is dropped
    (repo.root / "data/images/new.bin").write_bytes(b"new")
    proc = repo.dvc("add", "-q", "data/images/new.bin", check=False)
    assert "partly" not in proc.stderr


def test_dvc_status_after_streaming(shared):
    repo, _dataset, _ = shared
    proc = repo.dvc("status", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "data/images.dvc" in proc.stdout and "not in cache" in proc.stdout


def test_hooks_in_a_notebook_are_guarded_too(dvc_repo, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=NFILES, size=100, depth=1, fanout=2)
    dvc_repo.wipe()
    first = sorted(dataset.files)[0]
    script = write_script(
        tmp_path,
        "notebook.py",
        "import sys, dvc_stream\n"
        "dvc_stream.install_hooks('.', prefetch='none')\n"
        f"open('data/images/{first}', 'rb').read()\n"
        "dvc_stream.uninstall_hooks()\n",
    )
    subprocess.run([sys.executable, script], cwd=dvc_repo.root, env=dvc_repo.env, check=True)
    before = _dvcfile(dvc_repo)
    _one_error(dvc_repo.dvc("add", "data/images", check=False), "add", missing=NFILES - 1)
    assert _dvcfile(dvc_repo) == before


RECORD_CONCURRENTLY = """
import json, multiprocessing, shutil, sys
from dvc.repo import Repo
from dvc_stream.workspace import guard
from dvc_stream.workspace.manifest import Manifest

paths = sys.argv[1:]
for path in paths:
    shutil.rmtree(path)  # nothing placed: each output is partial
repo = Repo(".")
outputs = [o for o in Manifest.from_repo(repo).outputs.values() if o.isdir]
for output in outputs:
    output.tree  # loaded once, before the forks
fork = multiprocessing.get_context("fork")
lost = 0
for _ in range(40):
    guard._save(repo, {})
    start = fork.Event()
    procs = [fork.Process(target=lambda o: (start.wait(), guard.record(repo, [o])), args=(o,))
             for o in outputs]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join()
    lost += len(paths) - len(guard.load(repo))
print(json.dumps({"lost": lost}))
"""


def test_runs_ending_together_record_every_partial_directory(dvc_repo, tmp_path):
    """Each run rewrites the shared marker; runs ending together must not drop each other's
    entries (40 rounds of 6 processes recording at once)."""
    paths = [f"data/d{i}" for i in range(6)]
    for seed, path in enumerate(paths):
        dvc_repo.make_dataset(path, nfiles=2, size=10, depth=0, seed=seed, push=False)
    script = write_script(tmp_path, "record.py", RECORD_CONCURRENTLY)
    command = [sys.executable, script, *paths]
    proc = subprocess.run(
        command, cwd=dvc_repo.root, env=dvc_repo.env, check=True, capture_output=True, text=True
    )
    assert last_json(proc) == {"lost": 0}
