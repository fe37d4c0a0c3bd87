"""``dvc append``: real git + DVC repos, the real ``dvc`` CLI, moto S3 behind a proxy; no mocks."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
import yaml

import dvc_stream
from dvc_stream.appending.plan import AppendResult, append
from dvc_stream.appending.push import PushError
from dvc_stream.errors import AppendError
from dvc_stream.testing.repos import file_content

# --- helpers ------------------------------------------------------------------------------------


def write_files(base: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    for relpath, data in files.items():
        path = base / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def new_files(base: Path, n: int = 3, prefix: str = "new", seed: int = 7) -> list[Path]:
    names = {f"{prefix}{i:02d}.png": file_content(seed, f"{prefix}{i}", 100 + i) for i in range(n)}
    write_files(base, names)
    return [base / name for name in names]


def snapshot(*roots: Path) -> dict[str, tuple[int, bytes]]:
    """path -> (mode, bytes or link target) of everything under ``roots`` but DVC's tmp dir."""
    snap = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != f"{root}/.dvc/tmp"]
            snap[dirpath] = (os.lstat(dirpath).st_mode, b"")
            for name in filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    snap[path] = (st.st_mode, os.readlink(path).encode())
                else:
                    snap[path] = (st.st_mode, Path(path).read_bytes())
    return snap


def bucket_keys(moto_server, repo) -> set[str]:
    bucket = repo.remote_url.removeprefix("s3://").split("/")[0]
    pages = moto_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def dvcfile(repo, path: str = "data/images") -> dict:
    return yaml.safe_load((repo.root / f"{path}.dvc").read_text())["outs"][0]


def tree_of(repo, path: str = "data/images") -> dict[str, str]:
    """relpath -> md5 of the tree recorded in the .dvc file, read from the local cache."""
    oid = dvcfile(repo, path)["md5"]
    legacy = "hash" not in dvcfile(repo, path)
    base = repo.root / ".dvc" / "cache" / ("" if legacy else "files/md5")
    raw = (base / oid[:2] / oid[2:]).read_bytes()
    assert hashlib.md5(raw).hexdigest() + ".dir" == oid
    return {e["relpath"]: e["md5"] for e in json.loads(raw)}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def commit_all(repo, msg: str) -> None:
    repo.git("add", "-u")
    repo.commit(msg)


def assert_clean(repo, committed: bool = True) -> None:
    """`dvc status` clean; `dvc data status` clean, or (before `git commit`) only the .dvc."""
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout
    data_status = repo.dvc("data", "status").stdout
    if committed:
        assert "No changes." in data_status
    else:
        assert "uncommitted" not in data_status and "not in cache" not in data_status


@pytest.fixture
def dataset(dvc_repo):
    return dvc_repo.make_dataset(nfiles=8, size=300, depth=1, fanout=2)


@pytest.fixture
def sources(tmp_path) -> Path:
    base = tmp_path / "sources"
    base.mkdir()
    return base


@pytest.fixture
def in_repo(dvc_repo, monkeypatch):
    monkeypatch.chdir(dvc_repo.root)
    return dvc_repo


# --- round trip and workspace states ------------------------------------------------------------


def test_round_trip_through_cli(dvc_repo, dataset, sources, moto_server):
    work = dvc_repo.clone()  # fresh clone: nothing pulled, empty cache
    files = new_files(sources, 10)
    nested = write_files(
        sources / "batch", {"a.png": b"a" * 50, "deep/b.png": b"b" * 60, "deep/c/d.png": b"d"}
    )
    keys_before = bucket_keys(moto_server, dvc_repo)

    proc = work.dvc("append", "data/images", *files, sources / "batch", "--push")

    assert "Appended 13 files to data/images" in proc.stdout
    assert "git add data/images.dvc" in proc.stdout
    assert work.git("diff", "--name-only").stdout.split() == ["data/images.dvc"]
    assert work.git("status", "--porcelain").stdout.split() == ["M", "data/images.dvc"]
    new_keys = bucket_keys(moto_server, dvc_repo) - keys_before
    assert len(new_keys) == 14  # 13 objects (all distinct) + the new .dir
    out = dvcfile(work)
    assert out["nfiles"] == 21
    assert out["size"] == dataset.total_size + sum(f.stat().st_size for f in files) + 111

    commit_all(work, "new images")
    colleague = work.clone()
    colleague.dvc("pull")
    expected = dict(dataset.files)
    expected.update({f.name: f.read_bytes() for f in files})
    expected.update({f"batch/{k}": v for k, v in nested.items()})
    assert colleague.tracked_files("data/images") == expected
    assert_clean(colleague)


