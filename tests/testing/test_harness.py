"""The harness itself: real git, real dvc CLI, moto server."""

import os
from pathlib import Path

from dvc_stream.testing.repos import dataset_layout, file_content


def test_layout_is_nested_and_deterministic():
    paths = dataset_layout(30, depth=2, fanout=3)
    assert len(set(paths)) == 30
    assert all(p.count("/") == 2 for p in paths)
    assert file_content(0, "a", 100) == file_content(0, "a", 100)
    assert file_content(0, "a", 100) != file_content(1, "a", 100)


def test_push_wipe_pull_round_trip(dvc_repo):
    ds = dvc_repo.make_dataset(nfiles=30, size=2000, depth=2, fanout=3)
    assert ds.nfiles == 30 and ds.total_size == 60_000
    assert dvc_repo.tracked_files(ds.path) == ds.files
    assert all(rel.count("/") == 2 for rel in ds.files)

    dvc_repo.wipe()
    assert not (dvc_repo.root / ds.path).exists()
    dvc_repo.dvc("pull")
    assert dvc_repo.tracked_files(ds.path) == ds.files


def test_wipe_removes_workspace_cache_and_site_cache(dvc_repo):
    ds = dvc_repo.make_dataset(nfiles=5, push=False)
    single = dvc_repo.add_file("models/model.bin", b"weights", push=False)
    dvc_repo.dvc("status")  # populates the site cache
    cache = dvc_repo.root / ".dvc" / "cache"
    assert cache.is_dir() and dvc_repo.site_cache_dir.is_dir()
    assert str(dvc_repo.site_cache_dir).startswith(str(dvc_repo.root.parent))

    dvc_repo.wipe()
    assert not (dvc_repo.root / ds.path).exists()
    assert not single.exists()
    assert not cache.exists()
    assert not dvc_repo.site_cache_dir.exists()
    assert (dvc_repo.root / f"{ds.path}.dvc").is_file()
    assert (dvc_repo.root / "models" / "model.bin.dvc").is_file()
    assert dvc_repo.git("status", "--porcelain").stdout == ""


def test_clone_pulls_identical_files(dvc_repo):
    ds = dvc_repo.make_dataset(nfiles=12, sizes=lambda i: 10 * i + 1)
    dvc_repo.add_file("model.bin", b"m" * 300)
    clone = dvc_repo.clone()
    assert clone.root != dvc_repo.root
    assert clone.site_cache_dir != dvc_repo.site_cache_dir
    assert clone.endpoint_url == dvc_repo.endpoint_url
    assert not (clone.root / ds.path).exists()

    clone.dvc("pull")
    assert clone.tracked_files(ds.path) == ds.files
    assert (clone.root / "model.bin").read_bytes() == b"m" * 300


def test_set_endpoint_is_local_only(dvc_repo):
    dvc_repo.set_endpoint("http://127.0.0.1:9")
    assert dvc_repo.endpoint_url == "http://127.0.0.1:9"
    assert "127.0.0.1:9\n" in (dvc_repo.root / ".dvc" / "config.local").read_text()
    assert dvc_repo.git("status", "--porcelain").stdout == ""


def test_failed_command_raises_with_output(dvc_repo):
    try:
        dvc_repo.dvc("pull", "no-such-target")
    except AssertionError as exc:
        assert "rc=" in str(exc) and "no-such-target" in str(exc)
    else:
        raise AssertionError("expected a failure")
    assert dvc_repo.dvc("pull", "no-such-target", check=False).returncode != 0


def test_env_is_isolated_from_user_config(dvc_repo, tmp_path):
    home = Path.home()
    for name in ("DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR", "GIT_CONFIG_GLOBAL"):
        value = Path(dvc_repo.env[name])
        assert value.is_relative_to(tmp_path), name
        assert os.environ[name] == str(value)  # in-process DVC sees the same
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        assert not Path(dvc_repo.env[name]).exists()
        assert not Path(dvc_repo.env[name]).is_relative_to(home / ".aws")
    assert dvc_repo.env["AWS_ACCESS_KEY_ID"] == "testing"
    assert dvc_repo.env["DVC_NO_ANALYTICS"] == "1"
    assert dvc_repo.env["GIT_CONFIG_NOSYSTEM"] == "1"

    # dvc writes global config into the temp dir, not into ~/.config/dvc
    dvc_repo.dvc("config", "--global", "core.check_update", "false")
    assert (Path(dvc_repo.env["DVC_GLOBAL_CONFIG_DIR"]) / "config").is_file()
    assert dvc_repo.git("config", "--global", "user.name").stdout.strip() == "dvc-stream tests"
    assert dvc_repo.git("symbolic-ref", "--short", "HEAD").stdout.strip() == "main"


def test_environ_context_restores(dvc_repo, monkeypatch):
    monkeypatch.delenv("DVC_SITE_CACHE_DIR")
    with dvc_repo.environ():
        assert os.environ["DVC_SITE_CACHE_DIR"] == str(dvc_repo.site_cache_dir)
    assert "DVC_SITE_CACHE_DIR" not in os.environ
