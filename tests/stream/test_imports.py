"""``dvc import`` and ``dvc import-url`` outputs stream from wherever ``dvc pull`` reads them."""

from __future__ import annotations

import os
import shutil

import pytest

from dvc_stream.testing.proxy import LatencyProxy
from dvc_stream.testing.repos import file_content, make_repo

from .conftest import (
    last_json,
    md5,
    object_gets,
    run_python,
    stream,
    stream_python,
    write_script,
)

WALK = r"""
import hashlib, json, os, sys
out = {}
for root in sys.argv[1:]:
    paths = [root] if os.path.isfile(root) else [
        os.path.join(top, name) for top, _dirs, files in os.walk(root) for name in files
    ]
    for path in paths:
        size = os.stat(path).st_size
        with open(path, "rb") as fobj:
            data = fobj.read()
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        out[rel if rel != "." else root] = [size, hashlib.md5(data).hexdigest()]
print(json.dumps(out))
"""

READ = r"""
import hashlib, json, sys
out = {}
for path in sys.argv[1:]:
    with open(path, "rb") as fobj:
        out[path] = hashlib.md5(fobj.read()).hexdigest()
print(json.dumps(out))
"""

LISTDIR = r"""
import os, sys
try:
    print(sorted(os.listdir(sys.argv[1])))
except OSError as exc:
    print(f"{type(exc).__name__}: {exc}")
"""

NOTES = b"kept in git, not in DVC\n"


def _expected(files: dict[str, bytes], prefix: str = "") -> dict[str, list]:
    return {
        rel[len(prefix) :]: [len(data), md5(data)]
        for rel, data in files.items()
        if rel.startswith(prefix)
    }


def _gets_in(log: list[tuple[str, str]], bucket: str) -> list[str]:
    return [path for path in object_gets(log) if path.startswith(f"/{bucket}/")]


def _lines_of(text: str, out: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if out in line]


def _bucket(repo) -> str:
    return repo.remote_url.removeprefix("s3://").split("/", 1)[0]


@pytest.fixture(scope="module")
def proxy(moto_server):
    with LatencyProxy(moto_server.host, moto_server.port) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def registry(tmp_path_factory, moto_server, proxy):
    """A data registry with its own remote, read through ``proxy`` (its committed endpoint)."""
    base = tmp_path_factory.mktemp("imports")
    registry = make_repo(base / "registry", moto_server)
    dataset = registry.make_dataset("dataset", nfiles=40, size=300, depth=1, fanout=4)
    parts = {
        name: registry.make_dataset(f"multi/{name}", nfiles=3, size=50, seed=seed)
        for seed, name in enumerate(("a", "b"), start=1)
    }
    model = file_content(9, "model", 2000)
    registry.add_file("model.bin", model)
    (registry.root / "docs").mkdir()
    (registry.root / "docs" / "notes.txt").write_bytes(NOTES)
    registry.git("add", "docs")
    registry.dvc("remote", "modify", registry.remote_name, "endpointurl", proxy.endpoint_url)
    registry.git("add", ".dvc/config")
    registry.commit("read the registry through the proxy")
    return registry, dataset, parts, model


@pytest.fixture(scope="module")
def versioned_registry(tmp_path_factory, moto_server, proxy):
    """A registry whose remote is cloud-versioned, read through ``proxy``."""
    base = tmp_path_factory.mktemp("versioned")
    registry = make_repo(base / "registry", moto_server, cloud_versioning="version_aware")
    dataset = registry.make_dataset("dataset", nfiles=6, size=120, seed=5)
    registry.dvc("remote", "modify", registry.remote_name, "endpointurl", proxy.endpoint_url)
    registry.git("add", ".dvc/config")
    registry.commit("read the registry through the proxy")
    return registry, dataset


