"""What readers outside Python see through ``dvc stream --mount``."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import md5, mounts_under, read_stats, shell, stream_mounted

pytestmark = pytest.mark.mount

DATA = "data/images"


def _dirs_of(files: dict[str, bytes]) -> set[str]:
    dirs = set()
    for rel in files:
        parts = rel.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return dirs


def test_shell_tools_see_the_pulled_tree(images, tmp_path):
    repo, dataset = images
    stats_file = tmp_path / "stats.json"
    proc = shell(
        repo,
        f"ls -R {DATA} > {tmp_path}/ls.txt && find {DATA} -mindepth 1 -printf '%y %s %P\\n' "
        f"> {tmp_path}/find.txt && cd {DATA} && find . -type f | sort | xargs md5sum",
        options=("--prefetch", "none", "--stats", str(stats_file)),
    )
    got = {line.split()[1][2:]: line.split()[0] for line in proc.stdout.splitlines()}
    assert got == {rel: md5(data) for rel, data in dataset.files.items()}

    found = {}
    for line in (tmp_path / "find.txt").read_text().splitlines():
        kind, size, rel = line.split(" ", 2)
        found[rel] = (kind, int(size)) if kind == "f" else (kind, None)
    expected = {rel: ("f", len(data)) for rel, data in dataset.files.items()}
    expected.update({rel: ("d", None) for rel in _dirs_of(dataset.files)})
    assert found == expected

    listing = (tmp_path / "ls.txt").read_text()
    assert all(rel.rsplit("/", 1)[-1] in listing for rel in dataset.files)

    # after unmounting, what was read is in the workspace, as with hooks
    assert mounts_under(repo.root) == []
    assert repo.tracked_files(DATA) == dataset.files
    stats = read_stats(stats_file)
    assert stats["demand_files"] == len(dataset.files)
    assert stats["failed_files"] == 0
    assert "fetched 24 files" in proc.stderr


def test_cat_through_the_mount(images, tmp_path):
    repo, dataset = images
    rel = sorted(dataset.files)[5]
    shell(repo, f"cat {DATA}/{rel} > {tmp_path}/out")
    assert (tmp_path / "out").read_bytes() == dataset.files[rel]
    assert repo.tracked_files(DATA) == {rel: dataset.files[rel]}


C_READER = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Copy argv[1] to argv[2] with small read()s, then check mmap and pread agree. */
int main(int argc, char **argv) {
    char buf[1000];
    struct stat st;
    ssize_t n;
    int in = open(argv[1], O_RDONLY), out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || fstat(in, &st) != 0) { perror("open"); return 1; }
    while ((n = read(in, buf, sizeof buf)) > 0) write(out, buf, n);
    if (n < 0) { perror("read"); return 1; }
    if (st.st_size > 0) {
        char *map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, in, 0);
        off_t off = st.st_size / 2;
        if (map == MAP_FAILED) { perror("mmap"); return 1; }
        if (pread(in, buf, 10, off) != (st.st_size - off < 10 ? st.st_size - off : 10)) return 2;
        if (memcmp(buf, map + off, st.st_size - off < 10 ? st.st_size - off : 10) != 0) return 3;
        munmap(map, st.st_size);
    }
    printf("%lld\n", (long long)st.st_size);
    return 0;
}
"""


def test_a_c_program_reads_correctly(images, tmp_path):
    repo, dataset = images
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    source = tmp_path / "reader.c"
    source.write_text(C_READER)
    subprocess.run([compiler, "-O1", "-o", tmp_path / "reader", source], check=True)
    chosen = sorted(dataset.files)[::5]
    script = " && ".join(
        f"{tmp_path}/reader {DATA}/{rel} {tmp_path}/out{i}" for i, rel in enumerate(chosen)
    )
    proc = shell(repo, script)
    assert proc.stdout.split() == [str(len(dataset.files[rel])) for rel in chosen]
    for i, rel in enumerate(chosen):
        assert (tmp_path / f"out{i}").read_bytes() == dataset.files[rel]


NUMPY = """
import json, sys
import numpy
print(json.dumps({p: numpy.fromfile(p, dtype=numpy.uint8).tobytes().hex() for p in sys.argv[1:]}))
"""


def test_numpy_fromfile(images, tmp_path):
    pytest.importorskip("numpy")
    import sys

    repo, dataset = images
    script = tmp_path / "np.py"
    script.write_text(NUMPY)
    chosen = sorted(dataset.files)[:3]
    proc = stream_mounted(repo, sys.executable, script, *(f"{DATA}/{rel}" for rel in chosen))
    got = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert got == {f"{DATA}/{rel}": dataset.files[rel].hex() for rel in chosen}