@pytest.mark.parametrize("state", ["absent", "partial", "full"])
def test_append_in_any_workspace_state_then_plain_push(in_repo, dataset, sources, state):
    repo = in_repo
    if state != "full":
        repo.wipe()
    if state == "partial":
        repo.dvc("pull", "data/images/d0")
    files = new_files(sources, 2)

    result = append("data/images", [str(f) for f in files], repo=str(repo.root))

    assert result.added == ["new00.png", "new01.png"] and result.replaced == []
    assert result.nfiles == 10 and result.pushed == 0
    assert set(tree_of(repo)) == {*dataset.files, "new00.png", "new01.png"}
    assert (repo.root / "data/images/new00.png").read_bytes() == files[0].read_bytes()
    assert all(f.exists() for f in files)  # copied, not moved
    if state == "full":
        assert_clean(repo, committed=False)
    repo.dvc("push")  # a plain push completes the job
    commit_all(repo, "append")
    colleague = repo.clone()
    colleague.dvc("pull")
    assert len(colleague.tracked_files("data/images")) == 10
    assert_clean(colleague)


def test_fully_present_keeps_old_files_and_uses_cache_type(in_repo, dataset, sources):
    repo = in_repo
    repo.dvc("config", "cache.type", "hardlink")
    repo.dvc("checkout", "--relink")
    (src,) = new_files(sources, 1)

    append("data/images", [src], repo=repo.root)

    placed = repo.root / "data/images" / src.name
    cached = repo.root / ".dvc/cache/files/md5" / md5(src.read_bytes())[:2]
    assert placed.stat().st_nlink == 2 and placed.samefile(next(cached.iterdir()))
    assert repo.tracked_files("data/images") == {**dataset.files, src.name: src.read_bytes()}
    assert_clean(repo, committed=False)


def test_dest_puts_sources_in_a_subdirectory_and_autostages(in_repo, dataset, sources):
    repo = in_repo
    repo.wipe()
    repo.dvc("config", "core.autostage", "true")
    files = new_files(sources, 2)
    write_files(sources / "more", {"x.bin": b"x", "y/z.bin": b"z"})

    result = dvc_stream.append(
        "data/images.dvc", [*files, sources / "more"], repo=repo.root, dest="cats/new"
    )

    assert sorted(result.added) == [
        "cats/new/more/x.bin",
        "cats/new/more/y/z.bin",
        "cats/new/new00.png",
        "cats/new/new01.png",
    ]
    assert set(tree_of(repo)) == {*dataset.files, *result.added}
    assert (repo.root / "data/images/cats/new/more/y/z.bin").read_bytes() == b"z"
    assert repo.git("diff", "--cached", "--name-only").stdout.split() == ["data/images.dvc"]


def test_force_replaces_an_existing_file(in_repo, dataset, sources):
    repo = in_repo
    relpath = next(iter(dataset.files))
    src = write_files(sources, {relpath: b"replacement"}) and sources / relpath
    before = (repo.root / "data/images.dvc").read_bytes()

    with pytest.raises(AppendError, match="already tracked; use --force"):
        append("data/images", [src], repo=repo.root, dest=os.path.dirname(relpath))
    assert (repo.root / "data/images.dvc").read_bytes() == before

    result = append(
        "data/images", [src], repo=repo.root, dest=os.path.dirname(relpath), force=True
    )

    assert result.replaced == [relpath] and result.added == []
    assert result.nfiles == 8
    assert result.size == dataset.total_size - len(dataset.files[relpath]) + len(b"replacement")
    assert tree_of(repo)[relpath] == md5(b"replacement")
    assert (repo.root / "data/images" / relpath).read_bytes() == b"replacement"
    assert_clean(repo, committed=False)