@pytest.fixture(scope="module")
def project(tmp_path_factory, moto_server, registry, versioned_registry):
    """A project importing from the registries by path and by git URL, pushed; and from a
    repo that imported from the registry itself (a chain)."""
    registry_repo, *_ = registry
    base = tmp_path_factory.mktemp("project")
    middle = make_repo(base / "middle", moto_server)
    middle.import_repo(registry_repo.root, "dataset", "data/ds")
    project = make_repo(base / "project", moto_server)
    url = registry_repo.bare_clone()
    project.import_repo(middle.root, "data/ds", "data/chained")
    project.import_repo(versioned_registry[0].root, "dataset", "data/versioned")
    project.import_repo(registry_repo.root, "dataset", "data/imported")
    project.import_repo(url, "dataset", "data/by-url")
    project.import_repo(url, "dataset/d1", "data/part")
    project.import_repo(registry_repo.root, "model.bin", "data/model.bin")
    project.import_repo(registry_repo.root, "multi", "data/multi")
    project.import_repo(registry_repo.root, "docs", "data/docs")
    project.import_repo(registry_repo.root, "dataset/d2", "data/later", "--no-download")
    project.import_repo(url, "dataset", "data/later-all", "--no-download")
    project.import_repo(url, "model.bin", "data/later.bin", "--no-download")
    project.push()
    return project


@pytest.mark.parametrize("out", ["data/imported", "data/by-url"])
def test_import_streams_from_the_source_remote(project, registry, proxy, tmp_path, out):
    registry_repo, dataset, *_ = registry
    clone = project.clone()
    script = write_script(tmp_path, "walk.py", WALK)

    proxy.reset_counters()
    proc = stream_python(clone, script, out)

    assert last_json(proc) == _expected(dataset.files)
    gets = _gets_in(proxy.request_log, _bucket(registry_repo))
    assert sorted(gets) == sorted(set(gets)) and len(gets) == dataset.nfiles
    assert _gets_in(proxy.request_log, _bucket(project)) == []
    assert clone.tracked_files(out) == dataset.files
    status = clone.dvc("status", out)
    assert "up to date" in status.stdout, status.stdout


def test_reading_an_imported_file_is_one_request(project, registry, proxy, tmp_path):
    registry_repo, dataset, *_ = registry
    clone = project.clone()
    chosen = sorted(dataset.files)[:5]
    script = write_script(tmp_path, "read.py", READ)
    paths = [f"data/imported/{rel}" for rel in chosen]
    clone.dvc("data", "status")  # NOTE: DVC's own first look at the clone, not counted

    proxy.reset_counters()
    proc = stream_python(clone, script, *paths)

    assert last_json(proc) == {
        p: md5(dataset.files[r]) for p, r in zip(paths, chosen, strict=True)
    }
    data_requests = [(method, path) for method, path in proxy.request_log if "/files/md5/" in path]
    objects = [(m, p) for m, p in data_requests if not p.split("?")[0].endswith(".dir")]
    assert [m for m, _ in objects] == ["GET"] * len(chosen), proxy.request_log
    assert len(data_requests) - len(objects) <= 2  # the .dir object: HEAD + GET at most
    assert all(p.startswith(f"/{_bucket(registry_repo)}/") for _, p in data_requests)


@pytest.mark.heavy
def test_stream_gives_what_pull_gives(project, tmp_path):
    outs = ["data/imported", "data/by-url", "data/part", "data/multi", "data/docs"]
    outs += ["data/chained", "data/versioned"]
    pulled = project.clone()
    pulled.dvc("pull", "data/model.bin", *outs)  # NOTE: DVC cannot pull data/later-all
    streamed = project.clone()
    script = write_script(tmp_path, "walk.py", WALK)

    proc = stream_python(streamed, script, "data/model.bin", *outs, options=())

    assert proc.returncode == 0, proc.stderr
    for out in outs:
        assert streamed.tracked_files(out) == pulled.tracked_files(out), out
    model = "data/model.bin"
    assert (streamed.root / model).read_bytes() == (pulled.root / model).read_bytes()
    assert streamed.dvc("status", *outs).stdout == pulled.dvc("status", *outs).stdout


