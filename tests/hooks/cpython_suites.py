"""CPython's own test suites give the same results with and without the hooks.

For each interpreter given, the suites of its own ``test`` package run twice in a clone whose
tracked directory is absent: as they are, then under ``dvc stream --prefetch none``, which
installs the hooks in that interpreter (it needs no dvc: only the hooks, from the standard
library). Every case must end the same way both times (passed, failed, skipped), and every test
file must end in the same state. An interpreter without its ``test`` package is skipped, with a
line saying so.

Run: ``python tests/hooks/cpython_suites.py [--python EXE ...] [--suites NAME ...]``, in an
environment with the ``tests`` extra (``nox -s cpython``). Exit status 1 if any result differs.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dvc_stream.testing.moto import MotoServer
    from dvc_stream.testing.repos import DvcRepo

SUITES = (
    "test_os",
    "test_pathlib",
    "test_glob",
    "test_shutil",
    "test_posixpath",
    "test_genericpath",
    "test_fileio",
    "test_tempfile",
    "test_io",
    "test_zipfile",
    "test_tarfile",
)
VERSIONS = ("3.10", "3.11", "3.12", "3.13")
SUITE_TIMEOUT = 3600  # seconds for one run of every suite on one interpreter

# What a program under the hooks sees of the absent tracked directory: it proves the hooks are
# installed and reach the broker in the interpreter under test.
PROBE = "import os, sys; sys.exit(0 if sorted(os.listdir('data')) == {names!r} else 3)"
HAS_TEST_PACKAGE = "import test.libregrtest, test.support"

# regrtest's summary: "2 tests failed:" then the names indented on the following lines
_SUMMARY_HEADER = re.compile(r"^(\d+) tests? (?P<state>[a-z ]+(?: \([^)]*\))?):$")


@dataclass
class Results:
    """One run of the suites: each case's outcome, each test file's state besides "OK"."""

    cases: dict[str, str] = field(default_factory=dict)  # case id -> passed/failed/skipped
    files: dict[str, str] = field(default_factory=dict)  # test file -> regrtest's state
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of every process of the run: the cost on an idle machine

    def count(self, outcome: str) -> int:
        return sum(1 for value in self.cases.values() if value == outcome)

    def summary(self) -> str:
        failed, skipped = self.count("failed"), self.count("skipped")
        return (
            f"{len(self.cases):,} cases, {failed} failed, {skipped} skipped"
            f" ({self.seconds:.0f} s, {self.cpu_seconds:.0f} s CPU)"
        )


def read_junit(path: Path) -> dict[str, str]:
    """Case id -> "passed", "failed" (failure or error) or "skipped", from regrtest's XML."""
    cases = {}
    for case in ET.parse(path).iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            outcome = "failed"
        elif "skipped" in tags:
            outcome = "skipped"
        else:
            outcome = "passed"
        cases[case.get("name", "")] = outcome
    return cases


def read_summary(output: str) -> dict[str, str]:
    """Test file -> state, from the lists in regrtest's summary ("1 test failed:" ...)."""
    files: dict[str, str] = {}
    state = None
    for line in output.splitlines():
        header = _SUMMARY_HEADER.match(line)
        if header:
            state = header["state"]
        elif state and line.startswith("    ") and line.strip():
            files.update(dict.fromkeys(line.split(), state))
        else:
            state = None
    return files


def differences(plain: Results, hooked: Results) -> list[str]:
    """Every case and test file that ends differently with the hooks; empty when none does."""
    lines = []
    for name in sorted(plain.cases.keys() | hooked.cases.keys()):
        before, after = plain.cases.get(name, "not run"), hooked.cases.get(name, "not run")
        if before != after:
            lines.append(f"{name}: {before} without the hooks, {after} with them")
    for name in sorted(plain.files.keys() | hooked.files.keys()):
        before, after = plain.files.get(name, "OK"), hooked.files.get(name, "OK")
        if before != after:
            lines.append(f"{name}: {before} without the hooks, {after} with them")
    return lines


def failure_details(xml: Path, names: set[str]) -> str:
    """The tracebacks regrtest recorded for ``names``."""
    parts = []
    for case in ET.parse(xml).iter("testcase"):
        if case.get("name") in names:
            for child in case:
                if child.tag in ("failure", "error"):
                    parts.append(f"--- {case.get('name')}\n{child.text or child.get('message')}")
    return "\n".join(parts)


# -- running ------------------------------------------------------------------------------------


# NOTE: a venv's interpreter (nox's own, say) would bring the venv's packages into the suites
_BASE_INTERPRETER = "import sys; sys.exit(sys.prefix != sys.base_prefix)"


def _base_interpreter(exe: str | None) -> bool:
    if not exe:
        return False
    return subprocess.run([exe, "-c", _BASE_INTERPRETER], capture_output=True).returncode == 0