def test_force_without_old_object_leaves_size_unknown(in_repo, dataset, sources):
    repo = in_repo
    repo.wipe()
    relpath = next(iter(dataset.files))
    src = write_files(sources, {relpath: b"replacement"}) and sources / relpath

    result = append(
        "data/images", [src], repo=repo.root, dest=os.path.dirname(relpath), force=True
    )

    assert result.size is None and "size" not in dvcfile(repo)
    assert dvcfile(repo)["nfiles"] == 8


def test_move_removes_sources_after_success(dvc_repo, dataset, sources):
    work = dvc_repo.clone()
    files = new_files(sources, 2)
    write_files(sources / "dir", {"a/b.bin": b"ab"})
    contents = [f.read_bytes() for f in files]

    work.dvc("append", "data/images", *files, sources / "dir", "--move", "--push")

    assert not any(f.exists() for f in files) and not (sources / "dir").exists()
    assert (work.root / "data/images/new01.png").read_bytes() == contents[1]
    assert (work.root / "data/images/dir/a/b.bin").read_bytes() == b"ab"
    commit_all(work, "moved")
    colleague = work.clone()
    colleague.dvc("pull")
    assert len(colleague.tracked_files("data/images")) == 11


def test_python_api_accepts_a_repo_object(in_repo, dataset, sources):
    from dvc.repo import Repo

    (src,) = new_files(sources, 1)
    with Repo(str(in_repo.root)) as repo:
        result = dvc_stream.append("data/images", [src], repo=repo)
    assert isinstance(result, AppendResult)
    assert result.target == "data/images" and result.dvcfile == "data/images.dvc"


# --- .dvc file format ---------------------------------------------------------------------------


def test_dvcfile_fields_and_comments_survive(dvc_repo, dataset, sources, moto_server):
    other = moto_server.new_bucket()
    dvc_repo.dvc("remote", "add", "other", f"s3://{other}/store")
    dvc_repo.dvc("remote", "modify", "other", "endpointurl", dvc_repo.endpoint_url)
    path = dvc_repo.root / "data/images.dvc"
    text = path.read_text()
    lines = text.splitlines()
    path.write_text(
        "# images scraped in 2024; do not edit by hand\n"
        + "\n".join(lines[:-1])
        + "\n  desc: training images  # shown by dvc ls\n"
        + "  remote: other\n"
        + "  meta:\n    owner: vision-team\n    labels_version: 3\n"
        + lines[-1]
        + "\n"
    )
    dvc_repo.dvc("push")  # the dataset now lives on `other`
    dvc_repo.git("add", "-A")
    commit_all(dvc_repo, "annotate")
    work = dvc_repo.clone()
    (src,) = new_files(sources, 1)
    other_before = {
        o["Key"] for o in moto_server.client().list_objects_v2(Bucket=other).get("Contents", [])
    }

    work.dvc("append", "data/images", src, "--push")

    new_text = (work.root / "data/images.dvc").read_text()
    assert new_text.startswith("# images scraped in 2024; do not edit by hand\n")
    assert "  desc: training images  # shown by dvc ls\n" in new_text
    assert "  remote: other\n" in new_text
    assert "  meta:\n    owner: vision-team\n    labels_version: 3\n" in new_text
    changed = [
        (a, b)
        for a, b in zip(path.read_text().splitlines(), new_text.splitlines(), strict=True)
        if a != b
    ]
    assert [a.split(":")[0] for a, _ in changed] == ["- md5", "  size", "  nfiles"]
    other_after = {
        o["Key"] for o in moto_server.client().list_objects_v2(Bucket=other).get("Contents", [])
    }
    assert len(other_after - other_before) == 2  # pushed to the output's own remote