def test_import_of_an_import_reads_the_storage_at_the_end(project, registry, proxy, tmp_path):
    registry_repo, dataset, *_ = registry
    clone = project.clone()
    script = write_script(tmp_path, "walk.py", WALK)

    proxy.reset_counters()
    proc = stream_python(clone, script, "data/chained")

    assert last_json(proc) == _expected(dataset.files)
    gets = _gets_in(proxy.request_log, _bucket(registry_repo))
    assert len(gets) == len(set(gets)) == dataset.nfiles


def test_import_from_a_versioned_remote_reads_by_version(
    project, versioned_registry, proxy, tmp_path
):
    registry_repo, dataset = versioned_registry
    clone = project.clone()
    script = write_script(tmp_path, "walk.py", WALK)

    proxy.reset_counters()
    proc = stream_python(clone, script, "data/versioned")

    assert last_json(proc) == _expected(dataset.files)
    bucket = _bucket(registry_repo)
    gets = [p for m, p in proxy.request_log if m == "GET" and p.startswith(f"/{bucket}/store/")]
    assert len(gets) == dataset.nfiles and all("versionId=" in p for p in gets), gets


def test_import_of_part_of_an_output(project, registry, tmp_path):
    _, dataset, *_ = registry
    clone = project.clone()
    script = write_script(tmp_path, "walk.py", WALK)
    proc = stream_python(clone, script, "data/part")
    assert last_json(proc) == _expected(dataset.files, "d1/")
    # NOTE: the source has no .dir object for d1/: the tree was listed, checked, and cached
    tree = clone.dvc("cache", "dir").stdout.strip()
    oid = (clone.root / "data/part.dvc").read_text().split("md5: ")[2].split()[0]
    assert (clone.root / tree / "files/md5" / oid[:2] / oid[2:]).exists()


def test_import_spanning_outputs_and_git(project, registry, tmp_path):
    registry_repo, _, parts, _ = registry
    clone = project.clone()
    script = write_script(tmp_path, "walk.py", WALK)
    proc = stream_python(clone, script, "data/multi", "data/docs")
    expected = {
        f"{name}/{rel}": [len(data), md5(data)]
        for name, part in parts.items()
        for rel, data in part.files.items()
    }
    ignore = (registry_repo.root / "multi/.gitignore").read_bytes()  # in git, imported too
    expected[".gitignore"] = [len(ignore), md5(ignore)]
    expected["notes.txt"] = [len(NOTES), md5(NOTES)]
    assert last_json(proc) == expected


def test_imported_file(project, registry, tmp_path):
    *_, model = registry
    clone = project.clone()
    script = write_script(tmp_path, "read.py", READ)
    proc = stream_python(clone, script, "data/model.bin")
    assert last_json(proc) == {"data/model.bin": md5(model)}


def test_unreachable_source_is_said(project, tmp_path):
    clone = project.clone()
    _point_at_a_gone_source(clone, "data/imported", tmp_path)

    proc, _ = _list_in_stream(clone, tmp_path, "data/imported")

    assert proc.stdout.startswith("OSError: "), proc.stdout
    assert "data/imported" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if "'data/imported'" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING: "), proc.stderr
    assert "cannot read the source of 'data/imported'" in warnings[0]
    assert str(tmp_path / "gone") in warnings[0]  # what DVC could not open
    assert not (clone.root / "data/imported").exists()


HOOKED = "import sys, dvc_stream\ndvc_stream.install_hooks(sys.argv.pop(1), prefetch='none')\n"


def test_import_read_through_install_hooks(project, registry, tmp_path):
    """A plain Python process (a notebook) that calls ``install_hooks()`` reads an import."""
    _, dataset, *_ = registry
    clone = project.clone()
    script = write_script(tmp_path, "hooked_walk.py", HOOKED + WALK)

    proc = run_python(clone, script, str(clone.root), "data/imported")

    assert last_json(proc) == _expected(dataset.files)
    assert clone.tracked_files("data/imported") == dataset.files