def interpreters() -> list[str]:
    """``python3.X`` for each version in VERSIONS, outside any venv: pyenv's, else from PATH."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = []
    for version in VERSIONS:
        candidates = sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"))
        candidates.append(shutil.which(f"python{version}"))
        exe = next((c for c in candidates if _base_interpreter(c)), None)
        if exe is None:
            print(f"Python {version}: skipped, not installed", flush=True)
        else:
            found.append(exe)
    return found


def make_clone(workdir: Path, moto: MotoServer) -> DvcRepo:
    """A fresh clone of a repo that tracks ``data``: the directory is absent from the clone."""
    from dvc_stream.testing.repos import make_repo

    origin = make_repo(workdir / "origin", moto)
    origin.make_dataset("data", nfiles=8, size=64, depth=1, fanout=2, push=True)
    return origin.clone(workdir / "clone")


def _under_hooks(command: list[str]) -> list[str]:
    return [sys.executable, "-m", "dvc", "stream", "--prefetch", "none", "--", *command]


def _run(command: list[str], clone: DvcRepo) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        cwd=clone.root,
        env=clone.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=SUITE_TIMEOUT,
        check=False,
    )


def run_suites(exe: str, suites: list[str], clone: DvcRepo, out: str, hooked: bool) -> Results:
    """One run of ``exe -m test suites...`` in the clone; its output goes to ``out``.log/.xml."""
    command = [exe, "-m", "test", *suites, "--junit-xml", f"{out}.xml"]
    start, cpu_start = time.perf_counter(), _children_cpu()
    proc = _run(_under_hooks(command) if hooked else command, clone)
    seconds, cpu_seconds = time.perf_counter() - start, _children_cpu() - cpu_start
    Path(f"{out}.log").write_text(proc.stdout)
    if not os.path.exists(f"{out}.xml"):
        raise RuntimeError(f"{' '.join(command)} wrote no results (exit {proc.returncode})")
    return Results(read_junit(Path(f"{out}.xml")), read_summary(proc.stdout), seconds, cpu_seconds)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _hooks_active(exe: str, clone: DvcRepo) -> bool:
    names = sorted(os.listdir(clone.root.parent / "origin" / "data"))
    return _run(_under_hooks([exe, "-c", PROBE.format(names=names)]), clone).returncode == 0


def check_interpreter(exe: str, suites: list[str], clone: DvcRepo, workdir: Path) -> bool:
    """Run the suites both ways on ``exe`` and print how they compare; False if they differ."""
    version = _run([exe, "-c", "import platform; print(platform.python_version())"], clone)
    name = f"Python {version.stdout.strip()} ({exe})"
    if _run([exe, "-c", HAS_TEST_PACKAGE], clone).returncode != 0:
        print(f"{name}: skipped, it has no `test` package", flush=True)
        return True
    if not _hooks_active(exe, clone):
        print(f"{name}: FAILED, the hooks do not show the absent tracked directory", flush=True)
        return False
    out = str(workdir / ("py" + version.stdout.strip().replace(".", "_")))
    try:
        plain = run_suites(exe, suites, clone, f"{out}-plain", hooked=False)
        hooked = run_suites(exe, suites, clone, f"{out}-hooked", hooked=True)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"{name}: FAILED, {exc}", flush=True)
        return False
    print(f"{name}:", flush=True)
    print(f"  without the hooks: {plain.summary()}", flush=True)
    print(f"  with the hooks:    {hooked.summary()}", flush=True)
    return _report(differences(plain, hooked), Path(f"{out}-hooked.xml"))


def _report(diffs: list[str], hooked_xml: Path) -> bool:
    if not diffs:
        print("  same results", flush=True)
        return True
    print("  DIFFERENT:\n" + "\n".join(f"    {line}" for line in diffs), flush=True)
    print(failure_details(hooked_xml, {line.partition(":")[0] for line in diffs}), flush=True)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[], help="interpreter to test")
    parser.add_argument("--suites", nargs="+", default=list(SUITES), help="regrtest names")
    parser.add_argument("--keep", action="store_true", help="keep the clone and the logs")
    args = parser.parse_args(argv)

    from dvc_stream.testing.moto import MotoServer

    workdir = Path(tempfile.mkdtemp(prefix="dvc-stream-cpython-"))
    start = time.perf_counter()
    with MotoServer() as moto:
        clone = make_clone(workdir, moto)
        ok = [
            check_interpreter(exe, args.suites, clone, workdir)
            for exe in args.python or interpreters()
        ]
    print(f"{len(ok)} interpreters in {time.perf_counter() - start:.0f} s", flush=True)
    if all(ok) and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"clone and logs kept in {workdir}", flush=True)
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