def _write_legacy_dataset(repo, moto_server, files: dict[str, bytes]) -> str:
    """A DVC 2 style output: no `hash:` line, objects at the remote root (`xx/yyyy`)."""
    from dvc_data.hashfile.hash import dos2unix

    bucket, prefix = repo.remote_url.removeprefix("s3://").split("/", 1)
    client = moto_server.client()
    entries = []
    for relpath, data in files.items():
        oid = md5(dos2unix(data))
        client.put_object(Bucket=bucket, Key=f"{prefix}/{oid[:2]}/{oid[2:]}", Body=data)
        entries.append({"md5": oid, "relpath": relpath})
    raw = json.dumps(sorted(entries, key=lambda e: e["relpath"])).encode()
    dir_oid = md5(raw) + ".dir"
    client.put_object(Bucket=bucket, Key=f"{prefix}/{dir_oid[:2]}/{dir_oid[2:]}", Body=raw)
    size = sum(map(len, files.values()))
    (repo.root / "data").mkdir(exist_ok=True)
    (repo.root / "data/legacy.dvc").write_text(
        f"outs:\n- md5: {dir_oid}\n  size: {size}\n  nfiles: {len(files)}\n  path: legacy\n"
    )
    (repo.root / "data/.gitignore").write_text("/legacy\n")
    repo.git("add", "data")
    commit_all(repo, "legacy dataset")
    return bucket


