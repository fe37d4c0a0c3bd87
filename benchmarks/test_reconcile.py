"""Reconciling at start-up after a version switch: a 1,000,000-entry output, 1,000 files present.

No remote: the new version's ``.dir`` and every object go straight into the local cache, and the
``.dvc`` file is written by hand. The 1,000 present files (one in each of 1,000 directories) were
placed for another version, as the record says, and are in DVC's state as the placer leaves them.
The switch changed 100 of them (their new objects are in the cache: replaced), dropped 50
(removed) and 10 were edited by the user (kept, with a warning); the other 840 are unchanged.

Measured, in this process: ``reconcile(repo, manifest)`` alone (walk the present files, look each
up in the new tree and in DVC's state, replace/remove, update the record); target at most 1 s.
Loading the new tree (the manifest's ``DirTree`` from the cached ``.dir``), which the run needs
anyway, is timed apart. Two more cases: the start-up check when nothing changed (the steady
state), and the one-time check of files present in an output that is not in the record (after a
``dvc pull``, say), per file, to size that check for a whole pulled dataset.

Run with ``pytest benchmarks/test_reconcile.py --benchmark-only``; ``--quick`` uses 100,000
entries, ``--smoke`` 20,000.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import pytest
from bench_lib import record_micro

ENTRIES = 1_000_000
QUICK_ENTRIES = 100_000
SMOKE_ENTRIES = 20_000  # no fewer than FIRST_CHECK_PRESENT
SUBDIRS = 1_000
PRESENT = 1_000
FIRST_CHECK_PRESENT = 20_000
TARGET_S = 1.0
OUTPUT = "data/images"


def _changed(i: int) -> bool:
    return i < PRESENT and i % 10 == 0


def _dropped(i: int) -> bool:
    return i < PRESENT and i % 20 == 5


def _edited(i: int) -> bool:
    return i < PRESENT and i % 100 == 7


def _key(i: int) -> tuple[str, str]:
    return f"d{i % SUBDIRS:03d}", f"f{i:07d}.bin"


def _blob(name: str) -> bytes:
    return (name.encode() + b"\n") * 64


class Switched:
    """A repo whose ``data/images.dvc`` tracks the new version; ``place()`` lays out the files."""

    def __init__(self, root, env, entries: int):
        self.root = root
        self.env = env
        self.entries = entries
        self.cache = root / ".dvc" / "cache" / "files" / "md5"
        self.objects = [self._put(_blob(f"object {n}")) for n in range(4)]
        self.changed_oid = self._put(_blob("changed in the new version"))
        self.new_oid = self._write_tree()
        self.old_oid = hashlib.md5(b"the version the files were placed for").hexdigest() + ".dir"

    def _put(self, data: bytes) -> str:
        oid = hashlib.md5(data).hexdigest()
        path = self.cache / oid[:2] / oid[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return oid

    def oid_of(self, i: int) -> str:
        return self.changed_oid if _changed(i) else self.objects[i % 4]

    def _write_tree(self) -> str:
        from dvc_data.hashfile.hash_info import HashInfo
        from dvc_data.hashfile.meta import Meta
        from dvc_data.hashfile.tree import Tree

        tree = Tree()
        for i in range(self.entries):
            if not _dropped(i):
                tree.add(_key(i), Meta(size=1024), HashInfo("md5", self.oid_of(i)))
        tree.digest()
        oid = tree.hash_info.value
        (self.cache / oid[:2]).mkdir(parents=True, exist_ok=True)
        (self.cache / oid[:2] / oid[2:]).write_bytes(tree.as_bytes())
        (self.root / "data").mkdir(exist_ok=True)
        (self.root / f"{OUTPUT}.dvc").write_text(
            f"outs:\n- md5: {oid}\n  nfiles: {len(tree)}\n  hash: md5\n  path: images\n"
        )
        return oid

    def place(self, count: int, switched: bool) -> None:
        """Files 0..count-1 as a run placed them; for the old version if ``switched``."""
        from dvc.repo import Repo
        from dvc_data.hashfile.hash_info import HashInfo
        from dvc_objects.fs.local import localfs

        from dvc_stream.workspace import checked, record

        shutil.rmtree(self.root / OUTPUT, ignore_errors=True)
        tmp_dir = self.root / ".dvc" / "tmp"
        for name in (record.RECORD, checked.CHECKED):
            (tmp_dir / name).unlink(missing_ok=True)
        saved = []
        for i in range(count):
            if _dropped(i) and not switched:
                continue
            path = self.root / OUTPUT / os.path.join(*_key(i))
            path.parent.mkdir(parents=True, exist_ok=True)
            oid = self.objects[i % 4] if switched else self.oid_of(i)
            path.write_bytes(_blob(f"object {i % 4}") if switched else self._bytes(oid))
            saved.append((str(path), HashInfo("md5", oid), None))
        with Repo(str(self.root)) as repo:
            repo.state.save_many(saved, localfs)
        for i in range(count):
            if switched and _edited(i):
                (self.root / OUTPUT / os.path.join(*_key(i))).write_bytes(b"edited by the user")
        if switched:
            record.claim(str(tmp_dir), OUTPUT, self.old_oid)

    def _bytes(self, oid: str) -> bytes:
        return (self.cache / oid[:2] / oid[2:]).read_bytes()

    def open(self):
        """A repo and its manifest with the tree loaded; (repo, manifest, seconds to load)."""
        from dvc.repo import Repo

        from dvc_stream.workspace.manifest import Manifest

        repo = Repo(str(self.root))
        start = time.perf_counter()
        manifest = Manifest.from_repo(repo)
        for output in manifest.outputs.values():
            output.tree  # noqa: B018
        return repo, manifest, time.perf_counter() - start


@pytest.fixture(scope="module")
def switched(tmp_path_factory, bench_config):
    from dvc_stream.testing.cli import dvc_env, make_config_dir, run_dvc, run_git

    base = tmp_path_factory.mktemp("reconcile")
    root = base / "repo"
    root.mkdir()
    env = dvc_env(config_dir=make_config_dir(base), DVC_SITE_CACHE_DIR=str(base / "site-cache"))
    run_git("init", "-q", cwd=root, env=env)
    run_dvc("init", "-q", cwd=root, env=env)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        yield Switched(root, env, bench_config.pick(ENTRIES, QUICK_ENTRIES, SMOKE_ENTRIES))


def _measure(benchmark, switched: Switched, count: int, moved: bool) -> dict:
    from dvc_stream.workspace.reconcile import reconcile

    loads, opened, results = [], [], []

    def setup():
        switched.place(count, moved)
        repo, manifest, load_s = switched.open()
        loads.append(load_s)
        opened.append(repo)
        return (repo, manifest), {}

    def run(repo, manifest):
        results.append(reconcile(repo, manifest))

    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    for repo in opened:
        repo.close()
    stats = benchmark.stats.stats
    return {
        "entries": switched.entries,
        "present": count,
        "reconcile_s_median": stats.median,
        "reconcile_s_max": stats.max,
        "tree_load_s_median": sorted(loads)[len(loads) // 2],
        "replaced": len(results[-1].replaced),
        "removed": len(results[-1].removed),
        "kept": len(results[-1].kept),
        "checked": results[-1].checked,
    }


def test_reconcile_after_switch(benchmark, switched):
    result = _measure(benchmark, switched, PRESENT, moved=True)
    benchmark.extra_info.update(result)
    print(json.dumps(result))
    assert (result["replaced"], result["removed"], result["kept"]) == (100, 50, 10)
    value = result["reconcile_s_median"]
    verdict = "meets" if value <= TARGET_S else "misses"
    record_micro(
        f"reconcile after a version switch, {switched.entries:,} entries, {PRESENT:,} present",
        f"{value:.3f} s ({verdict} target <= {TARGET_S:g} s)",
        "100 replaced, 50 removed, 10 kept, 840 unchanged; loading the new tree (needed by the "
        f"run anyway) took {result['tree_load_s_median']:.2f} s more",
        value=value,
        target=TARGET_S,
    )


def test_reconcile_nothing_to_do(benchmark, switched):
    """The steady state: the record says the files were placed for the tracked version."""
    from dvc_stream.workspace import record

    def setup():
        switched.place(PRESENT, switched=False)
        record.claim(str(switched.root / ".dvc" / "tmp"), OUTPUT, switched.new_oid)
        repo, manifest, _load_s = switched.open()
        return (repo, manifest), {}

    from dvc_stream.workspace.reconcile import reconcile

    benchmark.pedantic(lambda repo, manifest: reconcile(repo, manifest), setup=setup, rounds=3)
    value = benchmark.stats.stats.median
    record_micro(
        f"start-up check, nothing to reconcile, {switched.entries:,} entries",
        f"{value * 1000:.2f} ms",
        "the record says the present files hold the tracked version",
        value=value,
    )


def test_first_check_of_a_pulled_output(benchmark, switched):
    """Files present in an output that is not in the record: each is looked up once."""
    result = _measure(benchmark, switched, FIRST_CHECK_PRESENT, moved=False)
    benchmark.extra_info.update(result)
    print(json.dumps(result))
    assert result["checked"] == [OUTPUT]
    per_file_us = result["reconcile_s_median"] / FIRST_CHECK_PRESENT * 1e6
    record_micro(
        f"first check of {FIRST_CHECK_PRESENT:,} present files not in the record",
        f"{result['reconcile_s_median']:.3f} s ({per_file_us:.0f} us per file)",
        "once per output and version (and after each `dvc checkout` of it); a whole pulled "
        f"{switched.entries:,}-file output would take about "
        f"{per_file_us * switched.entries / 1e6:.0f} s",
        value=result["reconcile_s_median"],
    )
