"""A streamed clone through a project's life, as random sequences of what users do: streamed
reads, branch switches, edits, new files, ``dvc add``, ``dvc repro`` with and without
``dvc stream``, ``dvc pull`` and two runs at once. After every step each read gave the
checked-out version's bytes or the user's own, and no ``.dvc`` file or ``dvc.lock`` records
anything but the tree the model expects; at the end ``dvc pull`` gives exactly that tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dvc_stream.testing.programs import last_json, spawn_stream, stream, write_script
from dvc_stream.testing.repos import file_content, make_repo

from .stateful_model import COUNT, LABELS, RAW, Lock, Model, Version, md5, tree_oid

RAW_V1_NAMES = ["a/f0", "a/f1", "a/f2", "b/f3", "b/f4", "b/f5", "c/f6", "f7", "f8", "f9"]
RAW_V1 = {f"{rel}.bin": file_content(1, rel, 64 + 16 * i) for i, rel in enumerate(RAW_V1_NAMES)}
CHANGED = ["a/f1.bin", "b/f4.bin", "f8.bin"]
REMOVED = "c/f6.bin"  # the only file of c/: v2 has no c/ at all
ADDED = ["d/f10.bin", "f11.bin"]  # d/ is new in v2
RAW_V2 = {
    **{rel: data for rel, data in RAW_V1.items() if rel != REMOVED},
    **{rel: file_content(2, rel, 80) for rel in [*CHANGED, *ADDED]},
}
LABELS_V1 = b"id,label\n0,cat\n1,dog\n"
LABELS_V2 = b"id,label\n0,cat\n1,dog\n2,bird\n"
NEW_NAMES = ["new.bin", "a/new.bin", "e/new.bin"]

TRACKED = sorted({f"{RAW}/{rel}" for rel in {*RAW_V1, *RAW_V2}} | {LABELS})
UNIVERSE = [*TRACKED, *(f"{RAW}/{name}" for name in NEW_NAMES)]

COUNT_PY = """\
import os
n = sum(len(files) for _, _, files in os.walk("data/raw"))
with open("data/count.txt", "w") as fobj:
    fobj.write(f"{n}\\n")
"""

READ_PY = """\
import hashlib, json, sys
def read(path):
    try:
        with open(path, "rb") as fobj:
            return ["ok", hashlib.md5(fobj.read()).hexdigest()]
    except OSError as exc:
        return [type(exc).__name__, str(exc)]
print(json.dumps({path: read(path) for path in sys.argv[1:]}))
"""

PATHS = st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=4, unique=True)
STREAM = ("--prefetch", "none")


def _write_version(repo, raw: dict[str, bytes], labels: bytes) -> None:
    base = repo.root / RAW
    for path in base.rglob("*") if base.exists() else ():
        if path.is_file() and path.relative_to(base).as_posix() not in raw:
            path.unlink()
    for rel, data in raw.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    (repo.root / LABELS).write_bytes(labels)
    repo.dvc("add", "-q", RAW, LABELS)
    repo.dvc("repro", "-q")
    repo.git("add", "-A")
    repo.commit("data version")
    repo.push()


def _build_template(root: Path, moto_server):
    """Two branches, main and v2, pushed; count run on each."""
    repo = make_repo(root, moto_server)
    (repo.root / "count.py").write_text(COUNT_PY)
    (repo.root / "data").mkdir()
    cmd = f"{sys.executable} count.py"
    repo.dvc("stage", "add", "-q", "-n", "count", "-d", RAW, "-o", COUNT, cmd)
    _write_version(repo, RAW_V1, LABELS_V1)
    repo.git("checkout", "-q", "-b", "v2")
    _write_version(repo, RAW_V2, LABELS_V2)
    repo.git("checkout", "-q", "main")
    return repo


@pytest.fixture(scope="module")
def template(tmp_path_factory, moto_server):
    repo = _build_template(tmp_path_factory.mktemp("stateful") / "template", moto_server)
    assert _dvcfile_out(repo.root, f"{RAW}.dvc")["md5"] == tree_oid(RAW_V1)
    return repo


def _versions() -> dict[str, Version]:
    return {
        "main": Version(dict(RAW_V1), LABELS_V1, Lock(dict(RAW_V1), len(RAW_V1))),
        "v2": Version(dict(RAW_V2), LABELS_V2, Lock(dict(RAW_V2), len(RAW_V2))),
    }


def _dvcfile_out(root: Path, name: str) -> dict:
    return yaml.safe_load((root / name).read_text())["outs"][0]


def _lock(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]["count"]


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root/data`` (posix path from ``root`` -> bytes)."""
    found = (root / "data").rglob("*")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in found if p.is_file()}