def test_a_file_opened_but_never_read_is_not_downloaded(images, tmp_path):
    # the kernel opens the view's files itself (no open upcall): bytes are fetched at the
    # first read, so a program that opens a file to check it can be opened downloads nothing
    repo, dataset = images
    stats_file = tmp_path / "stats.json"
    opened, read = sorted(dataset.files)[:2]
    proc = shell(
        repo,
        f": < {DATA}/{opened} && : < {DATA}/{opened} && echo opened && "
        f"cat {DATA}/{read} > {tmp_path}/out",
        options=("--prefetch", "none", "--stats", str(stats_file)),
    )
    assert proc.stdout == "opened\n"
    assert (tmp_path / "out").read_bytes() == dataset.files[read]
    assert read_stats(stats_file)["demand_files"] == 1
    assert repo.tracked_files(DATA) == {read: dataset.files[read]}


def test_concurrent_readers_fetch_each_object_once(images, tmp_path):
    repo, dataset = images
    stats_file = tmp_path / "stats.json"
    # every file by 8 parallel md5sums, each file by 4 of them at once
    proc = shell(
        repo,
        f"cd {DATA} && find . -type f | sort > {tmp_path}/list && "
        f"for i in 1 2 3 4; do cat {tmp_path}/list; done | xargs -P 8 -n 3 md5sum",
        options=("--prefetch", "none", "--stats", str(stats_file)),
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 * len(dataset.files)
    for line in lines:
        digest, path = line.split()
        assert digest == md5(dataset.files[path[2:]])
    stats = read_stats(stats_file)
    assert stats["demand_files"] == len(dataset.files)
    assert repo.tracked_files(DATA) == dataset.files


def test_prefetched_files_are_placed_after_unmounting(images, tmp_path):
    repo, dataset = images
    stats_file = tmp_path / "stats.json"
    cache = repo.root / ".dvc" / "cache" / "files" / "md5"
    # list one directory and read one file, then wait until the prefetcher has brought in more
    first = sorted(dataset.files)[0]
    wait = (
        f"n=0; while [ $(find {cache} -type f 2>/dev/null | wc -l) -lt 4 ] && [ $n -lt 600 ]; "
        "do sleep 0.05; n=$((n+1)); done"
    )
    listed = f"{DATA}/{first.rsplit('/', 1)[0]}"
    shell(
        repo,
        f"ls {listed} > /dev/null && cat {DATA}/{first} > /dev/null; {wait}",
        options=("--prefetch", "listed", "--stats", str(stats_file)),
    )
    # NOTE: the prefetcher may win the race for the file read, which then counts as prefetched
    stats = read_stats(stats_file)
    assert stats["prefetched_files"] >= 2
    present = repo.tracked_files(DATA)
    assert first in present
    assert len(present) == stats["demand_files"] + stats["prefetched_files"]
    assert all(dataset.files[rel] == data for rel, data in present.items())


def test_workspace_files_stay_authoritative(images, tmp_path):
    repo, dataset = images
    rel, other = sorted(dataset.files)[:2]
    local = repo.root / DATA / rel
    local.parent.mkdir(parents=True)
    local.write_bytes(b"edited locally")
    (local.parent / "untracked.txt").write_bytes(b"mine")
    parent = f"{DATA}/{rel.rsplit('/', 1)[0]}"
    proc = shell(repo, f"cat {DATA}/{rel}; echo; cat {parent}/untracked.txt; echo; ls {parent}")
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["edited locally", "mine"]
    assert "untracked.txt" in lines[2:] and other.rsplit("/", 1)[-1] in lines[2:]
    assert local.read_bytes() == b"edited locally"
    assert not (repo.root / DATA / other).exists()  # only listed, never opened


def test_writes_get_erofs(images, tmp_path):
    repo, dataset = images
    rel = sorted(dataset.files)[0]
    proc = shell(
        repo,
        f"touch {DATA}/new.txt; echo x >> {DATA}/{rel}; mkdir {DATA}/newdir; rm {DATA}/{rel}; "
        "exit 0",
    )
    assert proc.stderr.count("Read-only file system") == 4, proc.stderr
    assert not (repo.root / DATA / "new.txt").exists()
    assert not (repo.root / DATA).exists()  # nothing was fetched: the mount point is removed


def test_a_failed_fetch_is_an_eio_and_dvc_says_why(fuse, dvc_repo, moto_server, tmp_path):
    dataset = dvc_repo.make_dataset(DATA, nfiles=2, size=100, depth=0)
    dvc_repo.wipe()
    lost, kept = sorted(dataset.files)
    oid = md5(dataset.files[lost])
    bucket, prefix = dvc_repo.remote_url.removeprefix("s3://").split("/", 1)
    key = f"{prefix}/files/md5/{oid[:2]}/{oid[2:]}"
    moto_server.client().delete_object(Bucket=bucket, Key=key)
    proc = shell(dvc_repo, f"cat {DATA}/{kept} > {tmp_path}/kept; cat {DATA}/{lost}", check=False)
    assert proc.returncode != 0
    assert f"{DATA}/{lost}: Input/output error" in proc.stderr
    assert f"failed to fetch '{DATA}/{lost}' from remote 'storage'" in proc.stderr
    assert (tmp_path / "kept").read_bytes() == dataset.files[kept]
    assert mounts_under(dvc_repo.root) == []


def test_a_large_cached_file_read_through_the_mount_counts_once(fuse, dvc_repo, tmp_path):
    # the kernel reads a large file in several requests at once (readahead): one file served
    # from the cache, whatever the number of reads
    dataset = dvc_repo.make_dataset(DATA, nfiles=2, size=4 * 1024 * 1024, depth=0)
    dvc_repo.wipe()
    dvc_repo.dvc("fetch", "-q")
    stats_file = tmp_path / "stats.json"
    shell(
        dvc_repo,
        f"cat {DATA}/* > {tmp_path}/out",
        options=("--prefetch", "none", "--stats", str(stats_file)),
    )
    assert (tmp_path / "out").read_bytes() == b"".join(
        dataset.files[rel] for rel in sorted(dataset.files)
    )
    stats = read_stats(stats_file)
    assert (stats["cached_files"], stats["demand_files"]) == (2, 0)


def test_without_a_remote_the_cache_is_served_and_only_an_absent_object_fails(
    fuse, dvc_repo, tmp_path
):
    dataset = dvc_repo.make_dataset(DATA, nfiles=4, size=100, depth=0)
    shutil.rmtree(dvc_repo.root / DATA)
    dvc_repo.dvc("remote", "remove", dvc_repo.remote_name)
    absent, *present = sorted(dataset.files)
    oid = md5(dataset.files[absent])
    (dvc_repo.root / ".dvc" / "cache" / "files" / "md5" / oid[:2] / oid[2:]).unlink()
    stats_file = tmp_path / "stats.json"
    proc = shell(
        dvc_repo,
        f"cd {DATA} && md5sum {' '.join(present)} > {tmp_path}/sums; cat {absent}",
        options=("--prefetch", "none", "--stats", str(stats_file)),
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    sums = dict(reversed(line.split()) for line in (tmp_path / "sums").read_text().splitlines())
    assert sums == {rel: md5(dataset.files[rel]) for rel in present}, proc.stderr
    assert f"{absent}: Input/output error" in proc.stderr
    assert (
        f"ERROR: failed to fetch '{DATA}/{absent}': it is not in the cache and no remote is set"
        in proc.stderr
    )
    assert dvc_repo.tracked_files(DATA) == {rel: dataset.files[rel] for rel in present}
    stats = read_stats(stats_file)
    assert (stats["cached_files"], stats["demand_files"]) == (len(present), 0)
    assert mounts_under(dvc_repo.root) == []


def test_reads_served_from_the_cache_fill_nothing_in_the_background(fuse, dvc_repo, tmp_path):
    # Under the view a cached file is read from the cache, and the files fetched are placed after
    # the unmount: a readahead after such reads would only have placed files nobody read.
    dataset = dvc_repo.make_dataset(DATA, nfiles=60, size=100, depth=0)
    shutil.rmtree(dvc_repo.root / DATA)
    read = sorted(dataset.files)[:40]  # in name order: the readahead's own order
    shell(
        dvc_repo,
        f"cd {DATA} && cat {' '.join(read)} > {tmp_path}/out",
        options=("--prefetch", "auto"),
    )
    assert (tmp_path / "out").read_bytes() == b"".join(dataset.files[rel] for rel in read)
    assert dvc_repo.tracked_files(DATA) == {rel: dataset.files[rel] for rel in read}
    assert mounts_under(dvc_repo.root) == []
