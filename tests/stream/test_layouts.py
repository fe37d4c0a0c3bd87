"""Other layouts: monorepos, cloud-versioned remotes, and outputs that cannot be streamed."""

from __future__ import annotations

import os

import pytest
import yaml

from dvc_stream.testing.repos import DvcRepo, make_repo

from .conftest import last_json, md5, object_gets, stream_python, write_script

WALK = r"""
import hashlib, json, os, sys
out = {}
for top, _dirs, files in os.walk(sys.argv[1]):
    for name in files:
        path = os.path.join(top, name)
        size = os.stat(path).st_size
        with open(path, "rb") as fobj:
            digest = hashlib.md5(fobj.read()).hexdigest()
        out[os.path.relpath(path, sys.argv[1]).replace(os.sep, "/")] = [size, digest]
print(json.dumps(out))
"""

EXISTS = r"""
import json, os, sys
print(json.dumps({path: os.path.lexists(path) for path in sys.argv[1:]}))
"""


def _expected(files: dict[str, bytes]) -> dict[str, list]:
    return {rel: [len(data), md5(data)] for rel, data in files.items()}


def _warnings(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]


# -- monorepos ------------------------------------------------------------------------------------


@pytest.fixture
def monorepo(tmp_path, moto_server):
    """One git repo holding two DVC projects, ``a`` and ``b`` (``dvc init --subdir``)."""
    projects = {}
    for seed, name in enumerate(("a", "b"), start=1):
        project = make_repo(tmp_path / "mono", moto_server, subdir=name)
        dataset = project.make_dataset("data/images", nfiles=8, size=200, seed=seed)
        projects[name] = (project, dataset)
    return projects


def test_subdir_project_streams_from_its_root_and_below(monorepo, tmp_path):
    project, dataset = monorepo["a"]
    clone = project.clone()
    assert clone.root != clone.git_root
    script = write_script(tmp_path, "walk.py", WALK)

    below = stream_python(clone, script, "images", cwd=clone.root / "data")
    assert last_json(below) == _expected(dataset.files)
    clone.wipe()
    at_root = stream_python(clone, script, "data/images")
    assert last_json(at_root) == _expected(dataset.files)
    assert "up to date" in clone.dvc("status").stdout


def test_two_projects_in_one_git_repo_each_stream_their_own(monorepo, tmp_path):
    (a, a_data), (b, b_data) = monorepo["a"], monorepo["b"]
    clone_a = a.clone()
    site_cache = clone_a.site_cache_dir.with_name(f"{clone_a.site_cache_dir.name}-b")
    env = {**clone_a.env, "DVC_SITE_CACHE_DIR": str(site_cache)}
    root = clone_a.git_root / "b"
    clone_b = DvcRepo(root, env, b.remote_url, b.endpoint_url, site_cache, clone_a.git_root)
    script = write_script(tmp_path, "walk.py", WALK)
    exists = write_script(tmp_path, "exists.py", EXISTS)

    assert last_json(stream_python(clone_a, script, "data/images")) == _expected(a_data.files)
    # NOTE: as `dvc pull` in a, a stream in a leaves b's data alone
    other = os.path.join("..", "b", "data", "images")
    assert last_json(stream_python(clone_a, exists, other)) == {other: False}
    assert last_json(stream_python(clone_b, script, "data/images")) == _expected(b_data.files)


# -- cloud-versioned remotes ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["version_aware", "worktree"])
@pytest.mark.heavy
def test_cloud_versioned_remote_streams_each_version(tmp_path, moto_server, latency_proxy, kind):
    repo = make_repo(tmp_path / "repo", moto_server, cloud_versioning=kind)
    first = repo.make_dataset("data/images", nfiles=6, size=150)
    repo.add_file("data/model.bin", b"model v1\n")
    old_rev = repo.git("rev-parse", "HEAD").stdout.strip()
    second = repo.make_dataset("data/images", nfiles=6, size=150, seed=7)
    assert yaml.safe_load((repo.root / "data/images.dvc").read_text())["outs"][0]["files"]
    repo.set_endpoint(latency_proxy.endpoint_url)
    script = write_script(tmp_path, "walk.py", WALK)

    clone = repo.clone()
    clone.set_endpoint(latency_proxy.endpoint_url)
    latency_proxy.reset_counters()
    assert last_json(stream_python(clone, script, "data/images")) == _expected(second.files)
    gets = [path for method, path in latency_proxy.request_log if method == "GET"]
    assert len(gets) == len(second.files) and all("versionId=" in path for path in gets)
    assert object_gets(latency_proxy.request_log) == []  # nothing read by md5

    old = repo.clone()
    old.git("checkout", "-q", old_rev)
    old.set_endpoint(latency_proxy.endpoint_url)
    assert last_json(stream_python(old, script, "data/images")) == _expected(first.files)
    read = write_script(tmp_path, "read.py", "print(open('data/model.bin').read())")
    assert stream_python(old, read).stdout == "model v1\n\n"
    assert "up to date" in old.dvc("status").stdout


def test_file_never_pushed_to_a_versioned_remote_is_said(tmp_path, moto_server):
    repo = make_repo(tmp_path / "repo", moto_server, cloud_versioning="version_aware")
    repo.add_file("data/late.bin", b"never pushed\n", push=False)
    clone = repo.clone()
    read = write_script(tmp_path, "read.py", "print(open('data/late.bin').read())")

    proc = stream_python(clone, read, check=False)

    assert proc.returncode != 0
    assert "data/late.bin" in proc.stderr and "never pushed to 'storage'" in proc.stderr
    assert not (clone.root / "data/late.bin").exists()


# -- outputs that cannot be streamed --------------------------------------------------------------


@pytest.mark.heavy
def test_cache_false_and_push_false_are_said_and_left_alone(dvc_repo, tmp_path):
    dvc_repo.make_dataset("data/images", nfiles=4, size=100)
    dvc_repo.add_file("data/private.bin", b"local only\n", push=False, commit=False)
    dvcfile = dvc_repo.root / "data/private.bin.dvc"
    text = dvcfile.read_text().replace("  path: private.bin", "  path: private.bin\n  push: false")
    dvcfile.write_text(text)
    dvc_repo.dvc("stage", "add", "-n", "report", "-O", "report.txt", "echo made > report.txt")
    dvc_repo.dvc("repro", "-q")
    dvc_repo.git("add", "dvc.yaml", "dvc.lock", "data")
    dvc_repo.commit("a push: false output and a cache: false one")
    dvc_repo.push()
    clone = dvc_repo.clone()
    exists = write_script(tmp_path, "exists.py", EXISTS)
    paths = ["report.txt", "data/private.bin", "data/images"]

    proc = stream_python(clone, exists, *paths)

    assert last_json(proc) == {"report.txt": False, "data/private.bin": False, "data/images": True}
    assert sorted(_warnings(proc)) == [
        "WARNING: 'data/private.bin' is not streamed: it has `push: false` in "
        "'data/private.bin.dvc', so no remote holds it; `dvc checkout data/private.bin` places "
        "it if the cache has it",
        "WARNING: 'report.txt' is not streamed: it has `cache: false` in 'dvc.yaml', so DVC "
        "keeps no copy of it to fetch",
    ]
    assert not (clone.root / "report.txt").exists()
    assert not (clone.root / "data/private.bin").exists()
    # present: nothing to say
    assert _warnings(stream_python(dvc_repo, exists, *paths)) == []