@pytest.mark.mount
def test_import_read_through_mount(project, registry):
    """Readers that are not Python (here md5sum) read an import through the FUSE view."""
    if not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")):
        pytest.skip("--mount needs /dev/fuse and fusermount3")
    _, dataset, *_ = registry
    clone = project.clone()
    script = "cd data/imported && find . -type f | sort | xargs md5sum"

    proc = stream(clone, "sh", "-c", script, options=("--mount", "--prefetch", "none"))

    got = {line.split()[1][2:]: line.split()[0] for line in proc.stdout.splitlines()}
    assert got == {rel: md5(data) for rel, data in dataset.files.items()}
    assert clone.tracked_files("data/imported") == dataset.files
    with open("/proc/self/mounts", encoding="utf-8") as fobj:
        assert str(clone.root) not in fobj.read()  # unmounted


def _list_in_stream(clone, tmp_path, out: str):
    """A program lists ``out`` in ``clone`` under ``dvc stream``: (its run, the WARNING lines)."""
    script = write_script(tmp_path, "listdir.py", LISTDIR)
    proc = stream_python(clone, script, out)
    return proc, [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]


def _point_at_a_gone_source(clone, out: str, tmp_path) -> None:
    """Make the import ``out`` of ``clone`` name a source repository that does not exist."""
    dvcfile = clone.root / f"{out}.dvc"
    text = dvcfile.read_text()
    url = next(line for line in text.splitlines() if line.strip().startswith("url:"))
    dvcfile.write_text(text.replace(url, url.split("url:")[0] + f"url: {tmp_path / 'gone'}"))


@pytest.mark.parametrize(
    ("out", "prefix"), [("data/later", "d2/"), ("data/later-all", ""), ("data/later.bin", None)]
)
@pytest.mark.heavy
def test_no_download_repo_import_streams_from_the_source(
    project, registry, proxy, tmp_path, out, prefix
):
    registry_repo, dataset, _, model = registry
    pulled = project.clone()
    # NOTE: DVC 3.67.1 fails to pull a --no-download import of a whole directory output
    # (AssertionError in dvc_data's hash_file: the entry's hash is the .dir's): compared with
    # the source's files instead
    pulls = out != "data/later-all"
    if pulls:
        pulled.dvc("pull", out)
    clone = project.clone()
    script = write_script(tmp_path, "walk.py", WALK)

    proxy.reset_counters()
    proc = stream_python(clone, script, out)

    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    if prefix is None:
        assert last_json(proc) == {out: [len(model), md5(model)]}
        assert (clone.root / out).read_bytes() == (pulled.root / out).read_bytes() == model
        expected_gets = 1
    else:
        assert last_json(proc) == _expected(dataset.files, prefix)
        files = {r[len(prefix) :]: d for r, d in dataset.files.items() if r.startswith(prefix)}
        assert clone.tracked_files(out) == (pulled.tracked_files(out) if pulls else files)
        expected_gets = len(_expected(dataset.files, prefix))
    gets = _gets_in(proxy.request_log, _bucket(registry_repo))
    assert len(gets) == len(set(gets)) == expected_gets
    assert _gets_in(proxy.request_log, _bucket(project)) == []
    assert "later" not in clone.git("status", "--porcelain").stdout  # the .dvc file is unchanged
    if pulls:
        assert clone.dvc("status", out).stdout == pulled.dvc("status", out).stdout
        # NOTE: DVC's own commands find the files where `dvc pull` leaves them
        assert _lines_of(clone.dvc("data", "status").stdout, out) == _lines_of(
            pulled.dvc("data", "status").stdout, out
        )
        assert clone.dvc("checkout", out).stdout == pulled.dvc("checkout", out).stdout


def test_no_download_repo_import_with_its_source_gone_is_said(project, tmp_path):
    clone = project.clone()
    _point_at_a_gone_source(clone, "data/later", tmp_path)

    proc, _ = _list_in_stream(clone, tmp_path, "data/later")

    assert proc.stdout.startswith("FileNotFoundError"), proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if "'data/later'" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING: "), proc.stderr
    why = "'data/later' is not streamed: it is read from its source, which cannot be read"
    assert why in warnings[0]
    assert str(tmp_path / "gone") in warnings[0]


