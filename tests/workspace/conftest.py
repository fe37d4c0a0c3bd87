"""A pushed repo with a data source ``data/raw``, a single-file output ``data/labels.csv`` and a
stage ``count`` over ``data/raw``; each test gets a fresh ``git clone`` of it (no data, no cache).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from dvc_stream.testing import Dataset, DvcRepo, make_repo
from dvc_stream.testing.programs import last_json, md5, stream, write_script

if TYPE_CHECKING:
    from dvc_stream.workspace.reconcile import Reconciled

__all__ = [
    "COUNT",
    "READ",
    "READ_OR_ERROR",
    "Origin",
    "hashed",
    "last_json",
    "md5",
    "read_in_stream",
    "start_up",
    "stream",
]

NFILES = 30
LABELS = b"name,label\nf00000.bin,cat\n"

# Counts data/raw's files as listed and reads the first one only: the run leaves it partial.
COUNT = """\
import hashlib, os
root = os.path.join("data", "raw")
names = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
with open(os.path.join(root, names[0]), "rb") as fobj:
    first = hashlib.md5(fobj.read()).hexdigest()
with open("count.txt", "w") as fobj:
    fobj.write(f"{len(names)} {first}\\n")
"""

READ = """\
import hashlib, json, sys
out = {}
for path in sys.argv[1:]:
    with open(path, "rb") as fobj:
        out[path] = hashlib.md5(fobj.read()).hexdigest()
print(json.dumps(out))
"""

# The md5 of each path named, or the name of the error its read raised.
READ_OR_ERROR = r"""
import hashlib, json, sys
out = {}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as fobj:
            out[path] = hashlib.md5(fobj.read()).hexdigest()
    except OSError as exc:
        out[path] = type(exc).__name__
print(json.dumps(out))
"""


@dataclass
class Origin:
    repo: DvcRepo
    raw: Dataset

    def expected_count(self) -> str:
        first = sorted(self.raw.files)[0]
        return f"{self.raw.nfiles} {md5(self.raw.files[first])}\n"


@pytest.fixture(scope="module")
def origin(tmp_path_factory, moto_server) -> Origin:
    base = tmp_path_factory.mktemp("origin")
    repo = make_repo(base / "repo", moto_server)
    raw = repo.make_dataset("data/raw", nfiles=NFILES, size=64, depth=1, fanout=3, push=False)
    repo.add_file("data/labels.csv", LABELS, push=False)
    write_script(repo.root, "count.py", COUNT)
    cmd = f"{sys.executable} count.py"
    repo.dvc(
        "stage",
        "add",
        "-q",
        "-n",
        "count",
        "-d",
        "count.py",
        "-d",
        "data/raw",
        "-O",
        "count.txt",
        cmd,
    )
    repo.dvc("repro", "-q")
    repo.git("add", "count.py", "count.txt", "dvc.yaml", "dvc.lock")
    repo.commit("count stage")
    repo.push()
    return Origin(repo, raw)


@pytest.fixture
def clone(origin, tmp_path) -> DvcRepo:
    """A fresh clone: the git files, no tracked data, an empty cache."""
    return origin.repo.clone(tmp_path / "clone")


def read_in_stream(repo: DvcRepo, tmp_path, *paths: str) -> dict[str, str]:
    """Read ``paths`` under ``dvc stream``; their md5s."""
    script = write_script(tmp_path, "read.py", READ)
    return last_json(stream(repo, sys.executable, script, *paths))


def start_up(repo: DvcRepo) -> Reconciled:
    """What a ``dvc stream`` start-up reconciles, run in this process (see ``hashed``)."""
    from dvc.repo import Repo

    from dvc_stream.workspace.manifest import Manifest
    from dvc_stream.workspace.reconcile import reconcile

    with repo.environ(), Repo(str(repo.root)) as dvc_repo:
        return reconcile(dvc_repo, Manifest.from_repo(dvc_repo))


@pytest.fixture
def hashed(monkeypatch) -> list[tuple[str, str]]:
    """(real path, hash name) of each file dvc-data reads to hash in this process; dvc-data's
    hashing itself runs unchanged."""
    from dvc_data.hashfile import hash as hashing

    calls: list[tuple[str, str]] = []
    original = hashing.file_md5

    def counted(fname, *args, **kwargs):
        calls.append((os.path.realpath(fname), kwargs.get("name", hashing.DEFAULT_ALGORITHM)))
        return original(fname, *args, **kwargs)

    monkeypatch.setattr(hashing, "file_md5", counted)
    return calls
