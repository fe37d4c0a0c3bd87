"""Pipelines over a partial data source: plain ``dvc repro``/``dvc exp run`` never record it as
it is, and under ``dvc stream`` they run with the hooks (the issue's defects 1 and 2)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import read_in_stream, stream

FIRST = "data/raw/d0/f00000.bin"
DVC = (sys.executable, "-m", "dvc")
REFUSAL = (
    "'data/raw' is only partly in the workspace: run it under `dvc stream`, or `dvc pull` it first"
)
TRACKED = ("data/raw.dvc", "dvc.lock", "count.txt")


def _snapshot(repo) -> dict[str, bytes]:
    return {name: (repo.root / name).read_bytes() for name in TRACKED}


def _present(repo) -> list[str]:
    return sorted(p.relative_to(repo.root).as_posix() for p in (repo.root / "data/raw").rglob("*"))


def _edit_count(repo) -> None:
    path = repo.root / "count.py"
    path.write_text(path.read_text() + "# changed\n")


def test_repro_keeps_a_partial_data_source(clone, tmp_path):
    read_in_stream(clone, tmp_path, FIRST)
    before = _snapshot(clone)
    proc = clone.dvc("repro", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Verifying data sources" not in proc.stdout + proc.stderr
    assert _snapshot(clone) == before
    assert _present(clone) == ["data/raw/d0", FIRST]


def test_repro_refuses_a_stage_over_a_partial_dep(clone, tmp_path):
    read_in_stream(clone, tmp_path, FIRST)
    _edit_count(clone)
    before = _snapshot(clone)
    proc = clone.dvc("repro", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors == [f"ERROR: failed to reproduce 'count': {REFUSAL}"], proc.stderr
    assert _snapshot(clone) == before


def test_repro_refuses_before_recommitting_an_edited_data_source(clone, tmp_path):
    # NOTE: the data source upstream of the refused stage holds a real change: it is not
    # recorded either, since the refusal comes before the first stage is reproduced.
    read_in_stream(clone, tmp_path, FIRST)
    (clone.root / FIRST).chmod(0o644)
    (clone.root / FIRST).write_bytes(b"edited by hand\n")
    before = _snapshot(clone)
    proc = clone.dvc("repro", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors == [f"ERROR: failed to reproduce 'count': {REFUSAL}"], proc.stderr
    assert "Verifying data sources" not in proc.stdout + proc.stderr
    assert _snapshot(clone) == before


def test_repro_refuses_a_stage_over_a_tree_that_holds_a_partial_output(clone, tmp_path):
    read_in_stream(clone, tmp_path, FIRST, "data/labels.csv")
    code = "open('all.txt', 'w').write('x')"
    clone.dvc(
        "stage",
        "add",
        "-q",
        "-n",
        "all",
        "-d",
        "data",
        "-o",
        "all.txt",
        f'{sys.executable} -c "{code}"',
    )
    before = _snapshot(clone)
    proc = clone.dvc("repro", "all", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors == [f"ERROR: failed to reproduce 'all': {REFUSAL}"], proc.stderr
    assert _snapshot(clone) == before
    assert not (clone.root / "all.txt").exists()


def test_repro_from_the_python_api_refuses_too(clone, tmp_path):
    read_in_stream(clone, tmp_path, FIRST)
    _edit_count(clone)
    before = _snapshot(clone)
    code = "from dvc.repo import Repo\nRepo('.').reproduce()\n"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=clone.root,
        env=clone.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert REFUSAL in proc.stderr
    assert _snapshot(clone) == before


def test_exp_run_keeps_a_partial_data_source(clone, tmp_path):
    read_in_stream(clone, tmp_path, FIRST)
    before = _snapshot(clone)
    proc = clone.dvc("exp", "run", check=False)
    assert proc.returncode == 0, proc.stderr
    assert _snapshot(clone) == before
    assert _present(clone) == ["data/raw/d0", FIRST]


def test_exp_run_refuses_a_stage_over_a_partial_dep(clone, tmp_path):
    read_in_stream(clone, tmp_path, FIRST)
    _edit_count(clone)
    before = _snapshot(clone)
    proc = clone.dvc("exp", "run", check=False)
    assert proc.returncode != 0
    assert REFUSAL in proc.stderr
    assert _snapshot(clone) == before


def test_stream_repro_runs_in_a_fresh_clone(clone, origin):
    before = _snapshot(clone)
    proc = stream(clone, sys.executable, "-m", "dvc", "repro", "-f", "count", check=False)
    assert proc.returncode == 0, proc.stderr
    assert (clone.root / "count.txt").read_text() == origin.expected_count()
    assert _snapshot(clone) == before  # the same data, the same dep hash
    assert _present(clone) == ["data/raw/d0", FIRST]


def test_stream_repro_records_a_changed_stage(clone, origin):
    _edit_count(clone)
    before = _snapshot(clone)
    proc = stream(clone, sys.executable, "-m", "dvc", "repro", check=False)
    assert proc.returncode == 0, proc.stderr
    assert (clone.root / "count.txt").read_text() == origin.expected_count()
    after = _snapshot(clone)
    assert after["data/raw.dvc"] == before["data/raw.dvc"]
    assert after["dvc.lock"] != before["dvc.lock"]  # count.py's new hash
    lock = after["dvc.lock"].decode()
    assert _dep_md5(before["dvc.lock"].decode()) == _dep_md5(lock)
    status = clone.dvc("status", check=False).stdout
    assert "data/raw" not in status and "count" not in status, status


@pytest.mark.parametrize("dep", [FIRST, "data/raw/d0"])
def test_stream_repro_records_a_dep_inside_a_partial_output_as_pull_does(clone, dep):
    """The stage does not read its dependency: the lock gets its hash and size all the same."""
    cmd = f"{sys.executable} -c \"open('dep.txt', 'w').write('done')\""
    clone.dvc("stage", "add", "-q", "-n", "inside", "-d", dep, "-o", "dep.txt", cmd)
    proc = stream(clone, sys.executable, "-m", "dvc", "repro", "inside", check=False)
    assert proc.returncode == 0, proc.stderr
    streamed = _stage_deps(clone, "inside")
    clone.dvc("pull", "-q")
    clone.dvc("repro", "-q", "-f", "inside")
    assert streamed == _stage_deps(clone, "inside")


def _stage_deps(repo, name: str) -> list[dict]:
    import yaml

    return yaml.safe_load((repo.root / "dvc.lock").read_text())["stages"][name]["deps"]


def test_stream_exp_run_runs_in_a_fresh_clone(clone, origin):
    _edit_count(clone)
    proc = stream(clone, sys.executable, "-m", "dvc", "exp", "run", check=False)
    assert proc.returncode == 0, proc.stderr
    assert (clone.root / "count.txt").read_text() == origin.expected_count()


def _dep_md5(lock: str) -> str:
    import yaml

    stage = yaml.safe_load(lock)["stages"]["count"]
    (dep,) = [d for d in stage["deps"] if d["path"] == "data/raw"]
    return dep["md5"]


def _mark_count(repo, mark: str) -> None:
    """``count.py`` also writes ``mark``: its output tells which run made it."""
    path = repo.root / "count.py"
    path.write_text(path.read_text() + f"open('count.txt', 'a').write('{mark}\\n')\n")


def _experiment_counts(repo) -> list[str]:
    """``count.txt`` of each experiment recorded (git-tracked: in the experiment's commit), not
    of DVC's own refs (the queue's stash, the executors')."""
    refs = repo.git("for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
    ours = [ref for ref in refs if ref.split("/")[2] not in ("celery", "exec", "stash")]
    return sorted(repo.git("show", f"{ref}:count.txt").stdout for ref in ours)


def test_stream_exp_run_in_a_temporary_copy_streams_its_stages(clone, origin):
    """`dvc exp run --temp` reproduces in a copy of the workspace (`.dvc/tmp/exps/tmp/...`): a
    broker of its own serves the copy, so the stage lists and reads the data there; the
    workspace itself is not touched."""
    _mark_count(clone, "temp")
    before = _snapshot(clone)
    proc = stream(clone, sys.executable, "-m", "dvc", "exp", "run", "--temp", check=False)
    assert proc.returncode == 0, proc.stderr
    assert _experiment_counts(clone) == [origin.expected_count() + "temp\n"]
    assert "dvc stream: fetched 1 files" in proc.stdout + proc.stderr  # the copy's summary
    assert _snapshot(clone) == before
    assert _present(clone) == []


def _default_remote_elsewhere(repo) -> tuple[str, ...]:
    """Make the default remote one without the data; the options of `dvc stream -r` that has."""
    endpoint = repo.dvc("config", f"remote.{repo.remote_name}.endpointurl").stdout.strip()
    repo.dvc("remote", "add", "-d", "elsewhere", "s3://no-such-bucket/store")
    repo.dvc("remote", "modify", "elsewhere", "endpointurl", endpoint)
    return ("--prefetch", "none", "-r", repo.remote_name)


def test_stream_repro_reads_from_the_remote_given(clone, origin):
    """`dvc stream -r`: DVC's own read of the data source's tree goes there too."""
    _edit_count(clone)
    options = _default_remote_elsewhere(clone)
    proc = stream(clone, *DVC, "repro", options=options, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (clone.root / "count.txt").read_text() == origin.expected_count()


def test_stream_exp_run_in_a_temporary_copy_reads_from_the_remote_given(clone, origin):
    """`dvc stream -r` names the remote of the copy's broker too, not the copy's default."""
    _mark_count(clone, "temp")
    options = _default_remote_elsewhere(clone)
    proc = stream(clone, *DVC, "exp", "run", "--temp", options=options, check=False)
    assert proc.returncode == 0, proc.stderr
    assert _experiment_counts(clone) == [origin.expected_count() + "temp\n"]


@pytest.mark.heavy
def test_stream_queued_experiments_each_stream_in_their_copy(clone, origin, tmp_path):
    """Two queued experiments, run by DVC's queue workers under `dvc stream --run-all -j 2`: each
    copy gets its own broker and both stages read the data (before: the first was refused)."""
    for mark in ("first", "second"):
        _mark_count(clone, mark)
        clone.dvc("exp", "run", "--queue", "-q")
    # NOTE: DVC starts its queue workers as `dvc`, found on PATH; they outlive the run and keep
    # its standard streams open, so the output goes to a file, not to a pipe.
    env = {**clone.env, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.defpath])}
    log = tmp_path / "run-all.log"
    dvc = [sys.executable, "-m", "dvc"]
    try:
        with log.open("w") as out:
            proc = subprocess.run(
                [*dvc, "stream", "--", *dvc, "exp", "run", "--run-all", "-j", "2"],
                cwd=clone.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
    finally:
        clone.dvc("queue", "stop", "--kill", check=False, env=env)
    assert proc.returncode == 0, log.read_text()
    count = origin.expected_count()
    assert _experiment_counts(clone) == [f"{count}first\n", f"{count}first\nsecond\n"]