# -- dvc import-url -------------------------------------------------------------------------------


@pytest.fixture
def url_source(moto_server):
    bucket = moto_server.new_bucket(versioned=True)
    files = {f"sub/f{i}.txt": file_content(i, "url", 100 + i) for i in range(4)}
    for rel, data in files.items():
        moto_server.client().put_object(Bucket=bucket, Key=f"prefix/{rel}", Body=data)
    return bucket, files


def test_import_url_streams_from_the_project_remote(dvc_repo, url_source, moto_server, tmp_path):
    bucket, files = url_source
    dvc_repo.import_url(f"s3://{bucket}/prefix", "data/url")
    dvc_repo.push()
    # NOTE: `dvc pull` reads the pushed copy, not the URL, which may change meanwhile
    for rel in files:
        moto_server.client().put_object(Bucket=bucket, Key=f"prefix/{rel}", Body=b"new")
    clone = dvc_repo.clone()
    script = write_script(tmp_path, "walk.py", WALK)

    proc = stream_python(clone, script, "data/url")

    assert last_json(proc) == _expected(files)


def test_import_url_not_pushed_is_said(dvc_repo, url_source, tmp_path):
    bucket, _ = url_source
    dvc_repo.import_url(f"s3://{bucket}/prefix", "data/url")
    clone = dvc_repo.clone()

    proc, warnings = _list_in_stream(clone, tmp_path, "data/url")

    assert proc.stdout.startswith("OSError: "), proc.stdout
    assert len(warnings) == 1, proc.stderr
    assert "'data/url'" in warnings[0] and "neither in the cache nor on the remote" in warnings[0]


def _import_url_through(repo, proxy, url: str, out: str, *flags: str) -> None:
    config = ("--fs-config", f"endpointurl={proxy.endpoint_url}")
    repo._import("import-url", url, out, *config, *flags, out=out)


URL_FLAGS = [("--no-download",), ("--version-aware",), ("--no-download", "--version-aware")]


def _pulled_and_streamed(dvc_repo, proxy, tmp_path, out: str):
    """A clone that pulled ``out``, and a fresh one where a program read all of it under
    ``dvc stream`` (no warning), counting requests from the read on."""
    pulled = dvc_repo.clone()
    pulled.dvc("pull", out)
    clone = dvc_repo.clone()
    script = write_script(tmp_path, "walk.py", WALK)
    proxy.reset_counters()
    proc = stream_python(clone, script, out)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    return pulled, clone, proc


@pytest.mark.parametrize("flags", URL_FLAGS, ids=" ".join)
@pytest.mark.heavy
def test_import_url_read_from_its_url_streams(
    dvc_repo, url_source, moto_server, proxy, tmp_path, flags
):
    bucket, files = url_source
    _import_url_through(dvc_repo, proxy, f"s3://{bucket}/prefix", "data/later", *flags)
    if "--version-aware" in flags:  # NOTE: the recorded versions are read, not the newest
        for rel in files:
            moto_server.client().put_object(Bucket=bucket, Key=f"prefix/{rel}", Body=b"new")
    pulled, clone, proc = _pulled_and_streamed(dvc_repo, proxy, tmp_path, "data/later")
    assert last_json(proc) == _expected(files)
    assert clone.tracked_files("data/later") == pulled.tracked_files("data/later") == files
    gets = [p for m, p in proxy.request_log if m == "GET" and p.startswith(f"/{bucket}/prefix/")]
    assert len(gets) == len(set(gets)) == len(files), proxy.request_log
    if "--version-aware" in flags:
        assert all("versionId=" in p for p in gets), gets
    assert "later" not in clone.git("status", "--porcelain").stdout  # the .dvc file is unchanged
    # NOTE: DVC's own commands find the files where `dvc pull` leaves them
    assert clone.dvc("data", "status").stdout == pulled.dvc("data", "status").stdout
    assert clone.dvc("checkout").stdout == pulled.dvc("checkout").stdout
    assert clone.tracked_files("data/later") == files