def test_legacy_dvc2_output(dvc_repo, sources, moto_server):
    old = {"a.txt": b"line\r\nline2\r\n", "b/c.bin": b"\x00\x01\r\n"}
    bucket = _write_legacy_dataset(dvc_repo, moto_server, old)
    work = dvc_repo.clone()
    crlf = write_files(sources, {"new.txt": b"windows\r\ntext\r\n"})
    write_files(sources, {"new.bin": b"\x00bin\r\n"})

    work.dvc("append", "data/legacy", sources / "new.txt", sources / "new.bin", "--push")

    out = dvcfile(work, "data/legacy")
    assert "hash" not in out and out["nfiles"] == 4
    tree = tree_of(work, "data/legacy")  # the legacy cache root, not files/md5
    assert tree["new.txt"] == md5(b"windows\ntext\n")  # md5-dos2unix
    assert tree["new.bin"] == md5(b"\x00bin\r\n")
    keys = {o["Key"] for o in moto_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    oid = tree["new.txt"]
    assert f"store/{oid[:2]}/{oid[2:]}" in keys  # the remote root, as DVC 2 stored it
    commit_all(work, "append legacy")
    colleague = work.clone()
    colleague.dvc("pull")
    assert colleague.tracked_files("data/legacy") == {**old, **crlf, "new.bin": b"\x00bin\r\n"}
    assert_clean(colleague)


# --- refusals: nothing changes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def refusal_setup(tmp_path_factory, moto_server):
    """One never-pulled dataset, a single-file output and a pipeline output, shared by the
    refusal cases (a refusal changes nothing, and each case checks that)."""
    from dvc_stream.testing import make_repo

    base = tmp_path_factory.mktemp("refusals")
    repo = make_repo(base / "repo", moto_server)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in repo.env.items():
            mp.setenv(name, value)
        repo.make_dataset(nfiles=8, size=300, depth=1, fanout=2)
        repo.add_file("models/model.bin", b"weights")
        (repo.root / "dvc.yaml").write_text(
            "stages:\n  gen:\n    cmd: mkdir -p gen && echo x > gen/a\n    outs:\n    - gen\n"
        )
        repo.git("add", "dvc.yaml")
        repo.commit("pipeline")
        repo.wipe()
        write_files(repo.root / "data/images", {"x": b"untracked"})  # "never pulled"
        sources = base / "sources"
        new_files(sources, 2)
        write_files(sources, {"dup/new00.png": b"dup", "d0": b"file named like a dir"})
        write_files(sources, {"loop/ok.bin": b"ok"})
        write_files(sources, {"f00000.bin": b"same name as a tracked file"})
        os.symlink("..", sources / "loop" / "up")
        os.symlink("self", sources / "self")
        yield repo, sources


@pytest.fixture
def refusal_repo(refusal_setup, monkeypatch):
    repo, _ = refusal_setup
    for name, value in repo.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(repo.root)
    return repo


REFUSALS = {
    "not tracked": (("data/nope", ["new00.png"]), {}, "is not tracked by DVC"),
    "inside tracked dir": (("data/images/d0", ["new00.png"]), {}, "--dest d0"),
    "single file": (("models/model.bin", ["new00.png"]), {}, "tracked as a single file"),
    "single file .dvc": (("models/model.bin.dvc", ["new00.png"]), {}, "single file"),
    "pipeline output": (("gen", ["new00.png"]), {}, "`dvc repro` would overwrite"),
    "missing source": (("data/images", ["new00.png", "nope.png"]), {}, "does not exist"),
    "source is target": (("data/images", ["{root}/data/images"]), {}, "the tracked directory"),
    "source in target": (("data/images", ["{root}/data/images/x"]), {}, "or inside"),
    "source has target": (("data/images", ["{root}/data"]), {}, "contains the tracked dir"),
    "symlink loop": (("data/images", ["loop"]), {}, "symlink loop"),
    "self symlink": (("data/images", ["self"]), {}, "symlink loop"),
    "existing relpath": (("data/images", ["f00000.bin"]), {"dest": "d0"}, "already tracked"),
    "duplicate sources": (("data/images", ["new00.png", "dup/new00.png"]), {}, "would both"),
    "file over dir": (("data/images", ["d0"]), {}, "is a directory in the tree"),
    "dir under file": (("data/images", ["new00.png"]), {"dest": "d0/f00000.bin"}, "is a file in"),
    "dest escapes": (("data/images", ["new00.png"]), {"dest": "../x"}, "must be a relative"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusal_changes_nothing(refusal_repo, refusal_setup, moto_server, case):
    (target, srcs), kwargs, message = REFUSALS[case]
    sources = refusal_setup[1]
    root = refusal_repo.root
    paths = [s.format(root=root) if "{" in s else str(sources / s) for s in srcs]
    before = snapshot(root, sources), bucket_keys(moto_server, refusal_repo)

    with pytest.raises(AppendError, match=message):
        append(target, paths, repo=root, push=True, **kwargs)

    assert (snapshot(root, sources), bucket_keys(moto_server, refusal_repo)) == before


def test_refusal_of_untracked_file_in_the_way(in_repo, dataset, sources):
    write_files(in_repo.root / "data/images", {"new00.png": b"mine"})
    new_files(sources, 1)
    before = snapshot(in_repo.root, sources)
    with pytest.raises(AppendError, match="exists in the workspace but is not tracked"):
        append("data/images", [sources / "new00.png"], repo=in_repo.root)
    assert snapshot(in_repo.root, sources) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_refusal_of_unreadable_source(in_repo, dataset, sources):
    (src,) = new_files(sources, 1)
    src.chmod(0)
    before = snapshot(in_repo.root)
    with pytest.raises(AppendError, match="cannot read"):
        append("data/images", [src], repo=in_repo.root)
    assert snapshot(in_repo.root) == before


def test_cli_refusals_exit_nonzero_with_one_line(refusal_repo, refusal_setup, moto_server):
    sources = refusal_setup[1]
    refusal_repo.dvc("remote", "default", "--unset")
    before = snapshot(refusal_repo.root, sources), bucket_keys(moto_server, refusal_repo)
    cases = [
        (["data/images", sources / "new00.png", "--push"], "needs a remote"),
        (["gen", sources / "new00.png"], "dvc repro"),
        (["data/images", sources / "new00.png"], "not in the cache and no remote is set"),
    ]
    for args, message in cases:
        proc = refusal_repo.dvc("append", *args, check=False)
        assert proc.returncode == 255, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
        assert len(errors) == 1 and message in errors[0], proc.stderr
    assert (snapshot(refusal_repo.root, sources), bucket_keys(moto_server, refusal_repo)) == before
    refusal_repo.dvc("remote", "default", refusal_repo.remote_name)


# --- the remote: request count, failures --------------------------------------------------------


def _append_counting(repo, proxy, path: str, sources: Path) -> int:
    proxy.reset_counters()
    repo.dvc("append", path, *sorted(sources.iterdir()), "--push")
    return proxy.requests


@pytest.mark.heavy
def test_request_count_does_not_grow_with_the_dataset(dvc_repo, latency_proxy, tmp_path):
    dvc_repo.make_dataset("data/small", nfiles=200, size=16, depth=2, fanout=4, seed=1)
    dvc_repo.make_dataset("data/big", nfiles=2000, size=16, depth=2, fanout=4, seed=2)
    dvc_repo.wipe()
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    new_files(tmp_path / "s", 10, seed=3)
    new_files(tmp_path / "b", 10, seed=4)

    small = _append_counting(dvc_repo, latency_proxy, "data/small", tmp_path / "s")
    small_log = list(latency_proxy.request_log)
    big = _append_counting(dvc_repo, latency_proxy, "data/big", tmp_path / "b")

    print(f"requests: 200 files -> {small}, 2000 files -> {big}; {small_log}")
    assert abs(big - small) <= 2
    assert small <= 11 + 6  # one PUT per new object and the .dir, plus the old .dir's GET


def test_push_failure_keeps_dvcfile_and_cache_then_dvc_push_finishes(
    dvc_repo, dataset, latency_proxy, sources, moto_server
):
    work = dvc_repo.clone()
    work.set_endpoint(latency_proxy.endpoint_url)
    files = new_files(sources, 3)
    keys_before = bucket_keys(moto_server, dvc_repo)
    latency_proxy.add_fault("status", method="PUT", times=1000, status=500)

    no_retries = {**work.env, "AWS_MAX_ATTEMPTS": "1"}
    proc = work.dvc(
        "append", "data/images", *files, "--push", "--move", check=False, env=no_retries
    )

    assert proc.returncode == 255
    assert "run `dvc push data/images.dvc` to finish" in proc.stderr
    assert "The sources were not removed." in proc.stderr
    assert all(f.exists() for f in files)  # --move keeps them when the push failed
    assert dvcfile(work)["nfiles"] == 11  # the .dvc is updated ...
    assert set(tree_of(work)) >= {f.name for f in files}  # ... and its objects are cached
    assert bucket_keys(moto_server, dvc_repo) == keys_before  # never a .dir without its files

    latency_proxy.clear_faults()
    work.dvc("push")
    commit_all(work, "append")
    colleague = work.clone()
    colleague.dvc("pull")
    assert len(colleague.tracked_files("data/images")) == 11
    assert_clean(colleague)


def test_failed_push_via_api_raises_push_error(
    in_repo, dataset, sources, latency_proxy, monkeypatch
):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    in_repo.set_endpoint(latency_proxy.endpoint_url)
    (src,) = new_files(sources, 1)
    latency_proxy.add_fault("status", method="PUT", times=1000, status=500)
    with pytest.raises(PushError, match="new objects are in the local cache") as excinfo:
        append("data/images", [src], repo=in_repo.root, push=True, jobs=2)
    assert md5(src.read_bytes()) in excinfo.value.failed


@pytest.mark.parametrize("kind", ["import", "import-url"])
def test_append_into_an_import_is_refused(dvc_repo, moto_server, tmp_path, kind):
    from dvc_stream.testing import make_repo

    if kind == "import":
        registry = make_repo(tmp_path / "registry", moto_server)
        registry.make_dataset("dataset", nfiles=4, size=50)
        dvc_repo.import_repo(registry.root, "dataset", "data/imported")
    else:
        bucket = moto_server.new_bucket()
        moto_server.client().put_object(Bucket=bucket, Key="prefix/a.bin", Body=b"a")
        dvc_repo.import_url(f"s3://{bucket}/prefix", "data/imported")
    dvc_repo.push()
    sources = tmp_path / "sources"
    new_files(sources, 2)
    before = snapshot(dvc_repo.root, sources), bucket_keys(moto_server, dvc_repo)

    proc = dvc_repo.dvc(
        "append", "data/imported", *sorted(sources.iterdir()), "--push", check=False
    )

    assert proc.returncode == 255, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("ERROR: 'data/imported' is imported from "), errors[0]
    assert "appending would break the import" in errors[0]
    assert "`dvc update data/imported`" in errors[0]
    assert (snapshot(dvc_repo.root, sources), bucket_keys(moto_server, dvc_repo)) == before
