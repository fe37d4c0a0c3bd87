"""Sizes of files not fetched yet, through ``dvc stream --mount``: right, and cheap to learn.

The kernel asks a size at every lookup; on an object store the sizes come from listings of the
remote, not from one request per file.
"""

from __future__ import annotations

import pytest

from dvc_stream.testing.proxy import LatencyProxy

from .conftest import md5, mounts_under, read_stats, shell

pytestmark = pytest.mark.mount

DATA = "data/sizes"
SIZES = (0, 1, 700, 3000, 70_000)
NFILES = 200


@pytest.fixture(scope="module")
def proxy(moto_server):
    with LatencyProxy(moto_server.host, moto_server.port) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def sized(moto_server, tmp_path_factory):
    """A pushed dataset of NFILES files in 4 directories, of every size in SIZES."""
    from dvc_stream.testing.repos import make_repo

    repo = make_repo(tmp_path_factory.mktemp("sizes") / "origin", moto_server)
    dataset = repo.make_dataset(
        DATA, nfiles=NFILES, depth=1, fanout=4, sizes=lambda i: SIZES[i % len(SIZES)]
    )
    return repo, dataset


@pytest.fixture
def clone(fuse, sized, proxy, tmp_path):
    """A fresh clone of ``sized`` whose remote goes through ``proxy``, counters at zero."""
    repo, dataset = sized
    clone = repo.clone(tmp_path / "repo")
    clone.set_endpoint(proxy.endpoint_url)
    proxy.reset_counters()
    yield clone, dataset
    assert mounts_under(clone.root) == [], "a mount was left behind"


def test_reading_every_file_costs_at_most_105_requests_per_100_objects(clone, proxy, tmp_path):
    repo, dataset = clone
    stats_file = tmp_path / "stats.json"
    proc = shell(
        repo,
        f"cd {DATA} && find . -type f | sort | xargs md5sum",
        options=("--prefetch", "none", "--stats", str(stats_file)),
    )
    got = {line.split()[1][2:]: line.split()[0] for line in proc.stdout.splitlines()}
    assert got == {rel: md5(data) for rel, data in dataset.files.items()}
    assert read_stats(stats_file)["failed_files"] == 0
    objects = len({md5(data) for data in dataset.files.values()})  # the empty files share one
    assert proxy.requests <= 1.05 * objects, proxy.requests_by_method


def test_sizes_at_stat_are_right_for_files_never_fetched(clone, proxy, tmp_path):
    repo, dataset = clone
    stats_file = tmp_path / "stats.json"
    shell(
        repo,
        f"find {DATA} -type f -printf '%s %P\\n' > {tmp_path}/sizes.txt",
        options=("--prefetch", "none", "--stats", str(stats_file)),
    )
    lines = (tmp_path / "sizes.txt").read_text().splitlines()
    found = {rel: int(size) for size, rel in (line.split(" ", 1) for line in lines)}
    assert found == {rel: len(data) for rel, data in dataset.files.items()}
    assert set(found.values()) == set(SIZES)
    assert read_stats(stats_file)["demand_files"] == 0
    assert proxy.requests_by_method["HEAD"] < NFILES // 10, proxy.requests_by_method


def test_a_file_missing_on_the_remote_is_an_error_at_stat(clone, sized, moto_server, tmp_path):
    repo, dataset = clone
    origin, _ = sized
    lost = sorted(rel for rel, data in dataset.files.items() if len(data) == SIZES[3])[0]
    oid = md5(dataset.files[lost])
    bucket, prefix = origin.remote_url.removeprefix("s3://").split("/", 1)
    key = f"{prefix}/files/md5/{oid[:2]}/{oid[2:]}"
    client = moto_server.client()
    saved = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.delete_object(Bucket=bucket, Key=key)
    try:
        proc = shell(
            repo,
            f"find {DATA} -type f -printf '%s %P\\n' > {tmp_path}/sizes.txt; stat {DATA}/{lost}",
            check=False,
        )
    finally:
        client.put_object(Bucket=bucket, Key=key, Body=saved)
    assert proc.returncode != 0
    assert f"{DATA}/{lost}" in proc.stderr
    assert f"object {oid} is missing" in proc.stderr, proc.stderr
    lines = (tmp_path / "sizes.txt").read_text().splitlines()
    found = {rel: int(size) for size, rel in (line.split(" ", 1) for line in lines)}
    expected = {rel: len(data) for rel, data in dataset.files.items() if rel != lost}
    assert found == expected


def test_sizes_are_right_where_the_remote_refuses_listings(clone, proxy, tmp_path):
    # NOTE: credentials that may read objects but not list the bucket
    repo, dataset = clone
    proxy.add_fault("status", method="GET", path_contains="list-type=2", times=1000, status=403)
    try:
        shell(repo, f"find {DATA} -type f -printf '%s %P\\n' > {tmp_path}/sizes.txt")
    finally:
        proxy.clear_faults()
    lines = (tmp_path / "sizes.txt").read_text().splitlines()
    found = {rel: int(size) for size, rel in (line.split(" ", 1) for line in lines)}
    assert found == {rel: len(data) for rel, data in dataset.files.items()}