def _error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]


class PartialWorkspace(RuleBasedStateMachine):
    """A fresh clone of ``template`` (no data, empty cache) and the model of what it must be."""

    def __init__(self, template, scratch: Path, name: str) -> None:
        super().__init__()
        self.scratch = scratch
        self.repo = template.clone(scratch / name)
        self.root = self.repo.root
        self.read_py = write_script(scratch, "read.py", READ_PY)
        self.model = Model("main", _versions())
        self.edits = 0
        self.names = _content_names()
        self.contents = _contents()

    # -- rules ---------------------------------------------------------------------------------

    @rule(paths=PATHS)
    def streamed_read(self, paths: list[str]) -> None:
        proc = stream(self.repo, sys.executable, self.read_py, *paths, options=STREAM, check=False)
        assert proc.returncode == 0, proc.stderr
        self.model.reconcile()
        self._check_reads(last_json(proc), proc.stderr)

    @rule(first=PATHS, second=PATHS)
    def two_runs_at_once(self, first: list[str], second: list[str]) -> None:
        second = list(dict.fromkeys([*second, first[0]]))  # the two always overlap
        procs = [
            spawn_stream(self.repo, sys.executable, self.read_py, *paths, options=STREAM)
            for paths in (first, second)
        ]
        results = [_finish(proc) for proc in procs]
        self.model.reconcile()
        for result, stderr in results:
            self._check_reads(result, stderr)

    @rule()
    def git_checkout(self) -> None:
        changed = self.repo.git("status", "--porcelain", "--untracked-files=no").stdout
        assert not changed, f"uncommitted changes before the switch:\n{changed}"
        self.model.switch()
        self.repo.git("checkout", "-q", self.model.branch)

    @precondition(lambda self: self.model.raw_present())
    @rule(path=st.sampled_from([p for p in TRACKED if p != LABELS]))
    def edit_tracked_file(self, path: str) -> None:
        self._write(path)

    @rule()
    def edit_labels(self) -> None:
        self._write(LABELS)

    @precondition(lambda self: self.model.raw_present())
    @rule(name=st.sampled_from(NEW_NAMES))
    def new_file_by_hand(self, name: str) -> None:
        self._write(f"{RAW}/{name}")

    @precondition(lambda self: self.model.raw_present() and self.model.dvc_sees_raw())
    @rule()
    def dvc_add_raw(self) -> None:
        outcomes = self.model.add_outcomes()
        self.repo.dvc("add", "-q", RAW)
        recorded = self._recorded_tree()
        wrong = {}
        for rel in sorted({*recorded, *outcomes}):
            allowed = [None if d is None else md5(d) for d in outcomes.get(rel, {None})]
            if recorded.get(rel) not in allowed:
                wrong[rel] = (
                    f"{self._name(recorded.get(rel))}, not {list(map(self._name, allowed))}"
                )
        assert not wrong, f"dvc add {RAW} recorded {wrong}"
        self._commit("dvc add data/raw")
        self.model.commit_raw({rel: self.contents[oid] for rel, oid in recorded.items()})

    @precondition(lambda self: LABELS in self.model.user)
    @rule()
    def dvc_add_labels(self) -> None:
        self.repo.dvc("add", "-q", LABELS)
        self._commit("dvc add data/labels.csv")
        self.model.commit_labels()

    @precondition(lambda self: self.model.dvc_sees_raw() or not self.model.raw_present())
    @rule()
    def dvc_repro(self) -> None:
        before = self._snapshot()
        proc = self.repo.dvc("repro", "-f", "count", check=False)
        if self.model.raw_partial():
            assert proc.returncode != 0, f"ran over a partial data/raw:\n{proc.stderr}"
            errors = _error_lines(proc)
            assert len(errors) == 1 and RAW in errors[0], proc.stderr
            self._assert_unchanged(before, "a refused dvc repro")
            return
        assert proc.returncode == 0, proc.stderr
        self._after_repro()

    @rule()
    def dvc_repro_streamed(self) -> None:
        command = (sys.executable, "-m", "dvc", "repro", "-f", "count")
        proc = stream(self.repo, *command, options=STREAM, check=False)
        assert proc.returncode == 0, proc.stderr
        self.model.reconcile()
        self._after_repro()

    @rule()
    def dvc_pull(self) -> None:
        before = self._snapshot()
        proc = self.repo.dvc("pull", check=False)
        if self.model.user:
            assert proc.returncode != 0, f"user files overwritten: {sorted(self.model.user)}"
            self._assert_unchanged(before, "a refused dvc pull")
            self.model.fetched()
            return
        assert proc.returncode == 0, proc.stderr
        self.model.pulled()
        self._assert_tree("dvc pull")

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def records_hold_the_tracked_trees(self) -> None:
        version = self.model.version
        raw = _dvcfile_out(self.root, f"{RAW}.dvc")
        assert (raw["md5"], raw.get("nfiles")) == (tree_oid(version.raw), len(version.raw)), (
            f"{RAW}.dvc: {self._tree_diff(raw['md5'], version.raw)}"
        )
        labels = _dvcfile_out(self.root, f"{LABELS}.dvc")["md5"]
        assert labels == md5(version.labels), f"{LABELS}.dvc: {self._name(labels)}"
        lock = _lock(self.root)
        dep, out = lock["deps"][0], lock["outs"][0]
        lock_tree = version.lock.tree
        assert (dep["md5"], dep.get("nfiles")) == (tree_oid(lock_tree), len(lock_tree)), (
            f"dvc.lock: {self._tree_diff(dep['md5'], lock_tree)}"
        )
        assert out["md5"] == md5(f"{version.lock.count}\n".encode()), out

    @invariant()
    def user_files_are_kept(self) -> None:
        now = _files(self.root)
        lost = {
            path: self._name(md5(now[path])) if path in now else "absent"
            for path, data in self.model.user.items()
            if now.get(path) != data
        }
        assert not lost, f"the user's files were changed: {lost}"

    def teardown(self) -> None:
        try:
            if sys.exc_info()[0] is None:
                self._final_pull()
        finally:
            _rmtree(self.root)
            _rmtree(self.repo.site_cache_dir)

    # -- steps ---------------------------------------------------------------------------------

    def _write(self, path: str) -> None:
        self.edits += 1
        data = f"edit {self.edits} of {path}\n".encode()
        self.names[md5(data)] = f"the user's edit {self.edits}"
        self.contents[md5(data)] = data
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # NOTE: as an editor saves; never through a cache link
        target.write_bytes(data)
        self.model.write(path, data)

    def _commit(self, message: str) -> None:
        self.repo.git("commit", "-q", "-a", "--allow-empty", "--no-verify", "-m", message)

    def _after_repro(self) -> None:
        """``count`` ran over the tracked tree plus the user's files; ``data/raw.dvc`` is kept
        or records the user's files too, and ``dvc.lock`` the tree the stage ran on."""
        merged = self.model.merged_raw()
        count = (self.root / COUNT).read_text()
        assert count == f"{len(merged)}\n", f"count saw {count.strip()}, not {len(merged)} files"
        recorded = _dvcfile_out(self.root, f"{RAW}.dvc")["md5"]
        if recorded == tree_oid(merged):
            self.model.commit_raw(merged)
        dep = _lock(self.root)["deps"][0]["md5"]
        trees = [merged] if recorded == tree_oid(merged) else [self.model.version.raw, merged]
        ran_on = next((tree for tree in trees if tree_oid(tree) == dep), None)
        assert ran_on is not None, f"dvc.lock: {self._tree_diff(dep, merged)}"
        self.model.record_run(ran_on, len(merged))
        self._commit("dvc repro")

    def _check_reads(self, results: dict[str, list], stderr: str) -> None:
        wrong = {}
        for path, result in results.items():
            expected = self.model.expected_read(path)
            want = ["ok", md5(expected)] if expected is not None else ["FileNotFoundError"]
            if result[: len(want)] != want:
                got = self._name(result[1]) if result[0] == "ok" else result
                wrong[path] = f"read {got}, expected {self._name(want[-1])}"
            self.model.read(path)
        assert not wrong, f"{wrong}\n--- stderr ---\n{stderr}"

    def _snapshot(self) -> dict[str, bytes]:
        return {**_files(self.root), "dvc.lock": (self.root / "dvc.lock").read_bytes()}

    def _assert_unchanged(self, before: dict[str, bytes], what: str) -> None:
        after = self._snapshot()
        changed = sorted(p for p in {*before, *after} if before.get(p) != after.get(p))
        assert not changed, f"{what} changed {changed}"

    def _assert_tree(self, what: str) -> None:
        now = _files(self.root)
        now = {p: d for p, d in now.items() if not p.endswith((".dvc", ".gitignore"))}
        expected = self.model.expected_tree()
        wrong = {
            path: f"{self._name(md5(now[path])) if path in now else 'absent'}, expected "
            f"{self._name(md5(expected[path])) if path in expected else 'absent'}"
            for path in sorted({*now, *expected})
            if now.get(path) != expected.get(path)
        }
        assert not wrong, f"after {what}: {wrong}"

    def _final_pull(self) -> None:
        force = ("--force",) if self.model.user else ()
        self.repo.dvc("pull", *force)
        self.model.pulled()
        self._assert_tree(f"the final dvc pull {' '.join(force)}")

    # -- reports -------------------------------------------------------------------------------

    def _name(self, digest: str | None) -> str:
        return "absent" if digest is None else self.names.get(digest, digest)

    def _recorded_tree(self) -> dict[str, str]:
        """relpath -> md5 of the tree ``data/raw.dvc`` records (its ``.dir`` is in the cache)."""
        oid = _dvcfile_out(self.root, f"{RAW}.dvc")["md5"]
        path = self.root / ".dvc/cache/files/md5" / oid[:2] / oid[2:]
        return {entry["relpath"]: entry["md5"] for entry in json.loads(path.read_text())}

    def _tree_diff(self, oid: str, expected: dict[str, bytes]) -> str:
        """What a recorded tree holds that the expected one does not, and the reverse."""
        path = self.root / ".dvc/cache/files/md5" / oid[:2] / oid[2:]
        if not path.exists():
            return f"{oid} (not in the cache), expected {len(expected)} files"
        got = {e["relpath"]: e["md5"] for e in json.loads(path.read_text())}
        want = {rel: md5(data) for rel, data in expected.items()}
        diff = {
            rel: f"{self._name(got[rel]) if rel in got else 'absent'}, expected "
            f"{self._name(want[rel]) if rel in want else 'absent'}"
            for rel in sorted({*got, *want})
            if got.get(rel) != want.get(rel)
        }
        return f"{len(got)} files, expected {len(want)}: {diff}"