@pytest.mark.parametrize("flags", URL_FLAGS, ids=" ".join)
@pytest.mark.heavy
def test_import_url_of_one_file_read_from_its_url_streams(
    dvc_repo, moto_server, proxy, tmp_path, flags
):
    bucket = moto_server.new_bucket(versioned=True)
    data = file_content(7, "one", 300)
    moto_server.client().put_object(Bucket=bucket, Key="one.bin", Body=data)
    _import_url_through(dvc_repo, proxy, f"s3://{bucket}/one.bin", "data/one.bin", *flags)
    pulled, clone, proc = _pulled_and_streamed(dvc_repo, proxy, tmp_path, "data/one.bin")
    assert last_json(proc) == {"data/one.bin": [len(data), md5(data)]}
    assert (clone.root / "data/one.bin").read_bytes() == (
        pulled.root / "data/one.bin"
    ).read_bytes()
    gets = [p for m, p in proxy.request_log if m == "GET" and p.startswith(f"/{bucket}/one.bin")]
    assert len(gets) == 1, proxy.request_log
    # NOTE: DVC's state holds the hash DVC's index has for the file, as after `dvc checkout`
    assert clone.dvc("data", "status").stdout == pulled.dvc("data", "status").stdout


def test_import_url_changed_at_its_url_is_said(dvc_repo, url_source, moto_server, tmp_path):
    bucket, files = url_source
    dvc_repo.import_url(f"s3://{bucket}/prefix", "data/later", "--no-download")
    changed = sorted(files)[0]
    moto_server.client().put_object(Bucket=bucket, Key=f"prefix/{changed}", Body=b"changed")
    clone = dvc_repo.clone()

    proc, warnings = _list_in_stream(clone, tmp_path, "data/later")

    assert proc.stdout.startswith("FileNotFoundError"), proc.stdout
    assert warnings == [
        f"WARNING: 'data/later' is not streamed: the files at 's3://{bucket}/prefix' changed "
        "since they were imported; `dvc update data/later` records the new ones"
    ]
    assert not (clone.root / "data/later").exists()


def test_import_url_file_changed_at_its_url_is_refused(dvc_repo, moto_server, tmp_path):
    bucket = moto_server.new_bucket()  # NOTE: on a versioned bucket, the recorded version is read
    client = moto_server.client()
    client.put_object(Bucket=bucket, Key="one.bin", Body=file_content(7, "one", 300))
    dvc_repo.import_url(f"s3://{bucket}/one.bin", "data/one.bin", "--no-download")
    client.put_object(Bucket=bucket, Key="one.bin", Body=b"changed")
    clone = dvc_repo.clone()
    script = write_script(tmp_path, "read.py", READ)

    proc = stream_python(clone, script, "data/one.bin", check=False)

    assert proc.returncode != 0
    assert f"changed at 's3://{bucket}/one.bin' since it was imported" in proc.stderr, proc.stderr
    assert not (clone.root / "data/one.bin").exists()


def test_import_url_with_etags_that_are_not_md5s_is_said(dvc_repo, moto_server, tmp_path):
    bucket = moto_server.new_bucket(versioned=True)
    client = moto_server.client()
    part = file_content(1, "part", 5 * 2**20)
    upload = client.create_multipart_upload(Bucket=bucket, Key="prefix/big.bin")
    etag = client.upload_part(
        Bucket=bucket, Key="prefix/big.bin", UploadId=upload["UploadId"], PartNumber=1, Body=part
    )["ETag"]
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="prefix/big.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]},
    )
    dvc_repo.import_url(f"s3://{bucket}/prefix", "data/later", "--no-download", "--version-aware")
    clone = dvc_repo.clone()

    proc, warnings = _list_in_stream(clone, tmp_path, "data/later")

    assert proc.stdout.startswith("FileNotFoundError"), proc.stdout
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith(
        "WARNING: 'data/later' is not streamed: DVC recorded no md5 of 'data/later/big.bin' and "
        "its etag ("
    ), warnings[0]
    assert warnings[0].endswith("run `dvc pull data/later` instead")