def _content_names() -> dict[str, str]:
    names = {}
    for branch, version in _versions().items():
        names.update({md5(data): f"{branch}'s {rel}" for rel, data in version.raw.items()})
        names[md5(version.labels)] = f"{branch}'s labels.csv"
    return names


def _contents() -> dict[str, bytes]:
    versions = _versions().values()
    return {md5(d): d for v in versions for d in [*v.raw.values(), v.labels]}


def _finish(proc: subprocess.Popen[str]) -> tuple[dict[str, list], str]:
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1]), stderr


def _rmtree(path: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", path], check=False, capture_output=True)
    subprocess.run(["rm", "-rf", path], check=True)


def _run(template, scratch: Path, **limits) -> None:
    names = (f"clone-{n}" for n in range(1_000_000))
    run_state_machine_as_test(
        lambda: PartialWorkspace(template, scratch, next(names)),
        settings=settings(
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            **limits,
        ),
    )


# NOTE: the default run draws the same sequences every time (derandomized), so that the suite
# gives one answer per commit; the long run below draws new ones each time, and a failing run
# shrinks its sequence, a dvc subprocess per step: minutes.
@pytest.mark.heavy
@pytest.mark.timeout(900)
def test_partial_workspace_through_random_steps(template, tmp_path):
    _run(template, tmp_path, max_examples=2, stateful_step_count=8, derandomize=True)


@pytest.mark.long
@pytest.mark.timeout(3600)
def test_partial_workspace_through_random_steps_long(template, tmp_path, request):
    if "long" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a long run: `nox -s reliability` or `pytest -m long`")
    _run(template, tmp_path, max_examples=20, stateful_step_count=25)
